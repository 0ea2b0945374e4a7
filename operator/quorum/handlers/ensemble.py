"""Reconcile an EnsembleRouter: backends → calibration Job filling a content-addressed ConfigMap → router
Deployment + Service (+ HPA) serving the newest calibrated artifact.

A changed pool, embedder or calibration setting gets a new calibration hash, so a new Job and ConfigMap; the
router keeps serving the previous artifact until the new one is complete, then rolls to it, and older
calibrations are deleted.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from quorum.api.base import format_validation_error
from quorum.api.ensemble import EnsembleRouterSpec
from quorum.builders.ensemble import (
    CALIBRATE_COMPONENT,
    artifact_name,
    calibrate_job,
    calibrate_job_name,
    router_children,
    router_name,
    router_url,
    serving_children,
)
from quorum.builders.meta import Owner
from quorum.handlers.backends import backends_summary, observe_backends
from quorum.handlers.conditions import Cond, job_condition, now_rfc3339
from quorum.handlers.context import DONE, OperatorContext, Outcome, last_line, termination_message
from quorum.handlers.status import InvalidSpec, write_status

API = ("quorum.dev/v1alpha1", "EnsembleRouter")
SUMMARY_KEY = "summary.json"


def _summary(config_map: dict[str, Any] | None) -> dict[str, Any] | None:
    """The calibrator's `summary.json` (checksum, clusters, accuracies); None until calibration finished."""
    text = ((config_map or {}).get("data") or {}).get(SUMMARY_KEY)
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _calibration_error(ctx: OperatorContext, owner: Owner) -> str:
    pods = ctx.kube.list("v1", "Pod", owner.namespace, owner.selector(CALIBRATE_COMPONENT))
    failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
    if not failed:
        return ""
    return last_line(termination_message(max(failed, key=lambda p: p["metadata"].get("creationTimestamp") or "")))


def reconcile(ctx: OperatorContext, body: dict[str, Any]) -> Outcome:
    owner = Owner.of(body)
    previous = dict(body.get("status") or {})
    try:
        spec = EnsembleRouterSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        message = format_validation_error(error).strip()
        error_status = {"stage": "spec", "reason": "InvalidSpec", "message": message, "time": now_rfc3339()}
        conds = [Cond("Ready", False, "InvalidSpec", message), Cond("Degraded", True, "InvalidSpec", message)]
        write_status(ctx, body, {"phase": "Failed", "lastError": error_status}, conds, API)
        raise InvalidSpec(message) from error
    if spec.router.image is None:
        spec = spec.model_copy(update={"router": spec.router.model_copy(update={"image": ctx.image})})

    for manifest in router_children(owner, spec):
        ctx.apply(manifest)
    backends = observe_backends(ctx, owner, spec.models)
    ready_backends = [b for b in backends if b["ready"]]

    current = artifact_name(owner, spec)
    job = ctx.kube.get("batch/v1", "Job", owner.namespace, calibrate_job_name(owner, spec))
    if job is not None or len(ready_backends) == len(backends):
        job = ctx.apply(calibrate_job(owner, spec))
    summary = _summary(ctx.kube.get("v1", "ConfigMap", owner.namespace, current))
    in_use = (previous.get("calibration") or {}).get("artifact", "").removeprefix("configmap://")
    serving, serving_summary = (current, summary) if summary else (in_use, None)
    if serving and serving_summary is None:
        serving_summary = _summary(ctx.kube.get("v1", "ConfigMap", owner.namespace, serving))
        if serving_summary is None:
            serving = ""
    last_error = previous.get("lastError")
    calibration_failed = job_condition(job, "Failed")
    if calibration_failed:
        detail = _calibration_error(ctx, owner) or calibration_failed.get("message") or "calibration failed"
        last_error = {
            "stage": "calibration",
            "reason": "CalibrationFailed",
            "message": detail,
            "time": (last_error or {}).get("time") or now_rfc3339(),
        }

    router_ready = 0
    status: dict[str, Any] = {"backends": backends, "backendsReady": backends_summary(backends)}
    if serving:
        for manifest in serving_children(owner, spec, serving, serving_summary.get("checksum", "")):
            ctx.apply(manifest)
        deployment = ctx.kube.get("apps/v1", "Deployment", owner.namespace, router_name(owner))
        router_ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
        status["url"] = router_url(owner, spec)
        status["calibration"] = {
            "artifact": f"configmap://{serving}",
            "checksum": serving_summary.get("checksum", ""),
            "clusters": int(serving_summary.get("clusters") or 0),
            "questions": int(serving_summary.get("questions") or 0),
            "clusterSizes": serving_summary.get("clusterSizes"),
            "routedAccuracy": serving_summary.get("routedAccuracy"),
            "bestSingleAccuracy": serving_summary.get("bestSingleAccuracy"),
            "oracleAccuracy": serving_summary.get("oracleAccuracy"),
            "time": serving_summary.get("time"),
        }
    if summary:
        _delete_stale_calibrations(ctx, owner, keep={current, calibrate_job_name(owner, spec)})

    all_ready = len(ready_backends) == len(backends)
    backends_cond = (
        Cond("BackendsReady", True, "AllAvailable", f"{status['backendsReady']} ready")
        if all_ready
        else Cond("BackendsReady", False, "NotAvailable", f"{status['backendsReady']} ready")
    )
    if summary:
        calibrated = Cond("Calibrated", True, "Calibrated", f"artifact {current}")
    elif calibration_failed:
        calibrated = Cond("Calibrated", False, "CalibrationFailed", (last_error or {}).get("message", ""))
    else:
        calibrated = (
            Cond("Calibrated", False, "Calibrating", f"job {calibrate_job_name(owner, spec)}")
            if job is not None
            else Cond("Calibrated", False, "WaitingForBackends", f"{status['backendsReady']} backends ready")
        )
    router_cond = (
        Cond("RouterReady", True, "Available", f"{router_ready} ready replicas")
        if router_ready
        else Cond("RouterReady", False, "NotAvailable" if serving else "WaitingForCalibration")
    )
    ready = bool(router_ready and ready_backends)
    degraded_reasons = []
    if ready and not all_ready:
        degraded_reasons.append(f"backends {status['backendsReady']} ready")
    if calibration_failed:
        degraded_reasons.append("calibration failed")
    degraded = Cond(
        "Degraded",
        bool(degraded_reasons),
        "Degraded" if degraded_reasons else "AsExpected",
        "; ".join(degraded_reasons),
    )
    phase = (
        "Ready"
        if ready and not degraded_reasons
        else ("Degraded" if ready or calibration_failed else "Calibrating" if not serving else "Pending")
    )
    ready_reason = "Ready" if ready else (calibrated.reason if not serving else router_cond.reason)
    conds = [Cond("Ready", ready, ready_reason, router_cond.message), backends_cond, calibrated, router_cond, degraded]
    status.update({"phase": phase, "lastError": last_error})
    write_status(ctx, body, status, conds, API)
    if not ready:
        return Outcome(waiting_for="calibration" if not serving else "router", delay=10)
    return DONE


def _delete_stale_calibrations(ctx: OperatorContext, owner: Owner, keep: set[str]) -> None:
    for api_version, kind in (("batch/v1", "Job"), ("v1", "ConfigMap")):
        for item in ctx.kube.list(api_version, kind, owner.namespace, owner.selector(CALIBRATE_COMPONENT)):
            if item["metadata"]["name"] not in keep:
                ctx.kube.delete(api_version, kind, owner.namespace, item["metadata"]["name"])
