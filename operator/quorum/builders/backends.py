"""Model backends: one vLLM Deployment + Service per model Quorum serves, and the endpoint every model is
reached at (Service DNS name or the external URL)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from quorum.api.common import ModelCache, ModelEntry, SecretKeyRef, VLLMSettings
from quorum.builders.credentials import model_key_ref
from quorum.builders.meta import (
    CONTAINER_SECURITY_CONTEXT,
    POD_SECURITY_CONTEXT,
    TMP_MOUNT,
    TMP_VOLUME,
    Owner,
    child_name,
)

VLLM_PORT = 8000
VLLM_API_KEY_ENV = "VLLM_API_KEY"
BACKEND_COMPONENT = "model-server"
STARTUP_PROBE_PERIOD = 10


def backend_name(owner: Owner, model: str) -> str:
    """The Deployment and Service of one served model; a shared Model serves only itself (`<name>-vllm-<hash>`)."""
    if owner.kind == "Model":
        return child_name(owner, "vllm")
    return child_name(owner, model=model)


def backend_url(owner: Owner, model: str) -> str:
    """The base URL of a served model's Service, as workers and routers reach it."""
    return f"http://{backend_name(owner, model)}.{owner.namespace}.svc:{VLLM_PORT}/v1"


@dataclass(frozen=True)
class ResolvedEndpoint:
    """Where workers and the router reach a model; `api_key` is only ever a reference to a Secret key."""

    name: str
    url: str
    model: str
    api_key: SecretKeyRef | None = None

    @property
    def api_key_env(self) -> str:
        return api_key_env(self.name)

    @property
    def display_url(self) -> str:
        """The URL as status shows it: any `user:password@` (refused by the CRD, but an object stored before
        that rule may carry one) removed."""
        return without_credentials(self.url)


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def api_key_env(model_name: str) -> str:
    """The environment variable holding a model's API key inside worker and router pods."""
    return "QUORUM_API_KEY_" + re.sub(r"[^A-Z0-9]", "_", model_name.upper())


def resolve_endpoints(owner: Owner, models: list[Any]) -> list[ResolvedEndpoint]:
    """Service DNS names for served models (which require the generated model key), the given URL for
    external ones."""
    resolved = []
    for entry in models:
        if entry.endpoint is None and getattr(entry, "model_ref", None) is not None:
            raise ValueError(f"model {entry.name!r}: modelRef {entry.model_ref.name!r} was not resolved to its Model")
        if entry.endpoint is not None:
            endpoint = entry.endpoint
            resolved.append(ResolvedEndpoint(entry.name, endpoint.url, endpoint.model, endpoint.api_key_secret_ref))
        else:
            resolved.append(
                ResolvedEndpoint(entry.name, backend_url(owner, entry.name), entry.model, model_key_ref(owner))
            )
    return resolved


def api_key_env_vars(endpoints: list[ResolvedEndpoint]) -> list[dict[str, Any]]:
    """Environment entries that expose API keys to a pod through `secretKeyRef`, never by value."""
    return [
        {
            "name": endpoint.api_key_env,
            "valueFrom": {"secretKeyRef": {"name": endpoint.api_key.name, "key": endpoint.api_key.key}},
        }
        for endpoint in endpoints
        if endpoint.api_key is not None
    ]


def vllm_args(entry: ModelEntry, settings: VLLMSettings) -> list[str]:
    return [
        "serve",
        entry.model or "",
        "--host=0.0.0.0",
        f"--port={VLLM_PORT}",
        f"--served-model-name={entry.model}",
        f"--tensor-parallel-size={settings.tensor_parallel_size}",
        f"--max-model-len={settings.max_model_len}",
        f"--gpu-memory-utilization={settings.gpu_memory_utilization}",
        f"--api-key=$({VLLM_API_KEY_ENV})",  # expanded by the kubelet from the Secret-backed env var
        *settings.args,
    ]


def _resources(entry: ModelEntry) -> dict[str, Any]:
    spec = entry.resources
    requests: dict[str, Any] = dict(spec.requests) if spec else {}
    limits: dict[str, Any] = dict(spec.limits) if spec else {}
    gpus = spec.gpus if spec else 1
    if gpus:
        requests["nvidia.com/gpu"] = gpus
        limits["nvidia.com/gpu"] = gpus
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def backend_deployment(owner: Owner, entry: ModelEntry, cache: ModelCache | None) -> dict[str, Any]:
    """The vLLM server of one model: pinned image, GPUs, a startup probe long enough to load weights."""
    settings = entry.vllm or VLLMSettings()
    hf_home = cache.mount_path if cache else "/tmp/hf"
    volumes: list[dict[str, Any]] = [TMP_VOLUME, {"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    mounts: list[dict[str, Any]] = [TMP_MOUNT, {"name": "dshm", "mountPath": "/dev/shm"}]
    if cache is not None:
        volumes.append(
            {"name": "model-cache", "persistentVolumeClaim": {"claimName": cache.claim_name, "readOnly": True}}
        )
        mount = {"name": "model-cache", "mountPath": cache.mount_path, "readOnly": True}
        if cache.sub_path:
            mount["subPath"] = cache.sub_path
        mounts.append(mount)
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    container = {
        "name": "vllm",
        "image": settings.image,
        "command": ["vllm"],
        "args": vllm_args(entry, settings),
        "ports": [{"name": "http", "containerPort": VLLM_PORT}],
        "env": [
            {"name": "HF_HOME", "value": hf_home},
            {"name": "HOME", "value": "/tmp"},
            {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
            {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
            {"name": VLLM_API_KEY_ENV, "valueFrom": {"secretKeyRef": model_key_ref(owner).model_dump()}},
        ],
        "resources": _resources(entry),
        "volumeMounts": mounts,
        "startupProbe": {
            **probe,
            "periodSeconds": STARTUP_PROBE_PERIOD,
            "failureThreshold": math.ceil(settings.startup_budget_seconds / STARTUP_PROBE_PERIOD),
        },
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 15, "failureThreshold": 4},
        "securityContext": CONTAINER_SECURITY_CONTEXT,
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY_CONTEXT,
        "containers": [container],
        "volumes": volumes,
    }
    if entry.resources and entry.resources.node_selector:
        pod_spec["nodeSelector"] = dict(entry.resources.node_selector)
    if entry.resources and entry.resources.tolerations:
        pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in entry.resources.tolerations]
    name = backend_name(owner, entry.name)
    selector = owner.selector(BACKEND_COMPONENT, entry.name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(name, BACKEND_COMPONENT, entry.name),
        "spec": {
            "replicas": entry.replicas,
            "selector": {"matchLabels": selector},
            # GPUs are scarce: replace replicas one at a time instead of surging a second copy.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": owner.labels(BACKEND_COMPONENT, entry.name)}, "spec": pod_spec},
        },
    }


def backend_service(owner: Owner, entry: ModelEntry) -> dict[str, Any]:
    """ClusterIP Service in front of the vLLM replicas; only ready pods receive traffic."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(backend_name(owner, entry.name), BACKEND_COMPONENT, entry.name),
        "spec": {
            "type": "ClusterIP",
            "selector": owner.selector(BACKEND_COMPONENT, entry.name),
            "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http"}],
        },
    }


def backend_manifests(owner: Owner, models: list[Any], cache: ModelCache | None) -> list[dict[str, Any]]:
    """Deployment + Service for every served model; nothing for models with an external endpoint."""
    manifests = []
    for entry in models:
        if entry.deployed:
            manifests += [backend_deployment(owner, entry, cache), backend_service(owner, entry)]
    return manifests
