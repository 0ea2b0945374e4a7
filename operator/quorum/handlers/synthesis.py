"""Reconcile a SynthesisJob: level-based and idempotent, so create, update, resume, the resync and child
events all call the same function, shaped as observe → `plan` (pure) → execute (see handlers/plan.py).

Lifecycle: backends (vLLM Deployments) → worker Indexed Job (one index per shard; created once every backend
is ready) → merge Job → Succeeded. The status is recomputed from the children every time and written with
one merge patch; workers' own reports under `status.shards.<index>` are read, never written.

What a change of a started job does is decided by the one fingerprint (`output_fingerprint`): fields that
do not shape the output (time-outs, concurrency, vLLM serving settings, images, `suspend`, parallelism,
deadlines, `backends`) apply live or at the next shard; any other change would mix two configurations in one
dataset, so it is refused — the job keeps its configuration, `status.lastError` and a Warning event say so,
and a new SynthesisJob is the way to run the new spec. The operator's default image is resolved once and
kept in `status.image`, so an operator upgrade never changes a running job. A finished job is final.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from quorum.api.synthesis import SynthesisJobSpec, count_keys, output_fingerprint
from quorum.builders.meta import LABEL_COMPONENT, Owner
from quorum.builders.synthesis import (
    MERGE_COMPONENT,
    WORKER_COMPONENT,
    merge_job,
    synthesis_children,
    workers_job,
)
from quorum.gra.progress import combine_stages
from quorum.handlers.backends import backend_objects, backend_statuses, backends_condition, backends_summary
from quorum.handlers.conditions import Cond, condition_true, job_condition, parse_time
from quorum.handlers.context import OperatorContext, Outcome, last_line, termination_message
from quorum.handlers.plan import (
    Key,
    Plan,
    key_of,
    kstatus,
    name_conflicts,
    observe_children,
    reconcile_with,
    stalled_plan,
)
from quorum.handlers.shared_models import Resolution, missing_message, needs_models, resolve_references

API = ("quorum.dev/v1alpha1", "SynthesisJob")
COUNT_KEYS = count_keys()
JOB_CONTROLS = ("parallelism", "suspend", "activeDeadlineSeconds")
"""The fields of a running worker Job that may change; its pod template is immutable."""


@dataclass(frozen=True)
class Observed:
    """What exists of a SynthesisJob's children (`children` by key, ours or another owner's)."""

    children: dict[Key, dict[str, Any]] = field(default_factory=dict)
    worker_pods: list[dict[str, Any]] = field(default_factory=list)
    merge_pods: list[dict[str, Any]] = field(default_factory=list)
    backend_objects: list[Key] = field(default_factory=list)
    shared: Resolution | None = None
    """The referenced shared Models (`modelRef`), when there are any."""


@dataclass(frozen=True)
class Job:
    """The resource as the plan sees it: identity, parsed spec, the previous status and the clock."""

    owner: Owner
    spec: SynthesisJobSpec
    previous: dict[str, Any]
    created: datetime.datetime | None
    now: datetime.datetime


def desired(owner: Owner, spec: SynthesisJobSpec) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(declarative children, worker Job, merge Job): everything `observe` looks up and `plan` may create."""
    return synthesis_children(owner, spec), workers_job(owner, spec), merge_job(owner, spec)


def observe(ctx: OperatorContext, owner: Owner, spec: SynthesisJobSpec) -> Observed:
    try:
        base, workers, merge = desired(owner, spec)
    except ValueError:
        return Observed()  # the plan reports it
    children = observe_children(ctx, owner, [*base, workers, merge])
    pods = ctx.kube.list("v1", "Pod", owner.namespace, {owner.parent_label: owner.name})
    return Observed(
        children=children,
        worker_pods=[p for p in pods if _component(p) == WORKER_COMPONENT],
        merge_pods=[p for p in pods if _component(p) == MERGE_COMPONENT],
        backend_objects=backend_objects(children),
    )


def _component(obj: dict[str, Any]) -> str:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPONENT, "")


def resolve_image(spec: SynthesisJobSpec, previous: dict[str, Any], default: str) -> SynthesisJobSpec:
    """The spec's image, else the one recorded at start, else the operator's default (recorded from now on)."""
    image = spec.workers.image or previous.get("image") or default
    return spec.model_copy(update={"workers": spec.workers.model_copy(update={"image": image})})


def reconcile(ctx: OperatorContext, body: dict[str, Any]) -> Outcome:
    def plan_for(owner: Owner, spec: SynthesisJobSpec, previous: dict[str, Any]) -> Plan:
        spec = resolve_image(spec, previous, ctx.image)
        shared = resolve_references(ctx, API[1], owner, spec, needed=needs_models(API[1], body))
        if shared is not None and shared.missing:
            return stalled("ModelNotFound", missing_message(shared.missing), "models")
        spec = shared.spec if shared is not None else spec
        created = parse_time(body["metadata"].get("creationTimestamp"))
        job = Job(owner, spec, previous, created, datetime.datetime.now(datetime.UTC))
        return plan(job, dataclasses.replace(observe(ctx, owner, spec), shared=shared))

    return reconcile_with(ctx, body, SynthesisJobSpec, API, stalled, plan_for)


def stalled(reason: str, message: str, stage: str = "spec") -> Plan:
    """A permanent error: Stalled. A spec that slipped past the schema is Failed too (it can never run)."""
    extra = [Cond("Progressing", False, reason)]
    if reason == "InvalidSpec":
        extra.append(Cond("Failed", True, reason, message))
    result = stalled_plan(reason, message, extra, stage)
    assert result.status is not None
    result.status.update({"phase": "Failed" if reason == "InvalidSpec" else "Stalled", "progress": reason})
    return result


def plan(job: Job, observed: Observed) -> Plan:
    """Everything this reconcile does, from the spec, what exists and the previous status; no I/O."""
    owner, spec, previous = job.owner, job.spec, job.previous
    if condition_true(previous, "Succeeded") or condition_true(previous, "Failed"):
        return plan_after_completion(job, observed)
    try:
        base, workers_manifest, merge_manifest = desired(owner, spec)
    except ValueError as error:  # a location no pod can use, e.g. a ConfigMap as the output
        return stalled("InvalidSpec", str(error))
    conflict = name_conflicts(owner, [*base, workers_manifest, merge_manifest], observed.children)
    if conflict:
        return stalled("NameConflict", conflict, "children")
    fp = output_fingerprint(spec)
    workers = observed.children.get(key_of(workers_manifest))
    merge = observed.children.get(key_of(merge_manifest))
    accepted = previous.get("fingerprint") or ""
    frozen = workers is not None and bool(accepted) and accepted != fp
    backends = backend_statuses(owner, spec.models, observed.children, observed.shared)
    status = {"fingerprint": accepted if frozen else fp, "image": spec.workers.image}
    result = Plan(status=status, existing=observed.children)
    config_key = next(key_of(m) for m in base if m["kind"] == "ConfigMap")
    result.applies = [m for m in base if not (frozen and key_of(m) == config_key)]
    if frozen:
        refuse_change(result, previous, accepted, fp)
    if workers is None and all(b["ready"] for b in backends):
        result.applies.append(workers_manifest)
        result.status["startTime"] = job.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        workers = workers_manifest  # created by this very plan: the status says Running, not Pending
    elif workers is None:
        result.dry_runs += [workers_manifest, merge_manifest]
    elif workers is not None:
        result.patches += control_patches(workers, workers_manifest, JOB_CONTROLS)
        result.status["startTime"] = previous.get("startTime")
    if merge is None and job_condition(workers, "Complete"):
        result.applies.append(merge_manifest)
        merge = merge_manifest
    elif merge is not None:
        result.patches += control_patches(merge, merge_manifest, ("suspend",))
    status_of_run(result, job, observed, backends, workers, merge)
    return result


def refuse_change(result: Plan, previous: dict[str, Any], accepted: str, fp: str) -> None:
    """A change of what shapes the output after the workers started: kept out, said once."""
    refusal = (
        f"spec change refused: fields that shape the output are frozen once workers started "
        f"(fingerprint {accepted} -> {fp}); live controls were applied; create a new SynthesisJob to run it"
    )
    result.status["lastError"] = {"stage": "spec", "reason": "SpecChangeRefused", "message": refusal}
    if ((previous.get("lastError") or {}).get("reason")) != "SpecChangeRefused":
        result.events.append(("Warning", "SpecChangeRefused", refusal))


def control_patches(existing: dict[str, Any], manifest: dict[str, Any], fields: tuple[str, ...]) -> list[Any]:
    """A merge patch of the mutable fields that differ from the desired ones (none when all match)."""
    have, want = existing.get("spec") or {}, manifest["spec"]
    changed = {name: want.get(name) for name in fields if have.get(name) != want.get(name)}
    return [(key_of(manifest), {"spec": changed})] if changed else []


def _failed_pod_error(pods: list[dict[str, Any]], component: str) -> dict[str, Any] | None:
    """The newest failed pod as a `lastError`: shard, attempt and the last line it wrote."""
    failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
    if not failed:
        return None
    pod = max(failed, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    annotations = pod["metadata"].get("annotations") or {}
    index = annotations.get("batch.kubernetes.io/job-completion-index")
    attempt = annotations.get("batch.kubernetes.io/job-index-failure-count", "0")
    where = f"shard {index} attempt {int(attempt) + 1}" if index is not None else pod["metadata"]["name"]
    detail = last_line(termination_message(pod)) or (pod.get("status") or {}).get("reason") or "pod failed"
    return {
        "stage": "merge" if component == MERGE_COMPONENT else f"shard-{index}",
        "reason": "ShardFailed" if component == WORKER_COMPONENT else "MergeFailed",
        "message": f"{where}: {detail}",
    }


def _merge_result(pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The merge pod's termination message: `{"records": n, "manifest": uri, "counts": {...}}`."""
    for pod in pods:
        if (pod.get("status") or {}).get("phase") == "Succeeded":
            try:
                return json.loads(termination_message(pod) or "{}")
            except json.JSONDecodeError:
                return {}
    return {}


def _reports(previous: dict[str, Any], fp: str) -> list[dict[str, Any]]:
    """The workers' reports of the current configuration (older ones are stale)."""
    shards = previous.get("shards") or {}
    return [v for v in shards.values() if isinstance(v, dict) and v.get("fingerprint", fp) in (fp, "")]


def _counts(previous: dict[str, Any], fp: str) -> dict[str, int]:
    """The funnel summed over the workers' reports."""
    reports = _reports(previous, fp)
    return {key: sum(int((r.get("counts") or {}).get(key) or 0) for r in reports) for key in COUNT_KEYS}


def status_of_run(
    result: Plan,
    job: Job,
    observed: Observed,
    backends: list[dict[str, Any]],
    workers: dict[str, Any] | None,
    merge: dict[str, Any] | None,
) -> None:
    """Phase, progress, counts, stages and conditions of a job that has not finished before this reconcile."""
    spec, previous = job.spec, job.previous
    last_error = result.status.get("lastError") or previous.get("lastError")
    pod_error = _failed_pod_error(observed.worker_pods, WORKER_COMPONENT) or _failed_pod_error(
        observed.merge_pods, MERGE_COMPONENT
    )
    if pod_error and (last_error or {}).get("message") != pod_error["message"]:
        last_error = pod_error
    shards_done = int(((workers or {}).get("status") or {}).get("succeeded") or 0)
    counts = _counts(previous, result.status["fingerprint"])
    failure = job_condition(workers, "Failed") or job_condition(merge, "Failed")
    elapsed = (job.now - job.created).total_seconds() if job.created else 0
    deadline_hit = spec.active_deadline_seconds is not None and elapsed > spec.active_deadline_seconds
    backends_cond = backends_condition(backends, observed.shared)
    if failure or deadline_hit:
        phase, progress, conds, last_error = _failed(result, job, failure, last_error, shards_done)
    elif job_condition(merge, "Complete"):
        phase, progress, conds, counts = _succeeded(result, job, observed, counts, shards_done)
    else:
        phase, progress, conds = _running(result, job, workers, backends, shards_done)
    result.conditions = [conds[0], backends_cond, *conds[1:]]
    stages = _stages(backends_cond.status, workers, failure, merge, shards_done, spec.workers.shards)
    stages += combine_stages(r.get("stages") or [] for r in _reports(previous, result.status["fingerprint"]))
    result.status.update(
        {"backends": backends, "phase": phase, "progress": progress, "counts": counts, "stages": stages}
    )
    result.status["lastError"] = last_error
    flag_degenerate_reviewers(result, job)
    if phase in ("Succeeded", "Failed") and spec.backends.delete_on_completion:
        result.deletes += observed.backend_objects


def flag_degenerate_reviewers(result: Plan, job: Job) -> None:
    """The reviewer models any shard's calibration found degenerate, as one list in `status`, and a Warning
    event when that list first appears or grows: a reviewer that copies or scores constantly makes the gate's
    verdicts mean less, and the user should learn it from `kubectl describe`, not from the manifest alone. The
    list in the previous status is what was said already, so each model is announced once."""
    assert result.status is not None
    reports = _reports(job.previous, result.status["fingerprint"])
    found = sorted({str(model) for r in reports for model in r.get("degenerateReviewers") or []})
    result.status["degenerateReviewers"] = found
    new = [model for model in found if model not in set(job.previous.get("degenerateReviewers") or [])]
    if not new:
        return
    if job.spec.review.exclude_degenerate:
        effect = "their verdicts are excluded from the gate (review.excludeDegenerate)"
    else:
        effect = "their verdicts still count in the gate (review.excludeDegenerate is false)"
    message = (
        f"degenerate reviewer model(s) {', '.join(new)} (copied critiques or constant scores in calibration; "
        f"see the manifest's reviewers): {effect}"
    )
    result.events.append(("Warning", "DegenerateReviewer", message))


def _failed(
    result: Plan, job: Job, failure: dict[str, Any] | None, last_error: dict[str, Any] | None, shards_done: int
) -> tuple[str, str, list[Cond], dict[str, Any]]:
    spec = job.spec
    reason = failure.get("reason") or "JobFailed" if failure else "DeadlineExceeded"
    detail = (last_error or {}).get("message") or (failure or {}).get("message") or reason
    if not failure:
        detail = f"running longer than activeDeadlineSeconds={spec.active_deadline_seconds}"
        result.deletes += [key_of(workers_job(job.owner, spec)), key_of(merge_job(job.owner, spec))]
    message = f"{reason}: {detail}"
    error = {"stage": "workers", **(last_error or {}), "message": detail}
    error["reason"] = reason if not failure else error.get("reason", reason)
    result.status["completionTime"] = job.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    conds = [
        Cond("Ready", False, reason, message),
        Cond("Progressing", False, "Failed", message),
        Cond("Succeeded", False, reason),
        Cond("Failed", True, reason, message),
        Cond("Suspended", False, "Failed"),
        *kstatus(Cond("Reconciling", False, "Failed")),
    ]
    return "Failed", f"{shards_done}/{spec.workers.shards} shards, failed", conds, error


def _succeeded(
    result: Plan, job: Job, observed: Observed, counts: dict[str, int], shards_done: int
) -> tuple[str, str, list[Cond], dict[str, int]]:
    spec = job.spec
    merged = _merge_result(observed.merge_pods)
    records = int(merged.get("records") or counts.get("accepted") or 0)
    counts = {**counts, **{k: int(v) for k, v in (merged.get("counts") or {}).items() if k in COUNT_KEYS}}
    counts["accepted"] = records
    manifest = merged.get("manifest") or f"{spec.output.uri.rstrip('/')}/manifest.json"
    result.status["output"] = {"uri": spec.output.uri, "records": records, "manifest": manifest}
    result.status["completionTime"] = job.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    message = f"{records} records in {spec.output.uri}"
    conds = [
        Cond("Ready", True, "Succeeded", message),
        Cond("Progressing", False, "Succeeded", message),
        Cond("Succeeded", True, "Succeeded", message),
        Cond("Failed", False, "Succeeded"),
        Cond("Suspended", False, "Succeeded"),
        *kstatus(Cond("Reconciling", False, "Succeeded")),
    ]
    return "Succeeded", f"{shards_done}/{spec.workers.shards} shards, {records} records", conds, counts


def _running(
    result: Plan, job: Job, workers: dict[str, Any] | None, backends: list[dict[str, Any]], shards_done: int
) -> tuple[str, str, list[Cond]]:
    spec, total = job.spec, job.spec.workers.shards
    if spec.suspend:
        stage, progress = "Suspended", f"{shards_done}/{total} shards, suspended"
    elif workers is None:
        stage, progress = "WaitingForBackends", f"backends {backends_summary(backends)}"
        waiting = ", ".join(b["name"] for b in backends if not b["ready"])
        result.outcome = Outcome(waiting_for=f"backends {waiting}", delay=15)
    elif job_condition(workers, "Complete"):
        stage, progress = "Merging", f"{shards_done}/{total} shards, merging"
    else:
        stage, progress = _shard_progress(job.previous, result.status["fingerprint"], shards_done, total)
    conds = [
        Cond("Ready", False, stage, progress),
        Cond("Progressing", not spec.suspend, stage, progress),
        Cond("Succeeded", False, stage),
        Cond("Failed", False, stage),
        Cond("Suspended", spec.suspend, "Suspended" if spec.suspend else "NotSuspended"),
        *kstatus(Cond("Reconciling", not spec.suspend, stage, progress)),
    ]
    phase = "Suspended" if spec.suspend else ("Pending" if workers is None else "Running")
    return phase, progress, conds


def _shard_progress(previous: dict[str, Any], fp: str, shards_done: int, total: int) -> tuple[str, str]:
    """The slowest running stage across shards, and how far it is."""
    shards = previous.get("shards") or {}
    running = [
        r
        for r in shards.values()
        if isinstance(r, dict)
        and r.get("state") == "Running"
        and r.get("stage")
        and r.get("fingerprint", fp) in (fp, "")
    ]
    stage = _camel_stage(min((r["stage"] for r in running), default="running"))
    progress = f"{shards_done}/{total} shards"
    done = sum(int(r.get("done") or 0) for r in running)
    planned = sum(int(r.get("total") or 0) for r in running)
    if running and planned:
        progress += f", {running[0]['stage']} {100 * done // planned}%"
    return stage, progress


def _camel_stage(stage: str) -> str:
    return "".join(part.capitalize() for part in stage.replace("_", "-").split("-") if part) or "Running"


def _stages(
    backends_ready: bool | None,
    workers: dict[str, Any] | None,
    failure: dict[str, Any] | None,
    merge: dict[str, Any] | None,
    shards_done: int,
    shards_total: int,
) -> list[dict[str, Any]]:
    def state(done: Any, started: Any) -> str:
        if done:
            return "Succeeded"
        return "Running" if started else "Pending"

    workers_done, merge_done = job_condition(workers, "Complete"), job_condition(merge, "Complete")
    workers_state = "Failed" if failure and not workers_done else state(workers_done, workers)
    merge_state = "Failed" if failure and workers_done else state(merge_done, merge)
    return [
        {"name": "backends", "state": "Succeeded" if backends_ready else "Running", "done": 0, "total": 0},
        {"name": "workers", "state": workers_state, "done": shards_done, "total": shards_total},
        {"name": "merge", "state": merge_state, "done": int(bool(merge_done)), "total": 1},
    ]


def plan_after_completion(job: Job, observed: Observed) -> Plan:
    """A finished job is final: release the backends if asked, delete the resource once its TTL passed. The
    status stays as it is."""
    spec, previous = job.spec, job.previous
    result = Plan(status=None)
    if spec.backends.delete_on_completion:
        result.deletes = list(observed.backend_objects)
    finished = parse_time(previous.get("completionTime"))
    if spec.ttl_seconds_after_finished is None or finished is None:
        return result
    age = (job.now - finished).total_seconds()
    if age < spec.ttl_seconds_after_finished:
        result.outcome = Outcome(waiting_for="ttl", delay=max(1.0, spec.ttl_seconds_after_finished - age))
        return result
    message = f"deleting after ttlSecondsAfterFinished={spec.ttl_seconds_after_finished}"
    result.events.append(("Normal", "Expired", message))
    result.deletes.append((API[0], API[1], job.owner.name))
    return result
