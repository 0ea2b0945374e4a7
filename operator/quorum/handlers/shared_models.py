"""The consumer side of shared Models, for both consuming kinds: which Models a spec references, what each
consumer asks of them, and the spec with every `modelRef` resolved to the Model's endpoint and granted
concurrency. Pure functions of what `observe` found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quorum.api.common import Endpoint
from quorum.api.ensemble import EnsembleRouterSpec
from quorum.api.model import ModelSpec
from quorum.api.resources import API_VERSION
from quorum.api.synthesis import SynthesisJobSpec
from quorum.builders.meta import Owner
from quorum.builders.model import model_key, model_url
from quorum.handlers.conditions import Cond, condition_true
from quorum.handlers.context import OperatorContext
from quorum.handlers.scaling import per_pod
from quorum.routing.config import DEFAULT_BACKEND_CONCURRENCY

ConsumerSpec = SynthesisJobSpec | EnsembleRouterSpec
CONSUMER_KINDS = ("SynthesisJob", "EnsembleRouter")


def referenced_models(spec: ConsumerSpec) -> list[str]:
    return list(dict.fromkeys(m.model_ref.name for m in spec.models if m.model_ref is not None))


def consumer_pods(spec: ConsumerSpec) -> int:
    """Pods of the consumer that call a model at once: worker shards in parallel, or router replicas."""
    if isinstance(spec, SynthesisJobSpec):
        return spec.workers.parallelism
    autoscaling = spec.router.autoscaling
    return autoscaling.max_replicas if autoscaling.enabled else spec.router.replicas


def requested_concurrency(spec: ConsumerSpec, model: str) -> int:
    """In-flight requests the consumer's pods together send to Model `model`: the per-pod limit of its entry
    (`maxConcurrency`, else the kind's default) times its pods."""
    default = spec.workers.concurrency_per_model if isinstance(spec, SynthesisJobSpec) else DEFAULT_BACKEND_CONCURRENCY
    entries = [m for m in spec.models if m.model_ref is not None and m.model_ref.name == model]
    return sum((m.max_concurrency or default) * consumer_pods(spec) for m in entries)


def needs_models(kind: str, body: dict[str, Any]) -> bool:
    """A consumer needs its Models until it is deleted or, for a SynthesisJob, finished."""
    if body["metadata"].get("deletionTimestamp"):
        return False
    status = body.get("status") or {}
    return kind != "SynthesisJob" or not (condition_true(status, "Succeeded") or condition_true(status, "Failed"))


@dataclass(frozen=True)
class Resolution:
    """The spec with `modelRef`s resolved, or why not yet: `missing` Models (Stalled), `waiting` ones (not
    ready, or not yet counting this consumer)."""

    spec: Any
    missing: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    ready: dict[str, bool] = field(default_factory=dict)
    """Entry name → whether its Model is ready, for the backend statuses."""

    def condition(self) -> Cond | None:
        if self.waiting:
            message = f"waiting for Model {', '.join(self.waiting)} (scaling up or not yet counting this consumer)"
            return Cond("BackendsReady", False, "WaitingForModel", message)
        return None


def observe_models(ctx: OperatorContext, namespace: str, spec: ConsumerSpec) -> dict[str, dict[str, Any]]:
    """The referenced Models that exist, by name."""
    found = {name: ctx.kube.read(API_VERSION, "Model", namespace, name) for name in referenced_models(spec)}
    return {name: body for name, body in found.items() if body is not None}


def resolve_references(
    ctx: OperatorContext, kind: str, owner: Owner, spec: ConsumerSpec, *, needed: bool = True
) -> Resolution | None:
    """A consumer's shared Models resolved (see `resolve`); None when it references none (nothing is read)."""
    if not any(m.model_ref is not None for m in spec.models):
        return None
    return resolve(kind, owner.name, spec, observe_models(ctx, owner.namespace, spec), owner.namespace, needed=needed)


def resolve(
    kind: str, name: str, spec: ConsumerSpec, models: dict[str, dict[str, Any]], namespace: str, *, needed: bool = True
) -> Resolution:
    """Each `modelRef` entry gets the endpoint of its Model (the Service URL and served model name) and the
    per-pod concurrency its Model granted this consumer, so every builder treats it like an external server:
    no Deployment of the consumer's own, nothing for the consumer's cleanup to delete. (The entry keeps its
    `modelRef`; the pods' configs are rebuilt from the endpoints, so they never carry both.) A consumer that
    no longer needs its Models (a finished job) is never Stalled by one that went away."""
    missing, waiting, ready, entries = [], [], {}, []
    for entry in spec.models:
        ref = entry.model_ref
        if ref is None:
            entries.append(entry)
            continue
        body = models.get(ref.name)
        if body is None and not needed:
            endpoint = Endpoint(
                url=model_url(namespace, ref.name), model=ref.name, api_key_secret_ref=model_key(namespace, ref.name)
            )
            entries.append(entry.model_copy(update={"endpoint": endpoint}))
            continue
        if body is None:
            missing.append(ref.name)
            continue
        status = body.get("status") or {}
        grant = next(
            (c for c in status.get("consumers") or [] if c.get("kind") == kind and c.get("name") == name), None
        )
        is_ready = condition_true(status, "Ready") and grant is not None
        ready[entry.name] = is_ready
        if not is_ready and ref.name not in waiting:
            waiting.append(ref.name)
        served = ModelSpec.model_validate(body.get("spec") or {}).model
        granted = int((grant or {}).get("granted") or 1)
        endpoint = Endpoint(
            url=model_url(namespace, ref.name), model=served, api_key_secret_ref=model_key(namespace, ref.name)
        )
        update = {"endpoint": endpoint, "max_concurrency": per_pod(granted, consumer_pods(spec))}
        entries.append(entry.model_copy(update=update))
    resolved = spec.model_copy(update={"models": entries}) if not missing else spec
    return Resolution(resolved, missing, waiting, ready)


def missing_message(missing: list[str]) -> str:
    names = ", ".join(missing)
    return f"spec.models[].modelRef: Model {names} not found in this namespace; create it or change the reference"


def with_model_readiness(backends: list[dict[str, Any]], resolution: Resolution) -> list[dict[str, Any]]:
    """Backend statuses where a modelRef entry is ready only when its Model is (an endpoint counts as ready)."""
    return [{**b, "ready": resolution.ready.get(b["name"], b["ready"])} for b in backends]
