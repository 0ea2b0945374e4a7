"""Writing a status: the full condition list in one merge patch, one event naming its transitions, no write
when nothing changed (so a status write never wakes the reconcile that made it)."""

from __future__ import annotations

from typing import Any

from quorum.handlers.conditions import Cond, Transition, merge_conditions, now_rfc3339
from quorum.handlers.context import OperatorContext


def write_status(
    ctx: OperatorContext, body: dict[str, Any], status: dict[str, Any], conds: list[Cond], api: tuple[str, str]
) -> None:
    """Merge the conditions, patch only when something changed, and post one event for the transitions."""
    previous = body.get("status") or {}
    now = now_rfc3339()
    generation = body["metadata"].get("generation")
    status["conditions"], transitions = merge_conditions(previous.get("conditions") or [], conds, generation, now)
    status["observedGeneration"] = generation
    if all(previous.get(key) == value for key, value in status.items()):
        return
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    ctx.kube.patch_status(*api, namespace, name, status)
    if transitions:
        ctx.post_event(body, *transition_event(transitions))


def bad_news(transition: Transition) -> bool:
    return transition.type in ("Failed", "Stalled", "Degraded") and transition.status == "True"


def transition_event(transitions: list[Transition]) -> tuple[str, str, str]:
    """The one event of a status write: (type, reason, message) naming every transition. A write flips
    several conditions at once (the first one sets eight), and an event per condition was most of the
    operator's API calls at scale (bench/operator_scale.py). It is a Warning when any transition is bad news,
    with that transition's reason; else it carries the first transition's (`Ready`'s, the lifecycle stage)."""
    warnings = [t for t in transitions if bad_news(t)]
    lead = (warnings or transitions)[0]
    ordered = [lead, *(t for t in transitions if t is not lead)]
    parts = [f"{t.type}={t.status}" + (f": {t.message}" if t.message and t is lead else "") for t in ordered]
    return ("Warning" if warnings else "Normal", lead.reason or lead.type, "; ".join(parts))
