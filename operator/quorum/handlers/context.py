"""What every reconcile needs besides the object: the API connection, operator-wide settings, and a way to
post events. Passed explicitly, so reconciles can be called from handlers, timers and tests alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quorum.builders.meta import DEFAULT_IMAGE, with_pod_annotations
from quorum.handlers.kube import Kube

EventSink = Callable[[dict[str, Any], str, str, str], None]
"""(body, type, reason, message) → posts one Kubernetes event about `body`."""


@dataclass
class OperatorContext:
    kube: Kube
    image: str = DEFAULT_IMAGE
    pod_annotations: dict[str, str] = field(default_factory=dict)
    post_event: EventSink = lambda body, type_, reason, message: None

    def apply(self, manifest: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        return self.kube.apply(with_pod_annotations(manifest, self.pod_annotations), dry_run=dry_run)


@dataclass(frozen=True)
class Outcome:
    """What a reconcile tells its caller: whether it waits for something, and how long to wait."""

    waiting_for: str = ""
    delay: float = 10.0
    retry: bool = False
    """A transient error, not a wait: the caller retries with exponential backoff."""

    @property
    def waiting(self) -> bool:
        return bool(self.waiting_for)


DONE = Outcome()


def termination_message(pod: dict[str, Any]) -> str:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("message"):
            return str(terminated["message"]).strip()
        if terminated.get("reason") and terminated.get("exitCode"):
            return f"{terminated['reason']} (exit code {terminated['exitCode']})"
    return ""


def last_line(text: str, limit: int = 400) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[-limit:]
