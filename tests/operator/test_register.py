"""The kopf drivers around the plans (handlers/register.py): the retry backoff after a transient error, and the
Prometheus metrics every reconcile and resync records (handlers/metrics.py), read back from the registry the
operator's `--metrics-port` serves. Against the in-memory API server of the plan tests, no cluster."""

from __future__ import annotations

import time
from typing import Any

import kopf
import pytest
from prometheus_client import REGISTRY

from quorum.handlers import register
from quorum.handlers.register import reconcile_object, resync_once, retry_delay
from quorum.handlers.storage import HandlingMemory
from tests.operator.plan_fixtures import FakeKube, fake_context, resource, sjob_spec

SJOB_KEY = ("quorum.dev/v1alpha1", "SynthesisJob", "sj")


@pytest.mark.parametrize(
    ("retry", "seconds"),
    [(0, 2.0), (1, 4.0), (2, 8.0), (6, 128.0), (7, 256.0), (8, 300.0), (9, 300.0), (5000, 300.0), (-1, 2.0)],
)
def test_the_retry_backoff_doubles_from_two_seconds_up_to_five_minutes(retry: int, seconds: float) -> None:
    assert retry_delay(retry) == seconds


def test_a_transient_error_makes_kopf_retry_after_the_backoff_of_its_retry_count() -> None:
    kube = FakeKube()
    body = resource("SynthesisJob", sjob_spec())
    kube.objects[SJOB_KEY] = body
    kube.refuse["ConfigMap"] = (500, "etcdserver: request timed out")
    memo = kopf.Memo()
    memo.ctx = fake_context(kube, [])
    with pytest.raises(kopf.TemporaryError) as raised:
        register._on_change("synthesisjobs")(body=body, memo=memo, retry=3)
    assert raised.value.delay == retry_delay(3) == 16.0


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _reconcile_metrics(kind: str) -> dict[str, float]:
    return {
        "done": _sample("quorum_operator_reconciles_total", kind=kind, result="done"),
        "waiting": _sample("quorum_operator_reconciles_total", kind=kind, result="waiting"),
        "error": _sample("quorum_operator_reconciles_total", kind=kind, result="error"),
        "errors": _sample("quorum_operator_reconcile_errors_total", kind=kind, error="ApiException"),
        "timed": _sample("quorum_operator_reconcile_duration_seconds_count", kind=kind),
    }


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in before}


def test_every_reconcile_is_counted_by_result_and_timed() -> None:
    kube = FakeKube()
    kube.objects[SJOB_KEY] = resource("SynthesisJob", sjob_spec())  # a served model: waits for its backend
    ctx = fake_context(kube, [])
    before = _reconcile_metrics("SynthesisJob")
    assert reconcile_object(ctx, "synthesisjobs", "ns", "sj").waiting
    after_waiting = _reconcile_metrics("SynthesisJob")
    assert _delta(before, after_waiting) == {"done": 0, "waiting": 1, "error": 0, "errors": 0, "timed": 1}
    kube.objects[SJOB_KEY]["spec"]["suspend"] = True  # suspended: nothing to wait for
    assert not reconcile_object(ctx, "synthesisjobs", "ns", "sj").waiting
    assert _delta(after_waiting, _reconcile_metrics("SynthesisJob"))["done"] == 1


def test_a_failed_reconcile_is_counted_as_an_error_of_its_class_and_still_timed() -> None:
    kube = FakeKube()
    kube.objects[SJOB_KEY] = resource("SynthesisJob", sjob_spec())
    kube.refuse["ConfigMap"] = (500, "etcdserver: request timed out")
    before = _reconcile_metrics("SynthesisJob")
    reconcile_object(fake_context(kube, []), "synthesisjobs", "ns", "sj")
    assert _delta(before, _reconcile_metrics("SynthesisJob")) == {
        "done": 0,
        "waiting": 0,
        "error": 1,
        "errors": 1,
        "timed": 1,
    }


def _with_phase(name: str, phase: str) -> dict[str, Any]:
    body = resource("SynthesisJob", sjob_spec())
    body["metadata"]["name"] = name
    body["status"] = {"phase": phase}
    return body


def test_the_resync_counts_resources_per_kind_and_phase_and_drops_emptied_phases_to_zero(monkeypatch) -> None:
    kube = FakeKube()
    for name, phase in (("a", "Running"), ("b", "Running"), ("c", "Succeeded")):
        kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", name)] = _with_phase(name, phase)
    reconciled: list[tuple[str, str, str]] = []
    monkeypatch.setattr(register, "reconcile_coalesced", lambda ctx, *key: reconciled.append(key))
    ctx = fake_context(kube, [])
    resync_once(ctx, ["ns"])
    assert sorted(reconciled) == [("synthesisjobs", "ns", name) for name in "abc"]
    phases = {p: _sample("quorum_operator_resources", kind="SynthesisJob", phase=p) for p in ("Running", "Succeeded")}
    assert phases == {"Running": 2, "Succeeded": 1}
    kube.objects.pop(("quorum.dev/v1alpha1", "SynthesisJob", "c"))
    resync_once(ctx, ["ns"])
    assert _sample("quorum_operator_resources", kind="SynthesisJob", phase="Succeeded") == 0
    assert _sample("quorum_operator_resources", kind="SynthesisJob", phase="Running") == 2


def test_the_resync_skips_a_resource_another_driver_reconciled_just_now(monkeypatch) -> None:
    kube = FakeKube()
    for name in ("fresh", "stale"):
        kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", name)] = _with_phase(name, "Running")
    monkeypatch.setitem(register._reconciled, ("synthesisjobs", "ns", "fresh"), time.monotonic())
    monkeypatch.setitem(register._reconciled, ("synthesisjobs", "ns", "stale"), time.monotonic() - 60)
    reconciled: list[tuple[str, str, str]] = []
    monkeypatch.setattr(register, "reconcile_coalesced", lambda ctx, *key: reconciled.append(key))
    resync_once(fake_context(kube, []), ["ns"], fresh_within=30)
    assert reconciled == [("synthesisjobs", "ns", "stale")]


def test_the_resync_drops_what_kopfs_memory_holds_of_resources_no_longer_listed(monkeypatch) -> None:
    kube = FakeKube()
    listed = _with_phase("listed", "Running")
    kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "listed")] = listed
    monkeypatch.setattr(register, "reconcile_coalesced", lambda ctx, *key: None)
    memory = HandlingMemory()
    for uid in (listed["metadata"]["uid"], "deleted-uid"):
        body = kopf.Body({"metadata": {"name": uid, "namespace": "ns", "uid": uid}})
        memory.diffbase.store(body=body, patch=kopf.Patch(), essence={"spec": {}})
    resync_once(fake_context(kube, []), ["ns"], memory=memory)
    assert set(memory.diffbase.held) == {listed["metadata"]["uid"]}
