"""Reconcile a shared Model as observe → `plan` (pure) → execute (see handlers/plan.py).

`observe` reads the Model's Deployment and Service, the consumers that reference it (SynthesisJobs and
EnsembleRouters of its namespace; a finished SynthesisJob no longer needs it) and the queue depth its ready
replicas report on `/metrics`. `plan` decides the replica count (handlers/scaling.py), the consumers' shares
of `maxConcurrency`, and the status consumers wait on. Consumers never own or delete a Model.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.api.model import ModelSpec
from quorum.api.synthesis import SynthesisJobSpec
from quorum.builders.backends import VLLM_PORT, backend_name
from quorum.builders.meta import Owner
from quorum.builders.model import model_manifests, model_url
from quorum.handlers.conditions import Cond, parse_time
from quorum.handlers.context import OperatorContext, Outcome
from quorum.handlers.plan import (
    Key,
    Plan,
    kstatus,
    name_conflicts,
    observe_children,
    reconcile_with,
    stalled_plan,
)
from quorum.handlers.scaling import desired_replicas, split_budget, waiting_requests
from quorum.handlers.shared_models import needs_models, referenced_models, requested_concurrency

API = ("quorum.dev/v1alpha1", "Model")
CONSUMER_SPECS: dict[str, type[SynthesisJobSpec] | type[EnsembleRouterSpec]] = {
    "SynthesisJob": SynthesisJobSpec,
    "EnsembleRouter": EnsembleRouterSpec,
}
SCRAPE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Consumer:
    kind: str
    name: str
    requested: int


@dataclass(frozen=True)
class Observed:
    children: dict[Key, dict[str, Any]] = field(default_factory=dict)
    consumers: list[Consumer] = field(default_factory=list)
    waiting: int | None = None
    """`vllm:num_requests_waiting` summed over the ready replicas; None when none answered."""


@dataclass(frozen=True)
class ModelView:
    owner: Owner
    spec: ModelSpec
    previous: dict[str, Any]
    now: datetime.datetime


def consumers_of(ctx: OperatorContext, namespace: str, name: str) -> list[Consumer]:
    """The resources of the namespace that reference Model `name` and need it now (one LIST per kind)."""
    found = []
    for kind, spec_type in CONSUMER_SPECS.items():
        for body in ctx.kube.list(API[0], kind, namespace, {}):
            try:
                spec = spec_type.model_validate(body.get("spec") or {})
            except ValidationError:
                continue  # Stalled on its own; an invalid spec asks nothing of anyone
            if name in referenced_models(spec) and needs_models(kind, body):
                found.append(Consumer(kind, body["metadata"]["name"], requested_concurrency(spec, name)))
    return sorted(found, key=lambda c: (c.kind, c.name))


def scrape_waiting(pods: list[dict[str, Any]]) -> int | None:
    """Queue depth of the ready replicas, from each pod's vLLM `/metrics`; None when no replica answered."""
    total, answered = 0, False
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if not ready or not status.get("podIP"):
            continue
        try:
            response = httpx.get(f"http://{status['podIP']}:{VLLM_PORT}/metrics", timeout=SCRAPE_TIMEOUT_SECONDS)
            response.raise_for_status()
        except httpx.HTTPError:
            continue
        total += waiting_requests(response.text)
        answered = True
    return total if answered else None


def observe(ctx: OperatorContext, owner: Owner, spec: ModelSpec) -> Observed:
    children = observe_children(ctx, owner, model_manifests(owner, spec, 0))
    pods = ctx.kube.list("v1", "Pod", owner.namespace, {owner.parent_label: owner.name})
    return Observed(children, consumers_of(ctx, owner.namespace, owner.name), scrape_waiting(pods))


def reconcile(ctx: OperatorContext, body: dict[str, Any]) -> Outcome:
    def plan_for(owner: Owner, spec: ModelSpec, previous: dict[str, Any]) -> Plan:
        view = ModelView(owner, spec, previous, datetime.datetime.now(datetime.UTC))
        return plan(view, observe(ctx, owner, spec))

    return reconcile_with(ctx, body, ModelSpec, API, stalled, plan_for)


def stalled(reason: str, message: str, stage: str = "spec") -> Plan:
    result = stalled_plan(reason, message, None, stage)
    assert result.status is not None
    result.status["phase"] = "Stalled"
    return result


def plan(model: ModelView, observed: Observed) -> Plan:
    """Replicas, children, consumers' shares and status, from the spec, what exists and the clock; no I/O."""
    owner, spec, previous = model.owner, model.spec, model.previous
    deployment_key = ("apps/v1", "Deployment", backend_name(owner, owner.name))
    deployment = observed.children.get(deployment_key)
    current = int(((deployment or {}).get("spec") or {}).get("replicas") or 0)
    consumers = observed.consumers
    idle_since = None if consumers else (parse_time(previous.get("idleSince")) or model.now)
    idle_for = (model.now - idle_since).total_seconds() if idle_since else None
    replicas = desired_replicas(spec.replicas, current, observed.waiting, len(consumers), idle_for)
    manifests = model_manifests(owner, spec, replicas, [(c.kind, c.name) for c in consumers])
    conflict = name_conflicts(owner, manifests, observed.children)
    if conflict:
        return stalled("NameConflict", conflict, "children")
    ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0) if replicas else 0
    grants = split_budget(spec.max_concurrency, [c.requested for c in consumers])
    status: dict[str, Any] = {
        "readyReplicas": ready,
        "replicas": replicas,
        "url": model_url(owner.namespace, owner.name),
        "consumers": [
            {"kind": c.kind, "name": c.name, "requested": c.requested, "granted": g}
            for c, g in zip(consumers, grants, strict=True)
        ],
        "consumerCount": len(consumers),
        "waitingRequests": observed.waiting,
        "idleSince": idle_since.strftime("%Y-%m-%dT%H:%M:%SZ") if idle_since else None,
        "lastError": None,
    }
    result = Plan(status=status, existing=observed.children, applies=manifests)
    if replicas != current and deployment is not None:
        why = "requests queue" if consumers and replicas > max(current, 1) else f"{len(consumers)} consumers"
        result.events.append(("Normal", "Scaled", f"replicas {current} -> {replicas} ({why})"))
    result.conditions, status["phase"], result.outcome = _readiness(spec, replicas, ready, idle_for)
    return result


def _readiness(spec: ModelSpec, replicas: int, ready: int, idle_for: float | None) -> tuple[list[Cond], str, Outcome]:
    """Ready while a replica serves; scaled to zero is not an error (nothing is pending: not Reconciling)."""
    if replicas == 0:
        message = "no consumer needs it; scaled to zero"
        conds = [Cond("Ready", False, "ScaledToZero", message), *kstatus(Cond("Reconciling", False, "ScaledToZero"))]
        return conds, "ScaledToZero", Outcome()
    idle_wait = Outcome()
    if idle_for is not None and replicas > spec.replicas.min:
        idle_wait = Outcome(waiting_for="the idle period", delay=max(1.0, spec.replicas.idle_seconds - idle_for))
    if ready >= 1:
        message = f"{ready}/{replicas} replicas ready"
        reconciling = Cond("Reconciling", ready < replicas, "Scaling" if ready < replicas else "Ready", message)
        return [Cond("Ready", True, "Available", message), *kstatus(reconciling)], "Ready", idle_wait
    message = f"0/{replicas} replicas ready; loading the model"
    conds = [Cond("Ready", False, "Scaling", message), *kstatus(Cond("Reconciling", True, "Scaling", message))]
    return conds, "Scaling", idle_wait if idle_wait.waiting else Outcome(waiting_for="replicas", delay=5)
