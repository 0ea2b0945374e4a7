"""One responder for the simulated vLLM servers of shared Models: GRA's structured stages (generate, review,
adjudicate) from the scripted GRA answers, everything else (calibration and routed questions) from the routing
pool's models of known per-topic accuracy, by served model name (alpha, beta, gamma)."""

from __future__ import annotations

from quorum.gra.testing import GraScript
from quorum.llm.simulated import SimReply, SimRequest
from tests.routing.pool import responder_for

GRA = GraScript()


def respond(request: SimRequest) -> SimReply:
    if request.response_format:
        return GRA(request)
    return responder_for(request.model)(request)
