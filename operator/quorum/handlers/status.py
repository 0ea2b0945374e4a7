"""Writing a status: the full condition list in one merge patch, one event per transition, no write when
nothing changed (so a status write never wakes the reconcile that made it)."""

from __future__ import annotations

from typing import Any

from quorum.handlers.conditions import Cond, merge_conditions, now_rfc3339
from quorum.handlers.context import OperatorContext


def write_status(
    ctx: OperatorContext, body: dict[str, Any], status: dict[str, Any], conds: list[Cond], api: tuple[str, str]
) -> None:
    """Merge the conditions, post one event per transition, and patch only when something changed."""
    previous = body.get("status") or {}
    now = now_rfc3339()
    generation = body["metadata"].get("generation")
    status["conditions"], transitions = merge_conditions(previous.get("conditions") or [], conds, generation, now)
    status["observedGeneration"] = generation
    if all(previous.get(key) == value for key, value in status.items()):
        return
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    ctx.kube.patch_status(*api, namespace, name, status)
    for transition in transitions:
        warning = (transition.type in ("Failed", "Stalled") and transition.status == "True") or (
            transition.type == "Degraded"
        )
        message = f"{transition.type}={transition.status}" + (f": {transition.message}" if transition.message else "")
        ctx.post_event(body, "Warning" if warning else "Normal", transition.reason or transition.type, message)
