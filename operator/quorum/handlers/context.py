"""What every reconcile needs besides the object: the API connection, operator-wide settings, and a way to
post events. Passed explicitly, so reconciles can be called from handlers, timers and tests alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from quorum.builders.credentials import is_create_only
from quorum.builders.meta import (
    APPLIED_HASH_ANNOTATION,
    DEFAULT_IMAGE,
    controller_of,
    short_hash,
    with_pod_annotations,
)
from quorum.handlers.kube import Kube

EventSink = Callable[[dict[str, Any], str, str, str], None]
"""(body, type, reason, message) → posts one Kubernetes event about `body`."""


@dataclass
class OperatorContext:
    kube: Kube
    image: str = DEFAULT_IMAGE
    pod_annotations: dict[str, str] = field(default_factory=dict)
    post_event: EventSink = lambda body, type_, reason, message: None
    validated: set[str] = field(default_factory=set)
    """Hashes of manifests the API server already accepted in a dry run (they need no second one)."""

    def prepared(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The manifest as sent (operator-wide pod annotations added) and its hash, kept on the child."""
        final = with_pod_annotations(manifest, self.pod_annotations)
        digest = short_hash(final, 16)
        metadata = final["metadata"]
        metadata["annotations"] = {**metadata.get("annotations", {}), APPLIED_HASH_ANNOTATION: digest}
        return final, digest

    def converge(self, manifest: dict[str, Any], existing: dict[str, Any] | None) -> None:
        """Create a child that does not exist (refused when another object holds the name); server-side
        apply one that does, unless it already carries exactly this manifest."""
        final, digest = self.prepared(manifest)
        if is_create_only(final):
            self.kube.create_once(final)
            return
        if existing is None:
            try:
                self.kube.create(final)
                return
            except ApiException as error:
                existing = self.ours_after_all(final, error)
        if ((existing.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION) != digest:
            self.kube.apply(final)

    def ours_after_all(self, manifest: dict[str, Any], error: ApiException) -> dict[str, Any]:
        """A create refused because the name is taken, by a child of this very owner that the observation
        (the child cache, a watch event behind) did not show yet: the child as it is. Anything else — another
        owner's object, or another error — is raised as the API server said it."""
        metadata = manifest["metadata"]
        found = None
        if error.status == 409:
            found = self.kube.get(manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"])
        mine, theirs = controller_of(manifest), controller_of(found)
        if found is None or mine is None or theirs is None or theirs.get("uid") != mine.get("uid"):
            raise error
        return found

    def validate(self, manifest: dict[str, Any]) -> None:
        """A server-side dry run of a child created later, once per distinct manifest."""
        final, digest = self.prepared(manifest)
        if digest not in self.validated:
            self.kube.apply(final, dry_run=True)
            if len(self.validated) > 10_000:
                self.validated.clear()
            self.validated.add(digest)

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return self.kube.apply(self.prepared(manifest)[0])


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
