"""Kubernetes Events for status transitions, posted through the operator's own API client.

Why not `kopf.event`: it reads kopf's context variables (its settings and event queue), which exist only in
kopf's handler tasks. The resync loop and the Models' idle follow-ups run outside them, so an Event posted
there raised `LookupError` and cut the reconcile short. A plain create works from any thread.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from quorum.handlers.kube import Kube

MESSAGE_LIMIT = 1024
"""The API server's own limit on an Event's message."""
SOURCE = "quorum-operator"

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


def event_poster(kube: Kube) -> Any:
    """The `post_event` of the operator's context. An Event is best effort: a refused one is logged, never
    allowed to fail the reconcile that reported the transition (status and `lastError` carry it too)."""

    def post_event(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        try:
            kube.post(event_manifest(body, type_, reason, message, datetime.now(UTC)))
        except Exception as error:
            log.warning("event %s for %s not posted: %s", reason, body["metadata"].get("name"), error)

    return post_event
