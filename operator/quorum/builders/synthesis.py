"""Children of a SynthesisJob: model backends, the worker config, the worker Indexed Job (one index per
shard), the merge Job, and the worker's ServiceAccount with its one-resource Role."""

from __future__ import annotations

from typing import Any

from quorum.api.resources import API_VERSION
from quorum.api.synthesis import SynthesisJobSpec, output_fingerprint
from quorum.builders.backends import api_key_env_vars, backend_manifests, resolve_endpoints
from quorum.builders.credentials import generated_secret, model_key_ref
from quorum.builders.meta import DEFAULT_IMAGE, Owner, child_name
from quorum.builders.network import backend_policies
from quorum.builders.pods import CONFIG_DIR, config_map, quorum_pod_spec
from quorum.builders.rbac import role_with_binding, service_account, worker_rules
from quorum.builders.storage import PodStorage

WORKER_COMPONENT = "synthesis-worker"
MERGE_COMPONENT = "synthesis-merge"
CONFIG_KEY = "synthesisjob.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
FINGERPRINT_ANNOTATION = "quorum.dev/fingerprint"
OUTPUT_URI_ANNOTATION = "quorum.dev/output-uri"
"""The output location as the user wrote it (`pvc://...`), for the URIs the merge reports back."""


def config_map_name(owner: Owner) -> str:
    return child_name(owner, "config")


def workers_name(owner: Owner) -> str:
    return child_name(owner, "workers")


def merge_name(owner: Owner) -> str:
    return child_name(owner, "merge")


def worker_account(owner: Owner) -> str:
    return child_name(owner, "worker")


def worker_manifest(owner: Owner, spec: SynthesisJobSpec, storage: PodStorage) -> dict[str, Any]:
    """The SynthesisJob as the engine sees it inside a pod: every model is an endpoint (the Service DNS name
    for served ones), every `pvc://`/`configmap://` URI a mounted file path. It is a valid manifest, so the
    same file also runs in local mode."""
    wire = spec.to_wire()
    endpoints = {e.name: e for e in resolve_endpoints(owner, spec.models)}
    models = []
    for entry in spec.models:
        endpoint = endpoints[entry.name]
        model: dict[str, Any] = {
            "name": entry.name,
            "roles": [str(role) for role in entry.roles],
            "endpoint": {"url": endpoint.url, "model": endpoint.model},
        }
        if endpoint.api_key is not None:
            model["endpoint"]["apiKeySecretRef"] = endpoint.api_key.model_dump(by_alias=True)
        if entry.max_concurrency is not None:
            model["maxConcurrency"] = entry.max_concurrency
        models.append(model)
    wire["models"] = models
    wire.pop("modelCache", None)
    wire["seeds"]["uri"] = storage.localize(spec.seeds.uri, field="spec.seeds.uri")
    wire["output"]["uri"] = storage.localize(spec.output.uri, writable=True, field="spec.output.uri")
    dedup = wire["postprocess"]["dedup"]
    if dedup.get("decontaminationUri"):
        field = "spec.postprocess.dedup.decontaminationUri"
        dedup["decontaminationUri"] = storage.localize(dedup["decontaminationUri"], field=field)
    for stage, override in (wire.get("prompts") or {}).items():  # prompt templates: file, claim or ConfigMap
        override["templateUri"] = storage.localize(override["templateUri"], field=f"spec.prompts.{stage}.templateUri")
    return {
        "apiVersion": API_VERSION,
        "kind": "SynthesisJob",
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "annotations": {FINGERPRINT_ANNOTATION: output_fingerprint(spec), OUTPUT_URI_ANNOTATION: spec.output.uri},
        },
        "spec": wire,
    }


def worker_config_map(owner: Owner, spec: SynthesisJobSpec) -> dict[str, Any]:
    metadata = owner.metadata(config_map_name(owner), WORKER_COMPONENT)
    return config_map(metadata, CONFIG_KEY, worker_manifest(owner, spec, PodStorage()))


def _pod_template(owner: Owner, spec: SynthesisJobSpec, component: str, args: list[str]) -> dict[str, Any]:
    storage = PodStorage()
    worker_manifest(owner, spec, storage)  # registers the volumes the URIs need
    endpoints = resolve_endpoints(owner, spec.models)
    env = [
        *api_key_env_vars(endpoints),
        {
            "name": "QUORUM_ATTEMPT",
            "valueFrom": {
                "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-index-failure-count']"}
            },
        },
    ]
    env_from = []
    if spec.output.credentials_secret_ref is not None:
        env_from.append({"secretRef": {"name": spec.output.credentials_secret_ref.name}})
    pod_spec = quorum_pod_spec(
        image=spec.workers.image or DEFAULT_IMAGE,
        args=args,
        config_map=config_map_name(owner),
        storage=storage,
        env=env,
        env_from=env_from,
        service_account=worker_account(owner),
        automount_token=True,
        restart_policy="Never",
    )
    return {
        "metadata": {
            "labels": owner.labels(component),
            "annotations": {FINGERPRINT_ANNOTATION: output_fingerprint(spec)},
        },
        "spec": pod_spec,
    }


def workers_job(owner: Owner, spec: SynthesisJobSpec) -> dict[str, Any]:
    """Indexed Job: index i runs shard i; a failing index is retried `backoffLimitPerIndex` times."""
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": spec.workers.shards,
        "parallelism": spec.workers.parallelism,
        "backoffLimitPerIndex": spec.workers.backoff_limit_per_index,
        "suspend": spec.suspend,
        "template": _pod_template(owner, spec, WORKER_COMPONENT, ["worker", "synth", CONFIG_PATH]),
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": owner.metadata(workers_name(owner), WORKER_COMPONENT),
        "spec": job_spec,
    }


def merge_job(owner: Owner, spec: SynthesisJobSpec) -> dict[str, Any]:
    """One pod that merges the committed shards: cross-shard dedup, the dataset, manifest and report."""
    args = ["worker", "synth", CONFIG_PATH, "--merge"]
    template = _pod_template(owner, spec, MERGE_COMPONENT, args)
    template["spec"]["containers"][0]["env"] = [
        e for e in template["spec"]["containers"][0]["env"] if e["name"] != "QUORUM_ATTEMPT"
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": owner.metadata(merge_name(owner), MERGE_COMPONENT),
        "spec": {"backoffLimit": spec.workers.backoff_limit_per_index, "suspend": spec.suspend, "template": template},
    }


def worker_rbac(owner: Owner) -> list[dict[str, Any]]:
    account = worker_account(owner)
    return [
        service_account(owner, account, WORKER_COMPONENT, automount=False),
        *role_with_binding(owner, account, WORKER_COMPONENT, worker_rules(owner)),
    ]


def synthesis_children(owner: Owner, spec: SynthesisJobSpec, *, backends: bool = True) -> list[dict[str, Any]]:
    """Everything a SynthesisJob needs before its workers start, in apply order. `backends=False` leaves the
    model Deployments out (after completion with `backends.deleteOnCompletion`). Served models come with the
    generated key they require and a NetworkPolicy admitting only this job's workers and merge."""
    served = any(m.deployed for m in spec.models)
    children = [generated_secret(owner, model_key_ref(owner))] if served else []
    children += [*backend_policies(owner, spec.models, [WORKER_COMPONENT, MERGE_COMPONENT]), *worker_rbac(owner)]
    children.append(worker_config_map(owner, spec))
    if backends:
        children += backend_manifests(owner, spec.models, spec.model_cache)
    return children
