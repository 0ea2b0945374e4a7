"""Reconcile as observe → plan → execute (KubeAI's pod plan): `observe` reads what exists, a pure `plan`
decides the applies, patches, deletes, status and events, and `execute` performs them. The plan is where all
decisions live, so it is table-tested without a cluster; execute only talks to the API server and turns its
answers into kstatus conditions.

Errors are sorted once, here:
- permanent (an invalid spec, the API server's 4xx on a child, a name another owner holds) → `Stalled=True`
  and `Ready=False` with a reason and a message naming the field, one Warning event, no retries until the
  spec changes (a new `metadata.generation`);
- transient (5xx, a lost connection, throttling, conflicts, waiting for backends) → `Reconciling=True` and a
  retry with backoff.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ValidationError

from quorum.api.base import format_validation_error
from quorum.builders.credentials import is_create_only
from quorum.builders.meta import Owner, foreign_controller
from quorum.handlers.conditions import Cond, now_rfc3339
from quorum.handlers.context import DONE, OperatorContext, Outcome
from quorum.handlers.status import write_status

PERMANENT_REASONS = ("InvalidSpec", "ChildRejected")
"""Stalled reasons that only a spec change can fix; `NameConflict` is re-checked every resync, because
deleting the other object fixes it."""
TRANSIENT_STATUS = (404, 408, 409, 429)
"""4xx answers that are not the child's fault: the namespace or object is in flux, or we are throttled."""

Key = tuple[str, str, str]
"""(apiVersion, kind, name) of a child in the resource's namespace."""
WORKLOADS = ("Deployment", "Job", "HorizontalPodAutoscaler")
"""Kinds whose pods (or targets) use the other children: created only once those exist (`converge_all`)."""
APPLIERS = ThreadPoolExecutor(16, thread_name_prefix="apply")
"""Threads converging one reconcile's children side by side (each mostly waits on the API server)."""


def key_of(manifest: dict[str, Any]) -> Key:
    return manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]


@dataclass
class Plan:
    """Everything one reconcile will do, decided before anything is done."""

    status: dict[str, Any] | None
    """The status fields to write with `conditions`; None writes no status (e.g. the resource is deleted)."""
    conditions: list[Cond] = field(default_factory=list)
    existing: dict[Key, dict[str, Any]] = field(default_factory=dict)
    """The observed children: `execute` creates what is not among them and skips applies that would change
    nothing (the applied manifest's hash is kept on the child)."""
    dry_runs: list[dict[str, Any]] = field(default_factory=list)
    """Children created later (the Jobs wait for the backends) that the API server validates now, so a spec
    it would refuse is Stalled at once instead of after the GPUs came up."""
    applies: list[dict[str, Any]] = field(default_factory=list)
    """Manifests to server-side apply (create or update), in order."""
    patches: list[tuple[Key, dict[str, Any]]] = field(default_factory=list)
    """Merge patches of mutable fields of existing children (a Job's template is immutable)."""
    deletes: list[Key] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, reason, message) posted besides the one per condition transition."""
    outcome: Outcome = DONE


def kstatus(reconciling: Cond, stalled: Cond | None = None) -> list[Cond]:
    """kstatus's pair: `Reconciling` as given, `Stalled` False unless a permanent error is given."""
    return [reconciling, stalled or Cond("Stalled", False, "AsExpected")]


def stalled_conditions(reason: str, message: str, extra: list[Cond] | None = None) -> list[Cond]:
    """The conditions of a permanent error: Ready=False, Stalled=True, Reconciling=False, plus the kind's
    own (e.g. Failed=True for an invalid SynthesisJob)."""
    return [
        Cond("Ready", False, reason, message),
        *(extra or []),
        *kstatus(Cond("Reconciling", False, reason), Cond("Stalled", True, reason, message)),
    ]


def stalled_plan(reason: str, message: str, extra: list[Cond] | None = None, stage: str = "spec") -> Plan:
    error = {"stage": stage, "reason": reason, "message": message}
    return Plan(status={"lastError": error}, conditions=stalled_conditions(reason, message, extra))


def still_stalled(body: dict[str, Any]) -> bool:
    """A permanent error for this very generation was reported already: nothing changed, nothing to do."""
    status = body.get("status") or {}
    generation = body["metadata"].get("generation")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Stalled" and cond.get("status") == "True":
            return cond.get("reason") in PERMANENT_REASONS and cond.get("observedGeneration") == generation
    return False


def spec_errors(error: ValidationError) -> str:
    """A spec's validation errors as the API server words them: `spec.<path>: <message>`, one per line."""
    return "\n".join(f"spec.{line.strip()}" for line in format_validation_error(error).splitlines() if line.strip())


def observe_children(
    ctx: OperatorContext, owner: Owner, manifests: list[dict[str, Any]], extra: tuple[tuple[str, str], ...] = ()
) -> dict[Key, dict[str, Any]]:
    """Every object of the kinds of `manifests` (plus `extra`) labelled as `owner`'s, by key: one LIST per
    kind, not one GET per child. An object under a child's name without our label is found by `execute`
    instead: children are created with a plain create, which the API server refuses when the name is taken."""
    # Generated Secrets are never observed: the operator may not list Secrets (handlers/context.py).
    observed = [(m["apiVersion"], m["kind"]) for m in manifests if not is_create_only(m)]
    kinds = dict.fromkeys(observed + list(extra))
    selector = {owner.parent_label: owner.name}
    return {
        (api_version, kind, item["metadata"]["name"]): item
        for api_version, kind in kinds
        for item in ctx.kube.list(api_version, kind, owner.namespace, selector)
    }


def name_conflicts(owner: Owner, manifests: list[dict[str, Any]], observed: dict[Key, dict[str, Any]]) -> str:
    """One line naming every desired child that exists under another controller; "" when there is none."""
    clashes = []
    for manifest in manifests:
        other = foreign_controller(observed.get(key_of(manifest)), owner)
        if other:
            clashes.append(f"{manifest['kind']} {manifest['metadata']['name']} is controlled by {other}")
    if not clashes:
        return ""
    return "; ".join(clashes) + "; Quorum never adopts or overwrites it: delete or rename it"


def api_error_message(error: ApiException) -> str:
    """The API server's own sentence (it names the failing field), not the whole HTTP dump."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (TypeError, ValueError):
        return str(error.reason or error)


def is_permanent(error: ApiException) -> bool:
    """A 4xx that is the child's fault. An exhausted ResourceQuota (403) frees up by itself: transient."""
    status = int(error.status or 0)
    if status == 403 and "exceeded quota" in api_error_message(error):
        return False
    return 400 <= status < 500 and status not in TRANSIENT_STATUS


Stall = Callable[[str, str, str], Plan]
"""(reason, message, stage) → the plan of a permanent error, with the kind's own conditions."""


def execute(ctx: OperatorContext, body: dict[str, Any], plan: Plan, api: tuple[str, str], stall: Stall) -> Outcome:
    """Perform the plan; a child the API server refuses becomes `Stalled` (4xx) or a retry (the rest)."""
    namespace = body["metadata"]["namespace"]
    try:
        for manifest in plan.dry_runs:
            ctx.validate(manifest)
        converge_all(ctx, plan.applies, plan.existing)
        for (api_version, kind, name), patch in plan.patches:
            ctx.kube.patch_merge(api_version, kind, namespace, name, patch)
        for api_version, kind, name in plan.deletes:
            ctx.kube.delete(api_version, kind, namespace, name)
    except ApiException as error:
        if error.status == 409 and "already exists" in api_error_message(error):
            message = f"{api_error_message(error)}, not created by Quorum; it is never adopted: delete or rename it"
            plan = stall("NameConflict", message, "children")
        elif not is_permanent(error):
            raise
        else:
            plan = stall("ChildRejected", f"the API server refused a child: {api_error_message(error)}", "children")
    for type_, reason, message in plan.events:
        ctx.post_event(body, type_, reason, message)
    if plan.status is None:
        return plan.outcome
    status = dict(plan.status)
    if "lastError" in status:
        status["lastError"] = stamped(body.get("status") or {}, status["lastError"])
    write_status(ctx, body, status, plan.conditions, api)
    return plan.outcome


def converge_all(ctx: OperatorContext, manifests: list[dict[str, Any]], existing: dict[Key, dict[str, Any]]) -> None:
    """Converge the children in two waves, each side by side: what pods use (ServiceAccount, RBAC,
    ConfigMaps, Secrets, Services, NetworkPolicies), then the workloads. One after another, a new
    SynthesisJob's five creates were five round trips to a loaded API server before its workers could start
    (bench/operator_scale.py). The second wave waits for the first, so no pod is created before its
    ServiceAccount or ConfigMap exists. A refused child is raised as the first in apply order, once its whole
    wave has been answered."""
    for wave in (
        [m for m in manifests if m["kind"] not in WORKLOADS],
        [m for m in manifests if m["kind"] in WORKLOADS],
    ):
        if len(wave) < 2:
            for manifest in wave:
                ctx.converge(manifest, existing.get(key_of(manifest)))
            continue
        futures = [APPLIERS.submit(ctx.converge, manifest, existing.get(key_of(manifest))) for manifest in wave]
        wait(futures)
        for future in futures:
            future.result()


SpecT = TypeVar("SpecT", bound=BaseModel)


def reconcile_with(
    ctx: OperatorContext,
    body: dict[str, Any],
    spec_type: type[SpecT],
    api: tuple[str, str],
    stall: Stall,
    plan_for: Callable[[Owner, SpecT, dict[str, Any]], Plan],
) -> Outcome:
    """Every kind's reconcile: nothing to do while this generation is Stalled already; a spec the models refuse
    is Stalled naming its fields; otherwise the kind's observe and plan (`plan_for(owner, spec, previous
    status)`), then execute."""
    if still_stalled(body):
        return Outcome()
    try:
        spec = spec_type.model_validate(body.get("spec") or {})
    except ValidationError as error:
        return execute(ctx, body, stall("InvalidSpec", spec_errors(error), "spec"), api, stall)
    return execute(ctx, body, plan_for(Owner.of(body), spec, dict(body.get("status") or {})), api, stall)


def transient_failure(ctx: OperatorContext, body: dict[str, Any], error: Exception, api: tuple[str, str]) -> None:
    """Record a transient error (`Reconciling=True`, `lastError`) without touching the other conditions."""
    previous = body.get("status") or {}
    message = api_error_message(error) if isinstance(error, ApiException) else f"{type(error).__name__}: {error}"
    kept = [
        Cond(
            c["type"],
            {"True": True, "False": False}.get(c.get("status")),
            c.get("reason") or c["type"],
            c.get("message", ""),
        )
        for c in previous.get("conditions") or []
        if c.get("type") not in ("Reconciling", "Stalled")
    ]
    conds = [*kept, *kstatus(Cond("Reconciling", True, "Retrying", f"transient error, retrying: {message}"))]
    error_status = {"stage": "reconcile", "reason": "TransientError", "message": message}
    with contextlib.suppress(ApiException):  # the API server itself is the problem; the retry reports it
        write_status(ctx, body, {"lastError": stamped(previous, error_status)}, conds, api)


def stamped(previous: dict[str, Any], error: dict[str, Any] | None) -> dict[str, Any] | None:
    """`error` with a time: the previous one's when it is the same error (so an unchanged status is not
    rewritten), else now."""
    if error is None or error.get("time"):
        return error
    before = previous.get("lastError") or {}
    same = before.get("reason") == error.get("reason") and before.get("message") == error.get("message")
    return {**error, "time": before.get("time") if same and before.get("time") else now_rfc3339()}
