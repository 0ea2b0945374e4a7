"""Events are plain core/v1 objects posted through the operator's client, so they work outside kopf's tasks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from quorum.handlers.events import MESSAGE_LIMIT, event_manifest, event_poster

BODY = {
    "apiVersion": "quorum.dev/v1alpha1",
    "kind": "SynthesisJob",
    "metadata": {"name": "sj", "namespace": "research", "uid": "uid-1"},
}


def test_an_event_names_its_object_and_keeps_one_bounded_line() -> None:
    event = event_manifest(
        BODY, "Warning", "Stalled", "bad\nspec.output.uri " + "x" * 2000, datetime(2026, 12, 1, tzinfo=UTC)
    )
    involved = event["involvedObject"]
    assert (involved["kind"], involved["name"], involved["namespace"], involved["uid"]) == (
        "SynthesisJob", "sj", "research", "uid-1",
    )  # fmt: skip
    assert event["metadata"] == {"generateName": "sj.", "namespace": "research"}
    assert event["message"].startswith("bad spec.output.uri") and len(event["message"]) == MESSAGE_LIMIT
    assert (event["type"], event["reason"], event["lastTimestamp"]) == ("Warning", "Stalled", "2026-12-01T00:00:00Z")


class RecordingKube:
    def __init__(self, fail: bool = False) -> None:
        self.created: list[dict[str, Any]] = []
        self.fail = fail

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("403 forbidden")
        self.created.append(manifest)
        return manifest


def test_events_post_from_a_plain_thread_and_a_refused_one_never_fails_the_reconcile() -> None:
    kube = RecordingKube()
    worker = threading.Thread(target=event_poster(kube), args=(BODY, "Normal", "ScaledToZero", "idle"))  # type: ignore[arg-type]
    worker.start()
    worker.join()
    assert [e["reason"] for e in kube.created] == ["ScaledToZero"]
    event_poster(RecordingKube(fail=True))(BODY, "Normal", "Succeeded", "done")  # type: ignore[arg-type]
