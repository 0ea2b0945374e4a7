"""kopf's per-resource state in the operator's memory (handlers/storage.py): nothing is written on the resource
for progress or diff base, an older operator's annotations are removed, kopf's wake-up touch still is written,
and what is held of deleted resources is dropped."""

from __future__ import annotations

import time

import kopf

from quorum.handlers.storage import DIFFBASE_KEY, PREFIX, HandlingMemory


def _body(uid: str, annotations: dict[str, str] | None = None) -> kopf.Body:
    metadata = {"name": uid, "namespace": "ns", "uid": uid, "annotations": annotations or {}}
    return kopf.Body({"apiVersion": "quorum.dev/v1alpha1", "kind": "SynthesisJob", "metadata": metadata})


def test_progress_and_diff_base_are_kept_by_uid_and_write_nothing_on_the_resource() -> None:
    memory, patch = HandlingMemory(), kopf.Patch()
    record: kopf.ProgressRecord = {"started": "2026-01-01T00:00:00", "retries": 2, "delayed": "2026-01-01T00:00:16"}
    memory.progress.store(key=kopf.HandlerId("reconcile"), record=record, body=_body("a"), patch=patch)
    memory.diffbase.store(body=_body("a"), patch=patch, essence={"spec": {"x": 1}})
    assert not patch
    assert memory.progress.fetch(key=kopf.HandlerId("reconcile"), body=_body("a")) == record
    assert memory.progress.fetch(key=kopf.HandlerId("reconcile"), body=_body("b")) is None
    assert memory.diffbase.fetch(body=_body("a")) == {"spec": {"x": 1}}
    assert memory.diffbase.fetch(body=_body("b")) is None
    memory.progress.purge(key=kopf.HandlerId("reconcile"), body=_body("a"), patch=patch)
    assert memory.progress.fetch(key=kopf.HandlerId("reconcile"), body=_body("a")) is None
    assert not patch


def test_an_older_operators_annotations_are_removed_when_the_resource_is_handled() -> None:
    memory, patch = HandlingMemory(), kopf.Patch()
    old = {f"{PREFIX}/{DIFFBASE_KEY}": '{"spec":{}}', f"{PREFIX}/reconcile": '{"retries":1}'}
    memory.diffbase.store(body=_body("a", old), patch=patch, essence={"spec": {}})
    memory.progress.purge(key=kopf.HandlerId("reconcile"), body=_body("a", old), patch=patch)
    assert dict(patch.metadata.annotations) == {f"{PREFIX}/{DIFFBASE_KEY}": None, f"{PREFIX}/reconcile": None}


def test_kopfs_wake_up_touch_is_still_written_and_kept_out_of_the_diffed_essence() -> None:
    memory, patch = HandlingMemory(), kopf.Patch()
    memory.progress.touch(body=_body("a"), patch=patch, value="2026-01-01T00:00:16")
    assert patch.metadata.annotations[f"{PREFIX}/touch-dummy"] == "2026-01-01T00:00:16"
    touched = _body("a", {f"{PREFIX}/touch-dummy": "x", f"{PREFIX}/kopf-managed": "yes", "user": "kept"})
    essence = memory.progress.clear(essence=memory.diffbase.build(body=touched))
    assert essence["metadata"]["annotations"] == {"user": "kept"}


def test_retain_drops_resources_missing_from_a_listing_but_not_those_handled_since_it_started() -> None:
    memory = HandlingMemory()
    for uid in ("live", "gone"):
        memory.diffbase.store(body=_body(uid), patch=kopf.Patch(), essence={"spec": {}})
        memory.progress.store(key=kopf.HandlerId("r"), record={"retries": 0}, body=_body(uid), patch=kopf.Patch())
    listed_at = time.monotonic()
    memory.diffbase.store(body=_body("new"), patch=kopf.Patch(), essence={"spec": {}})
    memory.retain({"live"}, listed_at)
    assert memory.diffbase.fetch(body=_body("live")) == {"spec": {}}
    assert memory.diffbase.fetch(body=_body("gone")) is None
    assert memory.diffbase.fetch(body=_body("new")) == {"spec": {}}
    assert memory.progress.fetch(key=kopf.HandlerId("r"), body=_body("live")) == {"retries": 0}
    assert memory.progress.fetch(key=kopf.HandlerId("r"), body=_body("gone")) is None
