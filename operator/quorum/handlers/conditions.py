"""The condition list of a status, computed in one go (merge patches replace whole lists), with
`lastTransitionTime` kept unless the status value flips."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Cond:
    """A desired condition; `status` is True, False or None (Unknown)."""

    type: str
    status: bool | None
    reason: str
    message: str = ""

    @property
    def wire_status(self) -> str:
        return "Unknown" if self.status is None else str(self.status)


@dataclass(frozen=True)
class Transition:
    """A condition whose status flipped: becomes one event."""

    type: str
    status: str
    reason: str
    message: str


def merge_conditions(
    previous: list[dict[str, Any]], desired: list[Cond], generation: int | None, now: str
) -> tuple[list[dict[str, Any]], list[Transition]]:
    """The full new condition list, and the transitions (new conditions, or flipped status)."""
    before = {c.get("type"): c for c in previous or []}
    merged, transitions = [], []
    for cond in desired:
        old = before.get(cond.type)
        flipped = old is None or old.get("status") != cond.wire_status
        merged.append(
            {
                "type": cond.type,
                "status": cond.wire_status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": now if flipped else old.get("lastTransitionTime", now),
                "observedGeneration": generation,
            }
        )
        if flipped:
            transitions.append(Transition(cond.type, cond.wire_status, cond.reason, cond.message))
    return merged, transitions


def condition_true(status: dict[str, Any] | None, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in (status or {}).get("conditions", []))


def job_condition(job: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """A batch Job's condition of `kind` when it is True (Complete, Failed, Suspended, ...)."""
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None
