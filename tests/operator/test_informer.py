"""The child cache the reconciles' LISTs are answered from (handlers/informer.py), and the queue that turns
child events into parent reconciles: without a cluster."""

from __future__ import annotations

import threading
import time
from typing import Any

from quorum.handlers import register
from quorum.handlers.informer import ObjectCache
from quorum.handlers.kube import Kube
from quorum.handlers.register import ChildQueue, parent_of
from tests.operator.plan_fixtures import FakeKube, fake_context

MANAGED = {"app.kubernetes.io/managed-by": "quorum"}


def child(kind: str, name: str, version: int, parent: str = "sj", **extra: Any) -> dict[str, Any]:
    labels = {**MANAGED, "quorum.dev/synthesisjob": parent}
    metadata = {"name": name, "namespace": "ns", "labels": labels, "resourceVersion": str(version)}
    api_version = {"Pod": "v1", "ConfigMap": "v1", "Job": "batch/v1"}[kind]
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **extra}


def test_a_kind_is_listed_from_the_cache_only_once_its_watch_is_synced() -> None:
    cache = ObjectCache()
    assert cache.list("v1", "ConfigMap", "ns", {"quorum.dev/synthesisjob": "sj"}) is None
    cache.replace("v1", "ConfigMap", "ns", [child("ConfigMap", "a", 1), child("ConfigMap", "b", 2, parent="other")])
    assert [c["metadata"]["name"] for c in cache.list("v1", "ConfigMap", "ns", {"quorum.dev/synthesisjob": "sj"})] == [
        "a"
    ]
    assert cache.list("v1", "ConfigMap", "elsewhere", {"quorum.dev/synthesisjob": "sj"}) is None
    cache.unsync("v1", "ConfigMap", "ns")
    assert cache.list("v1", "ConfigMap", "ns", {"quorum.dev/synthesisjob": "sj"}) is None


def test_an_older_copy_never_replaces_a_newer_one_and_a_deletion_removes_it() -> None:
    cache = ObjectCache()
    cache.replace("batch/v1", "Job", "ns", [])
    selector = {"quorum.dev/synthesisjob": "sj"}
    cache.upsert(child("Job", "w", 5, status={"succeeded": 1}))  # the answer of our own write
    cache.upsert(child("Job", "w", 4, status={}))  # the watch event of an earlier state, arriving late
    assert cache.list("batch/v1", "Job", "ns", selector)[0]["status"] == {"succeeded": 1}
    cache.remove(child("Job", "w", 6))
    assert cache.list("batch/v1", "Job", "ns", selector) == []


def test_the_cache_keeps_what_a_reconcile_reads_and_hands_out_copies() -> None:
    cache = ObjectCache()
    cache.replace("v1", "Pod", "ns", [])
    pod = child("Pod", "p", 1, spec={"containers": [{"name": "quorum"}]}, status={"phase": "Failed"})
    pod["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    cache.upsert(pod)
    cache.upsert({**child("Pod", "unmanaged", 1), "metadata": {"name": "unmanaged", "namespace": "ns"}})
    [held] = cache.list("v1", "Pod", "ns", {"quorum.dev/synthesisjob": "sj"})
    assert "spec" not in held and "managedFields" not in held["metadata"] and held["status"] == {"phase": "Failed"}
    held["status"]["phase"] = "Changed"
    assert cache.list("v1", "Pod", "ns", {"quorum.dev/synthesisjob": "sj"})[0]["status"] == {"phase": "Failed"}
    cache.replace("batch/v1", "Job", "ns", [])
    cache.upsert(child("Job", "w", 1, spec={"parallelism": 2, "suspend": False, "template": {"spec": {}}}))
    [job] = cache.list("batch/v1", "Job", "ns", {"quorum.dev/synthesisjob": "sj"})
    assert job["spec"] == {"parallelism": 2, "suspend": False}  # the controls a plan patches, not the template


def test_a_burst_of_child_events_queues_one_reconcile_of_their_parent(monkeypatch) -> None:
    reconciled: list[tuple[str, str, str]] = []
    gate = threading.Event()

    def slow(ctx: Any, *key: str) -> None:
        gate.wait(5)
        reconciled.append(key)

    monkeypatch.setattr(register, "reconcile_coalesced", slow)
    stop = threading.Event()
    children = ChildQueue(fake_context(FakeKube(), []), 1, stop)
    try:
        children.child_changed(child("Pod", "first", 1, parent="a"))  # taken at once: its reconcile waits
        time.sleep(0.2)
        for version in range(2, 50):  # then a storm while it runs
            children.child_changed(child("Pod", "p", version, parent="a"))
        children.child_changed(child("Pod", "q", 1, parent="b"))
        children.child_changed({"metadata": {"name": "stray", "namespace": "ns", "labels": MANAGED}})
        gate.set()
        deadline = time.monotonic() + 5
        while len(reconciled) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        stop.set()
    assert reconciled == [("synthesisjobs", "ns", "a"), ("synthesisjobs", "ns", "a"), ("synthesisjobs", "ns", "b")]
    assert parent_of(child("Pod", "p", 1)) == ("synthesisjobs", "ns", "sj")


class CountingKube(Kube):
    """`Kube.read` over a cache, with the API server's GET counted instead of sent."""

    def __init__(self, cache: ObjectCache, served: dict[str, Any]) -> None:
        self.cache, self.served, self.gets = cache, served, 0

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        return self.served


def test_a_resource_is_read_from_the_cache_unless_its_driver_saw_a_newer_version() -> None:
    cache = ObjectCache()
    body = {"apiVersion": "quorum.dev/v1alpha1", "kind": "SynthesisJob", "spec": {"suspend": False}}
    cache.upsert({**body, "metadata": {"name": "sj", "namespace": "ns", "resourceVersion": "7"}})
    newest = {**body, "spec": {"suspend": True}, "metadata": {"name": "sj", "resourceVersion": "9"}}
    kube = CountingKube(cache, newest)
    args = ("quorum.dev/v1alpha1", "SynthesisJob", "ns", "sj")
    assert kube.read(*args)["spec"] == {"suspend": False} and kube.read(*args, "7") and kube.gets == 0
    assert kube.read(*args, "9")["spec"] == {"suspend": True} and kube.gets == 1  # a spec handler's newer event
    assert kube.read("quorum.dev/v1alpha1", "SynthesisJob", "ns", "other") is newest and kube.gets == 2
