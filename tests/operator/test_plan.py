"""The reconcile plans, table-driven and without a cluster (KubeAI's pod-plan tests are the model): for each
case, the spec, what exists and the previous status go in; the applies, patches, deletes, status and
conditions that come out are pinned. Then `execute` against an in-memory API server for the paths that
depend on its answers (a 4xx on a child, a 5xx, a stalled resource left alone)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.builders import ensemble as ensemble_builders
from quorum.builders import synthesis as synthesis_builders
from quorum.builders.backends import backend_name
from quorum.handlers import ensemble, synthesis
from quorum.handlers.plan import key_of
from quorum.handlers.register import reconcile_object
from tests.operator.plan_fixtures import (
    ENSR_OWNER,
    NEW_IMAGE,
    OLD_IMAGE,
    SJOB_OWNER,
    FakeKube,
    applied,
    conditions,
    ensemble_spec,
    ensr_spec,
    fake_context,
    job_done,
    owned,
    resource,
    sjob_spec,
    synthesis_job,
)

WORKERS = ("Job", synthesis_builders.workers_name(SJOB_OWNER))
MERGE = ("Job", synthesis_builders.merge_name(SJOB_OWNER))
CONFIG = ("ConfigMap", synthesis_builders.config_map_name(SJOB_OWNER))
SERVED = ("apps/v1", "Deployment", backend_name(SJOB_OWNER, "served"))
WORKERS_KEY = ("batch/v1", *WORKERS)
MERGE_KEY = ("batch/v1", *MERGE)
CONFIG_KEY = ("v1", *CONFIG)
READY = {SERVED: owned(SJOB_OWNER, {"readyReplicas": 1})}
RUNNING = {"fingerprint": "", "image": OLD_IMAGE, "startTime": "2026-01-01T11:56:00Z"}


def running(spec: dict[str, Any]) -> dict[str, Any]:
    """The status of a job that started with `spec` under the previous operator version's image."""
    return {**RUNNING, "fingerprint": synthesis.output_fingerprint(synthesis_job(spec).spec)}


@dataclass(frozen=True)
class Case:
    id: str
    spec: dict[str, Any]
    previous: dict[str, Any] = field(default_factory=dict)
    children: dict[Any, dict[str, Any]] = field(default_factory=dict)
    applies: set[tuple[str, str]] = field(default_factory=set)
    """Children that must be applied."""
    not_applied: set[tuple[str, str]] = field(default_factory=set)
    conditions: dict[str, tuple[bool | None, str]] = field(default_factory=dict)
    message: tuple[str, str] | None = None
    """(condition type, text its message must contain)."""
    status: dict[str, Any] = field(default_factory=dict)
    deletes: set[Any] = field(default_factory=set)
    events: set[str] = field(default_factory=set)
    check: Callable[[Any], None] | None = None


BASE = sjob_spec()
CHANGED_LIVE = sjob_spec(
    calls={"timeoutSeconds": 7.0},
    workers={"shards": 2, "parallelism": 1, "concurrencyPerModel": 3},
    models=[BASE["models"][0], {**BASE["models"][1], "vllm": {"gpuMemoryUtilization": 0.5}}],
)
CHANGED_OUTPUT = sjob_spec(generation={"target": 8, "rounds": 1, "temperature": 0.1})
FOREIGN = {"metadata": {"ownerReferences": [{"kind": "EnsembleRouter", "name": "sj", "uid": "x", "controller": True}]}}


def _worker_image(plan: Any) -> None:
    [merge] = [m for m in plan.applies if (m["kind"], m["metadata"]["name"]) == MERGE]
    assert merge["spec"]["template"]["spec"]["containers"][0]["image"] == OLD_IMAGE


def _new_config_applied(plan: Any) -> None:
    [config] = [m for m in plan.applies if (m["kind"], m["metadata"]["name"]) == CONFIG]
    text = config["data"]["synthesisjob.yaml"]
    assert "timeoutSeconds: 7.0" in text and "concurrencyPerModel: 3" in text
    [deployment] = [m for m in plan.applies if key_of(m) == SERVED]
    assert "--gpu-memory-utilization=0.5" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert plan.patches == [(WORKERS_KEY, {"spec": {"parallelism": 1}})]


SYNTHESIS_CASES = [
    Case(
        "new-job-waits-for-its-served-backend",
        BASE,
        not_applied={WORKERS, MERGE},
        applies={CONFIG, SERVED[1:]},
        conditions={"Reconciling": (True, "WaitingForBackends"), "Stalled": (False, "AsExpected")},
        status={"phase": "Pending", "image": NEW_IMAGE},
        # the Jobs it will create are validated by the API server now (a dry run), not after the GPUs came up
        check=lambda p: {WORKERS, MERGE} <= {(m["kind"], m["metadata"]["name"]) for m in p.dry_runs},
    ),
    Case(
        "ready-backends-start-the-workers-with-the-operator-image-recorded",
        BASE,
        children=READY,
        applies={WORKERS, CONFIG},
        not_applied={MERGE},
        status={"image": NEW_IMAGE, "phase": "Running", "progress": "0/2 shards"},
        check=lambda p: p.status["fingerprint"] and p.status["startTime"],
    ),
    Case(
        "operator-upgrade-keeps-the-recorded-image-and-creates-the-merge",
        BASE,
        previous=running(BASE),
        children={**READY, WORKERS_KEY: job_done(SJOB_OWNER, "Complete", succeeded=2)},
        applies={MERGE, CONFIG},
        not_applied={WORKERS},
        conditions={"Progressing": (True, "Merging"), "Stalled": (False, "AsExpected")},
        status={"image": OLD_IMAGE, "lastError": None},
        check=_worker_image,
    ),
    Case(
        "timeouts-concurrency-and-gpu-memory-apply-live-without-refusal",
        CHANGED_LIVE,
        previous=running(BASE),
        children={**READY, WORKERS_KEY: owned(SJOB_OWNER, spec={"parallelism": 2, "suspend": False})},
        applies={CONFIG, SERVED[1:]},
        status={"lastError": None},
        check=_new_config_applied,
    ),
    Case(
        "an-output-shaping-change-of-a-running-job-is-refused-and-said-once",
        CHANGED_OUTPUT,
        previous=running(BASE),
        children={**READY, WORKERS_KEY: owned(SJOB_OWNER, spec={"parallelism": 2, "suspend": False})},
        not_applied={CONFIG},
        events={"SpecChangeRefused"},
        check=lambda p: (
            p.status["lastError"]["reason"] == "SpecChangeRefused"
            and p.status["fingerprint"] == running(BASE)["fingerprint"]
        ),
    ),
    Case(
        "a-configmap-output-is-stalled-naming-the-field",
        sjob_spec(output={"uri": "configmap://cm/x"}),
        conditions={"Stalled": (True, "InvalidSpec"), "Ready": (False, "InvalidSpec"), "Failed": (True, "InvalidSpec")},
        message=("Stalled", "spec.output.uri"),
        check=lambda p: not p.applies,
    ),
    Case(
        "a-child-name-another-owner-controls-is-never-overwritten",
        BASE,
        children={CONFIG_KEY: FOREIGN},
        conditions={"Stalled": (True, "NameConflict"), "Ready": (False, "NameConflict")},
        message=("Stalled", f"ConfigMap {CONFIG[1]} is controlled by EnsembleRouter/sj"),
        check=lambda p: not p.applies and not p.deletes,
    ),
    Case(
        "an-object-created-by-hand-under-a-child-name-is-not-adopted",
        BASE,
        children={CONFIG_KEY: {"metadata": {}}},
        conditions={"Stalled": (True, "NameConflict")},
        message=("Stalled", "created outside Quorum"),
        check=lambda p: not p.applies,
    ),
    Case(
        "a-failed-shard-fails-the-job-and-frees-the-backends",
        BASE,
        previous=running(BASE),
        children={**READY, WORKERS_KEY: job_done(SJOB_OWNER, "Failed")},
        conditions={"Failed": (True, "JobFailed"), "Reconciling": (False, "Failed"), "Stalled": (False, "AsExpected")},
        status={"phase": "Failed"},
    ),
    Case(
        "a-passed-deadline-fails-the-job-and-deletes-its-jobs",
        sjob_spec(activeDeadlineSeconds=60),
        previous=running(sjob_spec(activeDeadlineSeconds=60)),
        children={**READY, WORKERS_KEY: owned(SJOB_OWNER, spec={"parallelism": 2, "suspend": False})},
        conditions={"Failed": (True, "DeadlineExceeded")},
        deletes={WORKERS_KEY, MERGE_KEY},
    ),
    Case(
        "suspend-patches-the-running-job-and-stops-reconciling",
        sjob_spec(suspend=True),
        previous=running(BASE),
        children={**READY, WORKERS_KEY: owned(SJOB_OWNER, spec={"parallelism": 2, "suspend": False})},
        conditions={"Suspended": (True, "Suspended"), "Reconciling": (False, "Suspended")},
        check=lambda p: (WORKERS_KEY, {"spec": {"suspend": True}}) in p.patches,
    ),
]


@pytest.mark.parametrize("case", SYNTHESIS_CASES, ids=lambda c: c.id)
def test_synthesis_plan(case: Case) -> None:
    plan = synthesis.plan(synthesis_job(case.spec, case.previous), synthesis.Observed(children=case.children))
    assert case.applies <= applied(plan), applied(plan)
    assert not case.not_applied & applied(plan)
    got = conditions(plan)
    for kind, (status, reason) in case.conditions.items():
        assert got[kind][:2] == (status, reason), (kind, got[kind])
    if case.message:
        assert case.message[1] in got[case.message[0]][2]
    for key, value in case.status.items():
        assert plan.status[key] == value, key
    assert case.deletes <= set(plan.deletes)
    assert case.events <= {reason for _, reason, _ in plan.events}
    if case.check:
        assert case.check(plan) is not False


def _with_reports(spec: dict[str, Any], flagged: list[list[str]], said: list[str] | None = None) -> dict[str, Any]:
    """A running job's status whose shard `i` reported `flagged[i]` as degenerate; `said`: the job's list so far."""
    previous = running(spec)
    previous["shards"] = {
        str(i): {"state": "Succeeded", "fingerprint": previous["fingerprint"], "degenerateReviewers": models}
        for i, models in enumerate(flagged)
    }
    if said is not None:
        previous["degenerateReviewers"] = said
    return previous


RUNNING_WORKERS = {**READY, WORKERS_KEY: owned(SJOB_OWNER, spec={"parallelism": 2, "suspend": False})}
NO_EXCLUSION = sjob_spec(review={"reviewers": 1, "allowSameModel": True, "excludeDegenerate": False})


@pytest.mark.parametrize(
    ("spec", "flagged", "said", "listed", "announced", "effect"),
    [
        (BASE, [["flat"], []], None, ["flat"], ["flat"], "excluded from the gate"),
        (BASE, [["flat"], ["copycat", "flat"]], ["flat"], ["copycat", "flat"], ["copycat"], "excluded from the gate"),
        (BASE, [["flat"], ["flat"]], ["flat"], ["flat"], [], ""),
        (BASE, [[], []], None, [], [], ""),
        (NO_EXCLUSION, [["flat"]], None, ["flat"], ["flat"], "still count in the gate"),
    ],
    ids=["first-flag", "set-grows", "already-said", "none", "exclusion-off"],
)
def test_degenerate_reviewers_are_listed_in_status_and_announced_once(
    spec: dict[str, Any], flagged: list[list[str]], said: list[str] | None, listed, announced, effect
) -> None:
    plan = synthesis.plan(synthesis_job(spec, _with_reports(spec, flagged, said)), synthesis.Observed(RUNNING_WORKERS))
    assert plan.status["degenerateReviewers"] == listed
    warnings = [message for type_, reason, message in plan.events if reason == "DegenerateReviewer"]
    if not announced:
        assert warnings == []
        return
    [message] = warnings
    assert all(model in message for model in announced) and effect in message
    assert all(model not in message for model in said or [])  # said before: not announced again
    assert [t for t, r, _ in plan.events if r == "DegenerateReviewer"] == ["Warning"]


def test_degenerate_reviewers_of_a_stale_configuration_are_ignored() -> None:
    previous = _with_reports(BASE, [["flat"]])
    previous["shards"]["0"]["fingerprint"] = "an-older-configuration"
    plan = synthesis.plan(synthesis_job(BASE, previous), synthesis.Observed(RUNNING_WORKERS))
    assert plan.status["degenerateReviewers"] == [] and not plan.events


def test_degenerate_reviewers_reported_by_the_last_shards_reach_the_finished_status() -> None:
    """The reconcile that sees the merge complete is the last that writes the status: the flag must be in it."""
    children = {**READY, WORKERS_KEY: job_done(SJOB_OWNER, "Complete", 2), MERGE_KEY: job_done(SJOB_OWNER, "Complete")}
    plan = synthesis.plan(synthesis_job(BASE, _with_reports(BASE, [["flat"], []])), synthesis.Observed(children))
    assert plan.status["phase"] == "Succeeded" and plan.status["degenerateReviewers"] == ["flat"]
    assert "DegenerateReviewer" in {reason for _, reason, _ in plan.events}


def test_a_finished_job_past_its_ttl_deletes_itself_and_writes_no_status() -> None:
    spec = sjob_spec(ttlSecondsAfterFinished=60)
    previous = {"conditions": [{"type": "Succeeded", "status": "True"}], "completionTime": "2026-01-01T11:58:00Z"}
    plan = synthesis.plan(synthesis_job(spec, previous), synthesis.Observed())
    assert plan.status is None and ("quorum.dev/v1alpha1", "SynthesisJob", "sj") in plan.deletes
    assert [reason for _, reason, _ in plan.events] == ["Expired"]


CALIBRATE = ("batch/v1", "Job", "")
ARTIFACT = ("v1", "ConfigMap", "")


def _ensemble_keys(spec: dict[str, Any]) -> tuple[Any, Any]:
    parsed = ensemble_spec(spec)
    job = ("batch/v1", "Job", ensemble_builders.calibrate_job_name(ENSR_OWNER, parsed))
    return job, ("v1", "ConfigMap", ensemble_builders.artifact_name(ENSR_OWNER, parsed))


def _calibration_pod(phase: str, message: str) -> dict[str, Any]:
    terminated = {"exitCode": 0, "reason": "Completed", "message": message}
    return {
        "metadata": {"creationTimestamp": "2026-01-01T11:59:00Z"},
        "status": {"phase": phase, "containerStatuses": [{"state": {"terminated": terminated}}]},
    }


@pytest.mark.parametrize(
    ("retries", "reason", "deleted"),
    [(0, "ArtifactMissing", True), (1, "ArtifactMissing", True), (2, "CalibrationFailed", False)],
)
def test_a_calibration_without_artifact_is_rerun_within_backoff_limit_then_fails(retries, reason, deleted) -> None:
    spec = ensr_spec()
    job, artifact = _ensemble_keys(spec)
    observed = ensemble.Observed(
        children={job: job_done(ENSR_OWNER, "Complete"), artifact: owned(ENSR_OWNER)},
        calibration_pods=[_calibration_pod("Succeeded", "wrote nothing: dataset had 0 usable rows")],
    )
    plan = ensemble.plan(ENSR_OWNER, ensemble_spec(spec), observed, {"calibrationRetries": retries})
    calibrated = conditions(plan)["Calibrated"]
    assert calibrated[:2] == (False, reason)
    assert "wrote nothing: dataset had 0 usable rows" in calibrated[2]
    assert (job in plan.deletes) is deleted
    assert plan.status["calibrationRetries"] == (retries + 1 if deleted else retries)
    if not deleted:
        assert plan.status["lastError"]["reason"] == "CalibrationFailed"
        assert conditions(plan)["Degraded"][0] is True and plan.status["phase"] == "Degraded"


def test_a_calibrated_artifact_brings_up_the_router_and_drops_stale_calibrations() -> None:
    spec = ensr_spec()
    job, artifact = _ensemble_keys(spec)
    summary = {"summary.json": '{"checksum": "abc", "clusters": 2, "questions": 10}'}
    stale = ("batch/v1", "Job", "er-calibrate-old-12345")
    observed = ensemble.Observed(
        children={job: job_done(ENSR_OWNER, "Complete"), artifact: owned(ENSR_OWNER, data=summary)},
        calibrations=[job, artifact, stale],
    )
    plan = ensemble.plan(ENSR_OWNER, ensemble_spec(spec), observed, {})
    router = ensemble_builders.router_name(ENSR_OWNER)
    assert {("Deployment", router), ("Service", router)} <= applied(plan)
    assert plan.deletes == [stale]
    assert conditions(plan)["Calibrated"][:2] == (True, "Calibrated")
    assert conditions(plan)["Reconciling"][:2] == (True, "NotAvailable")  # the router's pods are not ready yet
    assert plan.status["calibration"]["checksum"] == "abc"


def _router_image(plan: Any) -> str:
    [deployment] = [m for m in plan.applies if (m["kind"], m["metadata"]["name"]) == ROUTER_DEPLOYMENT]
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


ROUTER_DEPLOYMENT = ("Deployment", ensemble_builders.router_name(ENSR_OWNER))


@pytest.mark.parametrize(
    ("spec_image", "recorded", "expected"),
    [
        (None, OLD_IMAGE, OLD_IMAGE),
        (None, None, NEW_IMAGE),
        ("quorum-dev/quorum:0.3.0", OLD_IMAGE, "quorum-dev/quorum:0.3.0"),
    ],
    ids=["upgrade-keeps-the-recorded-image", "first-reconcile-records-the-default", "the-spec-image-wins"],
)
def test_a_later_operator_default_image_does_not_change_a_running_routers_image(spec_image, recorded, expected) -> None:
    spec = ensr_spec(router={"image": spec_image} if spec_image else {})
    previous = {"image": recorded} if recorded else {}
    parsed = ensemble.resolve_image(EnsembleRouterSpec.model_validate(spec), previous, NEW_IMAGE)
    job, artifact = _ensemble_keys(spec)
    summary = {"summary.json": '{"checksum": "abc", "clusters": 2, "questions": 10}'}
    observed = ensemble.Observed(
        children={job: job_done(ENSR_OWNER, "Complete"), artifact: owned(ENSR_OWNER, data=summary)}
    )
    plan = ensemble.plan(ENSR_OWNER, parsed, observed, previous)
    assert _router_image(plan) == expected and plan.status["image"] == expected


def test_the_router_image_is_recorded_at_the_first_reconcile_and_kept_after_an_operator_upgrade() -> None:
    """Through `reconcile`: the recorded image is read back from the status, not the new operator's default."""
    kube, events = FakeKube(), []
    body = resource("EnsembleRouter", ensr_spec())
    kube.objects[("quorum.dev/v1alpha1", "EnsembleRouter", "er")] = body
    reconcile_object(fake_context(kube, events, image=OLD_IMAGE), "ensemblerouters", "ns", "er")
    assert kube.objects[("quorum.dev/v1alpha1", "EnsembleRouter", "er")]["status"]["image"] == OLD_IMAGE
    reconcile_object(fake_context(kube, events, image=NEW_IMAGE), "ensemblerouters", "ns", "er")
    status = kube.objects[("quorum.dev/v1alpha1", "EnsembleRouter", "er")]["status"]
    calibrate = [m for m in kube.applied if m["kind"] == "Job"]
    assert status["image"] == OLD_IMAGE
    assert calibrate and {m["spec"]["template"]["spec"]["containers"][0]["image"] for m in calibrate} == {OLD_IMAGE}


def test_an_ensemble_model_named_router_does_not_clash_with_the_router() -> None:
    spec = ensr_spec(models=[{"name": "router", "model": "org/m"}])
    parsed = ensemble_spec(spec)
    plan = ensemble.plan(ENSR_OWNER, parsed, ensemble.Observed(), {})
    assert backend_name(ENSR_OWNER, "router") != ensemble_builders.router_name(ENSR_OWNER)
    assert ("Deployment", backend_name(ENSR_OWNER, "router")) in applied(plan)
    assert conditions(plan)["Stalled"][0] is False


# execute, against an in-memory API server


def test_a_child_the_api_server_refuses_stalls_the_resource_naming_the_field() -> None:
    kube, events = FakeKube(), []
    body = resource("SynthesisJob", sjob_spec())
    kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")] = body
    message = (
        'Deployment.apps "sj-served-1" is invalid: spec.template.spec.volumes[2].name: Invalid value: "pvc-my.claim"'
    )
    kube.refuse["Deployment"] = (422, message)
    ctx = fake_context(kube, events)
    outcome = reconcile_object(ctx, "synthesisjobs", "ns", "sj")
    status = kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")]["status"]
    stalled = {c["type"]: c for c in status["conditions"]}["Stalled"]
    assert stalled["status"] == "True" and stalled["reason"] == "ChildRejected"
    assert "spec.template.spec.volumes[2].name" in stalled["message"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"
    assert ("Warning", "ChildRejected") in {(t, r) for t, r, _ in events}
    assert not outcome.waiting  # no retries: only a spec change can fix it
    writes = len(kube.status_patches)
    assert not reconcile_object(ctx, "synthesisjobs", "ns", "sj").waiting
    assert len(kube.status_patches) == writes  # the same generation is left alone


def test_calibration_data_in_s3_is_stalled_naming_the_field_before_any_child_exists() -> None:
    """The calibration pod would hold no object-store credentials: refused, not left to fail in the pod."""
    spec = ensr_spec(calibration={"dataset": {"uri": "s3://bucket/calib.jsonl"}, "clusters": 2})
    plan = ensemble.plan(ENSR_OWNER, ensemble_spec(spec), ensemble.Observed(), {})
    assert not plan.applies and plan.status["lastError"]["reason"] == "InvalidSpec"
    [stalled] = [c for c in plan.conditions if c.type == "Stalled"]
    assert stalled.status and stalled.message.startswith(
        "spec.calibration.dataset.uri: s3:// calibration data is read by `quorum router calibrate` (local mode) only"
    )


def test_an_invalid_spec_is_stalled_and_a_new_generation_is_reconciled_again() -> None:
    kube, events = FakeKube(), []
    body = resource("EnsembleRouter", ensr_spec(routing={"modelsSelected": 3}))
    kube.objects[("quorum.dev/v1alpha1", "EnsembleRouter", "er")] = body
    ctx = fake_context(kube, events)
    reconcile_object(ctx, "ensemblerouters", "ns", "er")
    status = kube.objects[("quorum.dev/v1alpha1", "EnsembleRouter", "er")]["status"]
    stalled = {c["type"]: c for c in status["conditions"]}["Stalled"]
    assert stalled["reason"] == "InvalidSpec" and "spec.routing.modelsSelected" in stalled["message"]
    fixed = {**body, "spec": ensr_spec(), "status": status, "metadata": {**body["metadata"], "generation": 2}}
    kube.objects[("quorum.dev/v1alpha1", "EnsembleRouter", "er")] = fixed
    reconcile_object(ctx, "ensemblerouters", "ns", "er")
    status = kube.objects[("quorum.dev/v1alpha1", "EnsembleRouter", "er")]["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Stalled"] == "False"


def test_a_server_error_is_transient_reconciling_and_retried() -> None:
    kube, events = FakeKube(), []
    kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")] = resource("SynthesisJob", sjob_spec())
    kube.refuse["ConfigMap"] = (500, "etcdserver: request timed out")
    outcome = reconcile_object(fake_context(kube, events), "synthesisjobs", "ns", "sj")
    status = kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")]["status"]
    reconciling = {c["type"]: c for c in status["conditions"]}["Reconciling"]
    assert reconciling["status"] == "True" and "etcdserver: request timed out" in reconciling["message"]
    assert outcome.waiting and outcome.retry
    assert status["lastError"]["reason"] == "TransientError"


def test_a_second_reconcile_of_an_unchanged_resource_writes_nothing() -> None:
    kube, events = FakeKube(), []
    spec = sjob_spec(models=[{"name": "ext", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "sim"}}])
    kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")] = resource("SynthesisJob", spec)
    ctx = fake_context(kube, events)
    reconcile_object(ctx, "synthesisjobs", "ns", "sj")
    reconcile_object(ctx, "synthesisjobs", "ns", "sj")  # sees the worker Job it created: Running
    applies, writes = len(kube.applied), len(kube.status_patches)
    assert applies >= 5  # RBAC, config, worker Job
    reconcile_object(ctx, "synthesisjobs", "ns", "sj")
    assert len(kube.applied) == applies and len(kube.status_patches) == writes


def test_an_unlabelled_object_under_a_child_name_is_refused_not_adopted() -> None:
    kube, events = FakeKube(), []
    kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")] = resource("SynthesisJob", sjob_spec())
    kube.objects[CONFIG_KEY] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG[1]}, "data": {}}
    reconcile_object(fake_context(kube, events), "synthesisjobs", "ns", "sj")
    status = kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")]["status"]
    stalled = {c["type"]: c for c in status["conditions"]}["Stalled"]
    assert stalled["reason"] == "NameConflict" and CONFIG[1] in stalled["message"]
    assert kube.objects[CONFIG_KEY]["data"] == {}  # untouched


class LaggingKube(FakeKube):
    """An observation one watch event behind: lists show none of the children that exist."""

    def list(self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str]) -> list[Any]:
        return [] if labels else super().list(api_version, kind, namespace, labels)


def test_a_child_the_observation_missed_is_taken_as_its_own_not_a_name_conflict() -> None:
    kube, events = LaggingKube(), []
    spec = sjob_spec(models=[{"name": "ext", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "sim"}}])
    kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")] = resource("SynthesisJob", spec)
    ctx = fake_context(kube, events)
    reconcile_object(ctx, "synthesisjobs", "ns", "sj")
    children = {key for key in kube.objects if key[1] != "SynthesisJob"}
    assert WORKERS_KEY in children
    reconcile_object(ctx, "synthesisjobs", "ns", "sj")  # every create is refused as AlreadyExists: ours
    status = kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")]["status"]
    assert conditions_of(status)["Stalled"] == "False" and status["phase"] == "Running"
    assert {key for key in kube.objects if key[1] != "SynthesisJob"} == children


def test_a_missed_child_of_another_owner_is_still_a_name_conflict() -> None:
    kube, events = LaggingKube(), []
    kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")] = resource("SynthesisJob", sjob_spec())
    other = {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "SynthesisJob",
        "name": "sj",
        "uid": "older",
        "controller": True,
    }
    metadata = {"name": CONFIG[1], "ownerReferences": [other]}
    kube.objects[CONFIG_KEY] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {}}
    reconcile_object(fake_context(kube, events), "synthesisjobs", "ns", "sj")
    status = kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")]["status"]
    assert {c["type"]: c for c in status["conditions"]}["Stalled"]["reason"] == "NameConflict"
    assert kube.objects[CONFIG_KEY]["data"] == {}


def conditions_of(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


class SideBySideKube(FakeKube):
    """Creates of the first `together` children meet at a barrier: they pass only if all are in flight at once."""

    def __init__(self, together: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(together, timeout=5)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if manifest["kind"] != "Job":
            self.barrier.wait()
        return super().create(manifest)


def test_a_new_jobs_children_are_created_side_by_side_and_its_worker_job_only_after_them() -> None:
    kube, events = SideBySideKube(together=4), []  # ServiceAccount, Role, RoleBinding, ConfigMap
    spec = sjob_spec(models=[{"name": "ext", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "sim"}}])
    kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")] = resource("SynthesisJob", spec)
    reconcile_object(fake_context(kube, events), "synthesisjobs", "ns", "sj")
    kinds = [m["kind"] for m in kube.applied]
    assert sorted(kinds[:4]) == ["ConfigMap", "Role", "RoleBinding", "ServiceAccount"] and kinds[4:] == ["Job"]
    assert kube.status_patches[-1]["phase"] == "Running"
