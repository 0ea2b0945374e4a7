"""Reconcile a SynthesisJob: level-based and idempotent, so create, update, resume, the timer and child
events all call the same function.

Lifecycle: backends (vLLM Deployments) → worker Indexed Job (one index per shard; created once every backend
is ready) → merge Job → Succeeded. The status is recomputed from the children every time and written with
one merge patch; workers' own reports under `status.shards.<index>` are read, never written.

A changed spec of a started job: live controls (`suspend`, `workers.parallelism`, `activeDeadlineSeconds`,
`ttlSecondsAfterFinished`, `backends`) apply at once; any other change would mix two configurations in one
dataset, so it is refused — the job keeps running with the configuration it started with (its fingerprint),
`status.lastError` and a Warning event say so, and a new SynthesisJob is the way to run the new spec (the same
rule the API server enforces for `seeds`). A finished job is final.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from pydantic import ValidationError

from quorum.api.base import format_validation_error
from quorum.api.synthesis import SynthesisJobSpec, count_keys
from quorum.builders.meta import Owner
from quorum.builders.synthesis import (
    MERGE_COMPONENT,
    WORKER_COMPONENT,
    fingerprint,
    merge_job,
    merge_name,
    synthesis_children,
    workers_job,
    workers_name,
)
from quorum.handlers.backends import backends_summary, delete_backends, observe_backends
from quorum.handlers.conditions import Cond, condition_true, job_condition, now_rfc3339, parse_time
from quorum.handlers.context import DONE, OperatorContext, Outcome, last_line, termination_message
from quorum.handlers.status import InvalidSpec, write_status

API = ("quorum.dev/v1alpha1", "SynthesisJob")
COUNT_KEYS = count_keys()


def _camel_stage(stage: str) -> str:
    return "".join(part.capitalize() for part in stage.replace("_", "-").split("-") if part) or "Running"


def _shard_reports(previous: dict[str, Any], fp: str) -> dict[str, dict[str, Any]]:
    """Workers' reports of the current configuration (reports of an older fingerprint are stale)."""
    shards = previous.get("shards") or {}
    return {k: v for k, v in shards.items() if isinstance(v, dict) and v.get("fingerprint", fp) in (fp, "")}


def _sum_counts(reports: list[dict[str, Any]]) -> dict[str, int]:
    return {key: sum(int((r.get("counts") or {}).get(key) or 0) for r in reports) for key in COUNT_KEYS}


def _failed_pod_error(ctx: OperatorContext, owner: Owner, component: str) -> dict[str, Any] | None:
    """The newest failed worker pod as a `lastError`: shard, attempt and the last line it wrote."""
    pods = ctx.kube.list("v1", "Pod", owner.namespace, owner.selector(component))
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
        "time": now_rfc3339(),
    }


def _merge_result(ctx: OperatorContext, owner: Owner) -> dict[str, Any]:
    """The merge pod's termination message: `{"records": n, "manifest": uri, "counts": {...}}`."""
    for pod in ctx.kube.list("v1", "Pod", owner.namespace, owner.selector(MERGE_COMPONENT)):
        if (pod.get("status") or {}).get("phase") == "Succeeded":
            try:
                return json.loads(termination_message(pod) or "{}")
            except json.JSONDecodeError:
                return {}
    return {}


def _fail_invalid(ctx: OperatorContext, body: dict[str, Any], message: str) -> None:
    error = {"stage": "spec", "reason": "InvalidSpec", "message": message, "time": now_rfc3339()}
    conds = [
        Cond("Ready", False, "InvalidSpec", message),
        Cond("Progressing", False, "InvalidSpec"),
        Cond("Succeeded", False, "InvalidSpec"),
        Cond("Failed", True, "InvalidSpec", message),
    ]
    write_status(ctx, body, {"phase": "Failed", "lastError": error, "progress": "invalid spec"}, conds, API)


def reconcile(ctx: OperatorContext, body: dict[str, Any]) -> Outcome:
    owner = Owner.of(body)
    previous = dict(body.get("status") or {})
    try:
        spec = SynthesisJobSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        message = format_validation_error(error).strip()
        _fail_invalid(ctx, body, message)
        raise InvalidSpec(message) from error
    if spec.workers.image is None:
        spec = spec.model_copy(update={"workers": spec.workers.model_copy(update={"image": ctx.image})})

    if condition_true(previous, "Succeeded") or condition_true(previous, "Failed"):
        return _after_completion(ctx, body, owner, spec, previous)

    fp = fingerprint(spec)
    workers = ctx.kube.get("batch/v1", "Job", owner.namespace, workers_name(owner))
    merge = ctx.kube.get("batch/v1", "Job", owner.namespace, merge_name(owner))
    accepted = previous.get("fingerprint") or ""
    frozen = workers is not None and bool(accepted) and accepted != fp
    last_error = previous.get("lastError")
    status: dict[str, Any] = {}

    if frozen:
        controls: dict[str, Any] = {"suspend": spec.suspend, "activeDeadlineSeconds": spec.active_deadline_seconds}
        ctx.kube.patch_merge(
            "batch/v1",
            "Job",
            owner.namespace,
            workers_name(owner),
            {"spec": {**controls, "parallelism": spec.workers.parallelism}},
        )
        if merge is not None:
            ctx.kube.patch_merge(
                "batch/v1", "Job", owner.namespace, merge_name(owner), {"spec": {"suspend": spec.suspend}}
            )
        refusal = (
            f"spec change refused: fields that shape the output are frozen once workers started "
            f"(fingerprint {accepted} -> {fp}); live controls were applied; create a new SynthesisJob to run it"
        )
        if (last_error or {}).get("reason") != "SpecChangeRefused":
            last_error = {"stage": "spec", "reason": "SpecChangeRefused", "message": refusal, "time": now_rfc3339()}
            ctx.post_event(body, "Warning", "SpecChangeRefused", refusal)
    else:
        for manifest in synthesis_children(owner, spec):
            ctx.apply(manifest)
        status["fingerprint"] = fp

    backends = observe_backends(ctx, owner, spec.models)
    backends_ready = all(b["ready"] for b in backends)
    not_ready = [b["name"] for b in backends if not b["ready"]]
    status["backends"] = backends

    if not frozen and (workers is not None or backends_ready):
        workers = ctx.apply(workers_job(owner, spec))
        status["startTime"] = previous.get("startTime") or now_rfc3339()
    workers_done = job_condition(workers, "Complete")
    workers_failed = job_condition(workers, "Failed")
    if not frozen and (merge is not None or workers_done):
        merge = ctx.apply(merge_job(owner, spec))
    merge_done = job_condition(merge, "Complete")
    merge_failed = job_condition(merge, "Failed")

    shards_total = spec.workers.shards
    job_status = (workers or {}).get("status") or {}
    shards_done = int(job_status.get("succeeded") or 0)
    reports = _shard_reports(previous, fp)
    counts = _sum_counts(list(reports.values()))
    pod_error = _failed_pod_error(ctx, owner, WORKER_COMPONENT) or _failed_pod_error(ctx, owner, MERGE_COMPONENT)
    if pod_error and (last_error or {}).get("message") != pod_error["message"]:
        last_error = pod_error

    deadline_hit = False
    if spec.active_deadline_seconds is not None:
        created = parse_time(body["metadata"].get("creationTimestamp"))
        elapsed = (datetime.datetime.now(datetime.UTC) - created).total_seconds() if created else 0
        deadline_hit = elapsed > spec.active_deadline_seconds

    backends_cond = (
        Cond("BackendsReady", True, "AllAvailable", f"{backends_summary(backends)} ready")
        if backends_ready
        else Cond(
            "BackendsReady",
            False,
            "NotAvailable",
            f"{backends_summary(backends)} ready; waiting for {', '.join(not_ready)}",
        )
    )
    outcome = DONE
    failure = workers_failed or merge_failed
    if failure or deadline_hit:
        reason = "DeadlineExceeded" if deadline_hit and not failure else failure.get("reason") or "JobFailed"
        detail = (last_error or {}).get("message") or (failure or {}).get("message") or reason
        if deadline_hit and not failure:
            detail = f"running longer than activeDeadlineSeconds={spec.active_deadline_seconds}"
            for name in (workers_name(owner), merge_name(owner)):
                ctx.kube.delete("batch/v1", "Job", owner.namespace, name)
        message = f"{reason}: {detail}"
        last_error = {
            **(last_error or {}),
            "reason": reason if deadline_hit else (last_error or {}).get("reason", reason),
            "message": detail,
        }
        last_error.setdefault("stage", "workers")
        last_error.setdefault("time", now_rfc3339())
        phase, progress = "Failed", f"{shards_done}/{shards_total} shards, failed"
        conds = [
            Cond("Ready", False, reason, message),
            backends_cond,
            Cond("Progressing", False, "Failed", message),
            Cond("Succeeded", False, reason),
            Cond("Failed", True, reason, message),
            Cond("Suspended", False, "Failed"),
        ]
        status["completionTime"] = now_rfc3339()
    elif merge_done:
        result = _merge_result(ctx, owner)
        records = int(result.get("records") or counts.get("accepted") or 0)
        counts = {**counts, **{k: int(v) for k, v in (result.get("counts") or {}).items() if k in COUNT_KEYS}}
        counts["accepted"] = records
        status["output"] = {
            "uri": spec.output.uri,
            "records": records,
            "manifest": result.get("manifest") or f"{spec.output.uri.rstrip('/')}/manifest.json",
        }
        phase, progress = "Succeeded", f"{shards_done}/{shards_total} shards, {records} records"
        message = f"{records} records in {spec.output.uri}"
        conds = [
            Cond("Ready", True, "Succeeded", message),
            backends_cond,
            Cond("Progressing", False, "Succeeded", message),
            Cond("Succeeded", True, "Succeeded", message),
            Cond("Failed", False, "Succeeded"),
            Cond("Suspended", False, "Succeeded"),
        ]
        status["completionTime"] = now_rfc3339()
    else:
        if spec.suspend:
            stage, progress = "Suspended", f"{shards_done}/{shards_total} shards, suspended"
        elif workers is None:
            stage, progress = "WaitingForBackends", f"backends {backends_summary(backends)}"
            outcome = Outcome(waiting_for=f"backends {', '.join(not_ready)}", delay=15)
        elif workers_done:
            stage, progress = "Merging", f"{shards_done}/{shards_total} shards, merging"
        else:
            running = [r for r in reports.values() if r.get("state") == "Running" and r.get("stage")]
            stage = _camel_stage(min((r["stage"] for r in running), default="running"))
            progress = f"{shards_done}/{shards_total} shards"
            if running:
                done = sum(int(r.get("done") or 0) for r in running)
                total = sum(int(r.get("total") or 0) for r in running)
                if total:
                    progress += f", {running[0]['stage']} {100 * done // total}%"
        phase = "Suspended" if spec.suspend else ("Pending" if workers is None else "Running")
        conds = [
            Cond("Ready", False, stage, progress),
            backends_cond,
            Cond("Progressing", not spec.suspend, stage, progress),
            Cond("Succeeded", False, stage),
            Cond("Failed", False, stage),
            Cond("Suspended", spec.suspend, "Suspended" if spec.suspend else "NotSuspended"),
        ]
    status.update(
        {
            "phase": phase,
            "progress": progress,
            "counts": counts,
            "stages": _stages(
                backends_ready, workers, workers_done, failure, merge, merge_done, shards_done, shards_total
            ),
            "lastError": last_error,
        }
    )
    if phase in ("Succeeded", "Failed") and spec.backends.delete_on_completion:
        delete_backends(ctx, owner)
    write_status(ctx, body, status, conds, API)
    return outcome


def _stages(
    backends_ready, workers, workers_done, failure, merge, merge_done, shards_done, shards_total
) -> list[dict[str, Any]]:
    def state(done: Any, started: Any) -> str:
        if done:
            return "Succeeded"
        return "Running" if started else "Pending"

    workers_state = "Failed" if failure and not workers_done else state(workers_done, workers)
    merge_state = "Failed" if failure and workers_done else state(merge_done, merge)
    return [
        {"name": "backends", "state": "Succeeded" if backends_ready else "Running", "done": 0, "total": 0},
        {"name": "workers", "state": workers_state, "done": shards_done, "total": shards_total},
        {"name": "merge", "state": merge_state, "done": int(bool(merge_done)), "total": 1},
    ]


def _after_completion(
    ctx: OperatorContext, body: dict[str, Any], owner: Owner, spec: SynthesisJobSpec, previous: dict[str, Any]
) -> Outcome:
    """A finished job is final: release the backends if asked, delete the resource once its TTL passed."""
    if spec.backends.delete_on_completion:
        delete_backends(ctx, owner)
    if spec.ttl_seconds_after_finished is not None:
        finished = parse_time(previous.get("completionTime"))
        if finished is not None:
            age = (datetime.datetime.now(datetime.UTC) - finished).total_seconds()
            if age >= spec.ttl_seconds_after_finished:
                ctx.post_event(
                    body,
                    "Normal",
                    "Expired",
                    f"deleting after ttlSecondsAfterFinished={spec.ttl_seconds_after_finished}",
                )
                ctx.kube.delete(*API, owner.namespace, owner.name)
                return DONE
            return Outcome(waiting_for="ttl", delay=max(1.0, spec.ttl_seconds_after_finished - age))
    return DONE
