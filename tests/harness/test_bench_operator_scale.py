"""The pure parts of bench/operator_scale.py: which children a job must have, when a job counts as complete,
and the reconcile figures read from the operator's metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from bench.operator_scale import (
    children_by_parent,
    complete,
    expected_children,
    job_manifest,
    reconcile_totals,
)
from quorum.builders import synthesis
from quorum.builders.meta import LABEL_SYNTHESISJOB, Owner
from quorum.handlers.metrics import API_REQUESTS, DURATION, RECONCILES


def test_expected_children_of_the_bench_job_are_its_rbac_config_and_worker_job_but_not_the_merge() -> None:
    owner = Owner(kind="SynthesisJob", name="sj-00001", namespace="scale", uid="")
    expected = {(kind, name) for _api, kind, name in expected_children(job_manifest("sj-00001", "scale"))}
    account = synthesis.worker_account(owner)
    assert expected == {
        ("ServiceAccount", account),
        ("Role", account),
        ("RoleBinding", account),
        ("ConfigMap", synthesis.config_map_name(owner)),
        ("Job", synthesis.workers_name(owner)),
    }
    assert ("Job", synthesis.merge_name(owner)) not in expected


def test_expected_children_follow_the_builders_when_a_model_is_served() -> None:
    manifest = job_manifest("sj", "scale")
    manifest["spec"]["models"].append({"name": "served", "model": "org/model"})
    kinds = {kind for _api, kind, _name in expected_children(manifest)}
    assert {"Deployment", "Service", "NetworkPolicy", "Secret"} <= kinds


def _meta(name: str, parent: str | None) -> dict:
    return {"metadata": {"name": name, "labels": {LABEL_SYNTHESISJOB: parent} if parent else {}}}


def test_a_job_is_complete_only_with_every_expected_child_and_extra_children_do_not_matter() -> None:
    expected = {
        "a": {("v1", "ConfigMap", "a-config"), ("batch/v1", "Job", "a-workers")},
        "b": {("v1", "ConfigMap", "b-config"), ("batch/v1", "Job", "b-workers")},
    }
    listings = {
        ("v1", "ConfigMap"): [_meta("a-config", "a"), _meta("b-config", "b"), _meta("kube-root-ca.crt", None)],
        ("batch/v1", "Job"): [_meta("a-workers", "a"), _meta("a-merge", "a"), _meta("b-workers", "other")],
    }
    found = children_by_parent(listings)
    assert found["a"] == {
        ("v1", "ConfigMap", "a-config"),
        ("batch/v1", "Job", "a-workers"),
        ("batch/v1", "Job", "a-merge"),
    }
    assert complete(expected, found) == {"a"}  # b's worker Job carries another parent's label


def test_reconcile_totals_count_every_result_the_errors_of_one_kind_and_all_api_requests_from_the_metrics() -> None:
    kind = "BenchScaleTest"  # a kind no reconcile uses, so the operator's real counters serve as input
    RECONCILES.labels(kind, "done").inc(5)
    RECONCILES.labels(kind, "waiting").inc(2)
    RECONCILES.labels(kind, "error").inc(1)
    RECONCILES.labels("Other" + kind, "done").inc(100)
    DURATION.labels(kind).observe(0.25)
    DURATION.labels(kind).observe(0.5)
    before = reconcile_totals(generate_latest(REGISTRY).decode(), kind)["requests"]
    API_REQUESTS.labels("GET").inc(3)
    API_REQUESTS.labels("PATCH").inc(1)
    totals = reconcile_totals(generate_latest(REGISTRY).decode(), kind)
    assert totals == {"reconciles": 8.0, "errors": 1.0, "seconds": 0.75, "requests": before + 4}
