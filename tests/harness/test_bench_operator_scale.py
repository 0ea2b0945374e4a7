"""The pure parts of bench/operator_scale.py: which children a job must have, when a job counts as complete,
and the reconcile figures read from the operator's metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from bench.operator_scale import (
    Completion,
    apiserver_requests,
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


def test_a_job_is_complete_once_every_expected_child_was_seen_and_extra_or_foreign_children_do_not_count() -> None:
    completion = Completion(
        {
            "a": {("v1", "ConfigMap", "a-config"), ("batch/v1", "Job", "a-workers")},
            "b": {("v1", "ConfigMap", "b-config"), ("batch/v1", "Job", "b-workers")},
        }
    )
    completion.seen("v1", "ConfigMap", _meta("a-config", "a"), True, 1.0)
    completion.seen("v1", "ConfigMap", _meta("b-config", "b"), True, 1.5)
    completion.seen("v1", "ConfigMap", _meta("kube-root-ca.crt", None), True, 2.0)
    completion.seen("batch/v1", "Job", _meta("a-merge", "a"), True, 2.5)
    completion.seen("batch/v1", "Job", _meta("b-workers", "other"), True, 3.0)  # another parent's label
    assert completion.done == {}
    completion.seen("batch/v1", "Job", _meta("a-workers", "a"), True, 4.0)
    assert completion.done == {"a": 4.0}
    assert completion.found["a"] == {
        ("v1", "ConfigMap", "a-config"),
        ("batch/v1", "Job", "a-workers"),
        ("batch/v1", "Job", "a-merge"),
    }


def test_a_child_deleted_before_the_last_one_appears_keeps_its_job_incomplete_and_a_later_delete_keeps_the_time() -> (
    None
):
    completion = Completion({"a": {("v1", "ConfigMap", "a-config"), ("batch/v1", "Job", "a-workers")}})
    completion.seen("v1", "ConfigMap", _meta("a-config", "a"), True, 1.0)
    completion.seen("v1", "ConfigMap", _meta("a-config", "a"), False, 2.0)
    completion.seen("batch/v1", "Job", _meta("a-workers", "a"), True, 3.0)
    assert completion.done == {}
    completion.seen("v1", "ConfigMap", _meta("a-config", "a"), True, 4.0)
    completion.seen("batch/v1", "Job", _meta("a-workers", "a"), True, 5.0)  # a later event of a held child
    completion.seen("batch/v1", "Job", _meta("a-workers", "a"), False, 6.0)
    assert completion.done == {"a": 4.0}


def test_reconcile_totals_count_every_result_the_errors_of_one_kind_and_all_api_requests_from_the_metrics() -> None:
    kind = "BenchScaleTest"  # a kind no reconcile uses, so the operator's real counters serve as input
    RECONCILES.labels(kind, "done").inc(5)
    RECONCILES.labels(kind, "waiting").inc(2)
    RECONCILES.labels(kind, "error").inc(1)
    RECONCILES.labels("Other" + kind, "done").inc(100)
    DURATION.labels(kind).observe(0.25)
    DURATION.labels(kind).observe(0.5)
    before = reconcile_totals(generate_latest(REGISTRY).decode(), kind)
    API_REQUESTS.labels("GET").inc(3)
    API_REQUESTS.labels("PATCH").inc(1)
    totals = reconcile_totals(generate_latest(REGISTRY).decode(), kind)
    assert {key: totals[key] for key in ("reconciles", "errors", "seconds")} == {
        "reconciles": 8.0,
        "errors": 1.0,
        "seconds": 0.75,
    }
    assert totals["requests"] == before["requests"] + 4
    assert totals["requests GET"] == before.get("requests GET", 0.0) + 3
    assert totals["requests PATCH"] == before.get("requests PATCH", 0.0) + 1


def test_apiserver_requests_are_counted_by_verb_resource_and_subresource_over_every_code() -> None:
    exposition = "\n".join(
        [
            "# TYPE apiserver_request_total counter",
            'apiserver_request_total{code="201",resource="events",subresource="",verb="POST"} 5',
            'apiserver_request_total{code="200",resource="synthesisjobs",subresource="status",verb="PATCH"} 2',
            'apiserver_request_total{code="409",resource="synthesisjobs",subresource="status",verb="PATCH"} 1',
            'apiserver_request_total{code="200",resource="synthesisjobs",subresource="",verb="PATCH"} 4',
            "# TYPE other_total counter",
            'other_total{verb="GET"} 9',
        ]
    )
    assert apiserver_requests(exposition + "\n") == {
        "POST events": 5.0,
        "PATCH synthesisjobs/status": 3.0,
        "PATCH synthesisjobs": 4.0,
    }
