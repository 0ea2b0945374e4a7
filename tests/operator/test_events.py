"""Events are plain core/v1 objects posted through the operator's client, so they work outside kopf's tasks."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from quorum.handlers.conditions import Transition
from quorum.handlers.events import MESSAGE_LIMIT, event_manifest, event_poster
from quorum.handlers.status import transition_event

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

    def post(self, manifest: dict[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("403 forbidden")
        self.created.append(manifest)


def test_events_post_from_a_plain_thread_and_a_refused_one_never_fails_the_reconcile() -> None:
    kube = RecordingKube()
    worker = threading.Thread(target=event_poster(kube), args=(BODY, "Normal", "ScaledToZero", "idle"))  # type: ignore[arg-type]
    worker.start()
    worker.join()
    assert [e["reason"] for e in kube.created] == ["ScaledToZero"]
    event_poster(RecordingKube(fail=True))(BODY, "Normal", "Succeeded", "done")  # type: ignore[arg-type]


def test_a_status_write_posts_one_event_naming_every_transition_led_by_bad_news() -> None:
    first = [
        Transition("Ready", "False", "WaitingForBackends", "backends 0/1 ready"),
        Transition("Progressing", "True", "WaitingForBackends", ""),
        Transition("Stalled", "False", "AsExpected", ""),
    ]
    assert transition_event(first) == (
        "Normal", "WaitingForBackends", "Ready=False: backends 0/1 ready; Progressing=True; Stalled=False",
    )  # fmt: skip
    stalled = [*first[:2], Transition("Stalled", "True", "ChildRejected", "the API server refused a child")]
    type_, reason, message = transition_event(stalled)
    assert (type_, reason) == ("Warning", "ChildRejected")
    assert message.startswith("Stalled=True: the API server refused a child; Ready=False")
    assert transition_event([Transition("Degraded", "False", "AsExpected", "")])[0] == "Normal"


def test_with_posting_threads_the_reporter_goes_on_before_the_event_is_stored_stamped_when_reported() -> None:
    stored, release = threading.Event(), threading.Event()

    class SlowKube(RecordingKube):
        def post(self, manifest: dict[str, Any]) -> None:
            release.wait(5)
            super().post(manifest)
            stored.set()

    kube = SlowKube()
    with ThreadPoolExecutor(1) as posters:
        reported = datetime.now(UTC).replace(microsecond=0)
        event_poster(kube, posters)(BODY, "Normal", "Running", "started")  # type: ignore[arg-type]
        assert not kube.created  # returned while the API server is still busy
        release.set()
        assert stored.wait(5)
    [event] = kube.created
    assert event["reason"] == "Running"
    assert datetime.strptime(event["firstTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) >= reported
