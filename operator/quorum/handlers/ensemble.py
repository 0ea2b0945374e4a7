"""Reconcile an EnsembleRouter: backends → calibration Job filling a content-addressed ConfigMap → router
Deployment + Service (+ HPA) serving the newest calibrated artifact. Shaped as observe → `plan` (pure) →
execute (see handlers/plan.py).

A changed pool, embedder or calibration setting gets a new calibration hash, so a new Job and ConfigMap; the
router keeps serving the previous artifact until the new one is complete, then rolls to it, and older
calibrations are deleted. A calibration Job that completes without writing its artifact is rerun up to its
`backoffLimit`, with the pod's termination message in `Calibrated`; then it is reported failed. The operator's
default image is resolved once and kept in `status.image`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.builders.ensemble import (
    CALIBRATE_COMPONENT,
    artifact_config_map,
    calibrate_job,
    router_children,
    router_url,
    serving_children,
)
from quorum.builders.meta import LABEL_COMPONENT, Owner
from quorum.handlers.backends import backend_statuses, backends_condition, backends_summary
from quorum.handlers.conditions import Cond, job_condition
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
from quorum.handlers.shared_models import Resolution, missing_message, resolve_references

API = ("quorum.dev/v1alpha1", "EnsembleRouter")
SUMMARY_KEY = "summary.json"
CALIBRATION_KINDS = (("batch/v1", "Job"), ("v1", "ConfigMap"))


@dataclass(frozen=True)
class Observed:
    children: dict[Key, dict[str, Any]] = field(default_factory=dict)
    """Desired children that exist (ours or another owner's), plus the ConfigMap in use."""
    calibration_pods: list[dict[str, Any]] = field(default_factory=list)
    calibrations: list[Key] = field(default_factory=list)
    """Every calibration Job and artifact ConfigMap of the resource, current or stale."""
    shared: Resolution | None = None
    """The referenced shared Models (`modelRef`), when there are any."""


@dataclass(frozen=True)
class Desired:
    base: list[dict[str, Any]]
    calibrate: dict[str, Any]
    artifact: str
    serving: list[dict[str, Any]]
    """The router's children on a placeholder artifact: their names and kinds, for `observe`."""


def desired(owner: Owner, spec: EnsembleRouterSpec) -> Desired:
    serving = serving_children(owner, spec, "", "")
    artifact = artifact_config_map(owner, spec)["metadata"]["name"]
    return Desired(router_children(owner, spec), calibrate_job(owner, spec), artifact, serving)


def in_use(previous: dict[str, Any]) -> str:
    return (previous.get("calibration") or {}).get("artifact", "").removeprefix("configmap://")


def observe(ctx: OperatorContext, owner: Owner, spec: EnsembleRouterSpec) -> Observed:
    try:
        want = desired(owner, spec)
    except ValueError:
        return Observed()  # the plan reports it
    children = observe_children(ctx, owner, [*want.base, want.calibrate, *want.serving])
    selector = owner.selector(CALIBRATE_COMPONENT)
    calibrations = [
        key
        for key, obj in children.items()
        if key[:2] in CALIBRATION_KINDS
        and (obj["metadata"].get("labels") or {}).get(LABEL_COMPONENT) == selector[LABEL_COMPONENT]
    ]
    return Observed(
        children=children,
        calibration_pods=ctx.kube.list("v1", "Pod", owner.namespace, selector),
        calibrations=calibrations,
    )


def stalled(reason: str, message: str, stage: str = "spec") -> Plan:
    result = stalled_plan(reason, message, [Cond("Degraded", True, reason, message)], stage)
    assert result.status is not None
    result.status["phase"] = "Failed" if reason == "InvalidSpec" else "Stalled"
    return result


def resolve_image(spec: EnsembleRouterSpec, previous: dict[str, Any], default: str) -> EnsembleRouterSpec:
    """The spec's image, else the one recorded at the first reconcile, else the operator's default (recorded
    from now on): an operator upgrade must not roll a serving router onto an image nobody asked for."""
    image = spec.router.image or previous.get("image") or default
    return spec.model_copy(update={"router": spec.router.model_copy(update={"image": image})})


def reconcile(ctx: OperatorContext, body: dict[str, Any]) -> Outcome:
    def plan_for(owner: Owner, spec: EnsembleRouterSpec, previous: dict[str, Any]) -> Plan:
        spec = resolve_image(spec, previous, ctx.image)
        shared = resolve_references(ctx, API[1], owner, spec)
        if shared is not None and shared.missing:
            return stalled("ModelNotFound", missing_message(shared.missing), "models")
        spec = shared.spec if shared is not None else spec
        return plan(owner, spec, dataclasses.replace(observe(ctx, owner, spec), shared=shared), previous)

    return reconcile_with(ctx, body, EnsembleRouterSpec, API, stalled, plan_for)


def _summary(config_map: dict[str, Any] | None) -> dict[str, Any] | None:
    """The calibrator's `summary.json` (checksum, clusters, accuracies); None until calibration finished."""
    text = ((config_map or {}).get("data") or {}).get(SUMMARY_KEY)
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _newest_message(pods: list[dict[str, Any]], phase: str) -> str:
    chosen = [p for p in pods if (p.get("status") or {}).get("phase") == phase]
    if not chosen:
        return ""
    return last_line(termination_message(max(chosen, key=lambda p: p["metadata"].get("creationTimestamp") or "")))


def plan(owner: Owner, spec: EnsembleRouterSpec, observed: Observed, previous: dict[str, Any]) -> Plan:
    """Everything this reconcile does, from the spec, what exists and the previous status; no I/O."""
    try:
        want = desired(owner, spec)
    except ValueError as error:  # a location no pod can use
        return stalled("InvalidSpec", str(error))
    conflict = name_conflicts(owner, [*want.base, want.calibrate, *want.serving], observed.children)
    if conflict:
        return stalled("NameConflict", conflict, "children")
    backends = backend_statuses(owner, spec.models, observed.children, observed.shared)
    status = {"backends": backends, "image": spec.router.image}
    result = Plan(status=status, applies=list(want.base), existing=observed.children)
    result.status["backendsReady"] = backends_summary(backends)
    job = observed.children.get(key_of(want.calibrate))
    if job is None and all(b["ready"] for b in backends):
        result.applies.append(want.calibrate)
    elif job is None:
        result.dry_runs += [want.calibrate, *serving_children(owner, spec, want.artifact, "")]
    summary = _summary(observed.children.get(("v1", "ConfigMap", want.artifact)))
    calibrated = calibration_condition(result, want, job, summary, observed, previous)
    serving, serving_summary = (want.artifact, summary) if summary else (in_use(previous), None)
    if serving and serving_summary is None:
        serving_summary = _summary(observed.children.get(("v1", "ConfigMap", serving)))
        serving = serving if serving_summary else ""
    router_ready = serve(result, owner, spec, observed, serving, serving_summary)
    if summary:
        keep = {want.artifact, key_of(want.calibrate)[2]}
        result.deletes += [key for key in observed.calibrations if key[2] not in keep]
    router_conditions(result, backends, calibrated, serving, router_ready, observed.shared)
    return result


def calibration_condition(
    result: Plan, want: Desired, job: dict[str, Any] | None, summary: Any, observed: Observed, previous: dict[str, Any]
) -> Cond:
    """`Calibrated`, and the rerun of a calibration that completed without writing its artifact."""
    assert result.status is not None
    name = key_of(want.calibrate)[2]
    retries = int(previous.get("calibrationRetries") or 0)
    result.status["calibrationRetries"] = 0 if summary else retries
    result.status["lastError"] = previous.get("lastError")
    if summary:
        return Cond("Calibrated", True, "Calibrated", f"artifact {want.artifact}")
    failed = job_condition(job, "Failed")
    missing = job_condition(job, "Complete") is not None
    if not failed and not missing:
        if job is None:
            return Cond("Calibrated", False, "WaitingForBackends", "waiting for every backend to be ready")
        return Cond("Calibrated", False, "Calibrating", f"job {name}")
    if failed:
        detail = _newest_message(observed.calibration_pods, "Failed") or failed.get("message") or "calibration failed"
    else:
        said = _newest_message(observed.calibration_pods, "Succeeded") or "no termination message"
        detail = f"job {name} completed without writing artifact {want.artifact} ({said})"
        if retries < int(want.calibrate["spec"].get("backoffLimit") or 0):
            result.deletes.append(key_of(want.calibrate))
            result.status["calibrationRetries"] = retries + 1
            return Cond("Calibrated", False, "ArtifactMissing", f"{detail}; retry {retries + 1}")
    result.status["lastError"] = {"stage": "calibration", "reason": "CalibrationFailed", "message": detail}
    return Cond("Calibrated", False, "CalibrationFailed", detail)


def serve(
    result: Plan,
    owner: Owner,
    spec: EnsembleRouterSpec,
    observed: Observed,
    serving: str,
    summary: dict[str, Any] | None,
) -> int:
    """The router on the artifact in use (once there is one); its ready replicas."""
    assert result.status is not None
    if not serving or summary is None:
        return 0
    children = serving_children(owner, spec, serving, summary.get("checksum", ""))
    result.applies += children
    deployment = observed.children.get(key_of(children[0]))
    result.status["url"] = router_url(owner, spec)
    result.status["calibration"] = {
        "artifact": f"configmap://{serving}",
        "checksum": summary.get("checksum", ""),
        "clusters": int(summary.get("clusters") or 0),
        "questions": int(summary.get("questions") or 0),
        "clusterSizes": summary.get("clusterSizes"),
        "routedAccuracy": summary.get("routedAccuracy"),
        "bestSingleAccuracy": summary.get("bestSingleAccuracy"),
        "oracleAccuracy": summary.get("oracleAccuracy"),
        "time": summary.get("time"),
    }
    return int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)


def router_conditions(
    result: Plan,
    backends: list[dict[str, Any]],
    calibrated: Cond,
    serving: str,
    router_ready: int,
    shared: Resolution | None = None,
) -> None:
    assert result.status is not None
    backends_cond = backends_condition(backends, shared)
    router_cond = (
        Cond("RouterReady", True, "Available", f"{router_ready} ready replicas")
        if router_ready
        else Cond("RouterReady", False, "NotAvailable" if serving else "WaitingForCalibration")
    )
    ready = bool(router_ready and any(b["ready"] for b in backends))
    calibration_failed = calibrated.reason == "CalibrationFailed"
    degraded_reasons = (
        [f"backends {result.status['backendsReady']} ready"] if ready and not backends_cond.status else []
    )
    if calibration_failed:
        degraded_reasons.append("calibration failed")
    degraded = Cond(
        "Degraded",
        bool(degraded_reasons),
        "Degraded" if degraded_reasons else "AsExpected",
        "; ".join(degraded_reasons),
    )
    if ready:
        phase = "Degraded" if degraded_reasons else "Ready"
    else:
        phase = "Degraded" if calibration_failed else ("Calibrating" if not serving else "Pending")
    ready_reason = "Ready" if ready else (calibrated.reason if not serving else router_cond.reason)
    waiting = not ready and not calibration_failed
    result.conditions = [
        Cond("Ready", ready, ready_reason, router_cond.message),
        backends_cond,
        calibrated,
        router_cond,
        degraded,
        *kstatus(Cond("Reconciling", waiting, ready_reason, calibrated.message if waiting else "")),
    ]
    result.status["phase"] = phase
    if waiting:
        result.outcome = Outcome(waiting_for="calibration" if not serving else "router", delay=10)
