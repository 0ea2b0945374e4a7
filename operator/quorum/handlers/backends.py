"""Readiness of the model backends, shared by both kinds."""

from __future__ import annotations

from typing import Any

from quorum.builders.backends import BACKEND_COMPONENT, backend_name, resolve_endpoints
from quorum.builders.meta import Owner
from quorum.handlers.context import OperatorContext


def observe_backends(ctx: OperatorContext, owner: Owner, models: list[Any]) -> list[dict[str, Any]]:
    """One `BackendStatus` per model: ready replicas of served models; external endpoints count as ready
    (the operator never calls them; workers and the router retry and report their failures)."""
    endpoints = {e.name: e.display_url for e in resolve_endpoints(owner, models)}
    backends = []
    for entry in models:
        if not entry.deployed:
            backends.append(
                {"name": entry.name, "ready": True, "readyReplicas": 0, "replicas": 0, "url": endpoints[entry.name]}
            )
            continue
        deployment = ctx.kube.get("apps/v1", "Deployment", owner.namespace, backend_name(owner, entry.name))
        ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
        backends.append(
            {
                "name": entry.name,
                "ready": ready > 0,
                "readyReplicas": ready,
                "replicas": entry.replicas,
                "url": endpoints[entry.name],
            }
        )
    return backends


def backends_summary(backends: list[dict[str, Any]]) -> str:
    return f"{sum(b['ready'] for b in backends)}/{len(backends)}"


def delete_backends(ctx: OperatorContext, owner: Owner) -> int:
    """Free the GPUs: delete every model Deployment and Service of `owner`."""
    deleted = 0
    for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service")):
        for item in ctx.kube.list(api_version, kind, owner.namespace, owner.selector(BACKEND_COMPONENT)):
            deleted += ctx.kube.delete(api_version, kind, owner.namespace, item["metadata"]["name"])
    return deleted
