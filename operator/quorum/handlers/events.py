"""Kubernetes Events for status transitions, posted through the operator's own API client.

Why not `kopf.event`: it reads kopf's context variables (its settings and event queue), which exist only in
kopf's handler tasks. The resync loop and the Models' idle follow-ups run outside them, so an Event posted
there raised `LookupError` and cut the reconcile short. A plain create works from any thread.

Events are posted by a few threads of their own: the reconcile that reports a transition does not wait for
the API server to store it (the Event is stamped when it is reported, so its time is the transition's).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from quorum.handlers.kube import Kube

MESSAGE_LIMIT = 1024
"""The API server's own limit on an Event's message."""
SOURCE = "quorum-operator"
POSTERS = 4
"""Threads posting Events: enough to keep up with a burst of first reconciles (one Event each)."""

log = logging.getLogger(__name__)


def event_manifest(body: dict[str, Any], type_: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    """A core/v1 Event about `body`: one line, within the API server's length limit."""
    metadata = body["metadata"]
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
        "involvedObject": {
            "apiVersion": body.get("apiVersion", ""),
            "kind": body.get("kind", ""),
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata.get("uid", ""),
        },
        "type": type_,
        "reason": reason,
        "message": " ".join(message.split())[:MESSAGE_LIMIT],
        "source": {"component": SOURCE},
        "reportingComponent": SOURCE,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def event_poster(kube: Kube, posters: ThreadPoolExecutor | None = None) -> Any:
    """The `post_event` of the operator's context. An Event is best effort: a refused one is logged, never
    allowed to fail the reconcile that reported the transition (status and `lastError` carry it too). With
    `posters`, it is posted from their threads and the reconcile goes on at once."""

    def post(manifest: dict[str, Any]) -> None:
        try:
            kube.post(manifest)
        except Exception as error:
            log.warning("event %s for %s not posted: %s", manifest["reason"], manifest["involvedObject"]["name"], error)

    def post_event(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        manifest = event_manifest(body, type_, reason, message, datetime.now(UTC))
        if posters is None:
            post(manifest)
        else:
            posters.submit(post, manifest)

    return post_event
