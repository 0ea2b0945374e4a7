"""One responder for the simulated vLLM servers of shared Models: GRA's structured stages (generate, review,
adjudicate) from the scripted GRA answers, everything else (calibration and routed questions) from the routing
pool's models of known per-topic accuracy, by served model name (alpha, beta, gamma)."""

from __future__ import annotations

from collections.abc import Callable

from quorum.gra.testing import GraScript
from quorum.llm.simulated import SimReply, SimRequest
from tests.routing.pool import responder_for

GRA = GraScript()


def responder(served: str) -> Callable[[SimRequest], SimReply]:
    """The responder of the server of model `served` (e2e/sim_vllm.py calls this once per server)."""
    routed = responder_for(served)

    def respond(request: SimRequest) -> SimReply:
        return GRA(request) if request.response_format else routed(request)

    return respond
