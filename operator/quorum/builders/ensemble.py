"""Children of an EnsembleRouter: model backends, the router config, the calibration Job with the ConfigMap
it fills (both named after a hash of what calibration depends on, so a changed pool recalibrates), and the
router Deployment + Service (+ HPA)."""

from __future__ import annotations

from typing import Any

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.api.resources import API_VERSION
from quorum.builders.backends import api_key_env_vars, backend_manifests, resolve_endpoints
from quorum.builders.credentials import generated_secret, model_key_ref, router_token_ref
from quorum.builders.meta import DEFAULT_IMAGE, Owner, child_name, short_hash
from quorum.builders.network import backend_policies, egress_only_to_backends
from quorum.builders.pods import CONFIG_DIR, config_map, quorum_pod_spec
from quorum.builders.rbac import calibrator_rules, role_with_binding, service_account
from quorum.builders.storage import PodStorage
from quorum.routing.config import EMBEDDING_API_KEY_ENV

CALIBRATE_COMPONENT = "calibration"
ROUTER_COMPONENT = "router"
CONFIG_KEY = "ensemblerouter.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
ARTIFACT_DIR = "/var/lib/quorum/artifact"
ROUTER_TOKEN_ENV = "QUORUM_ROUTER_TOKEN"
CHECKSUM_ANNOTATION = "quorum.dev/artifact-checksum"


def calibration_hash(spec: EnsembleRouterSpec) -> str:
    """What a calibration result depends on: the pool, the embedder and the calibration settings. A shared
    Model's concurrency is the share its Model grants right now (it moves as other consumers come and go) and
    does not change what calibration measures, so it is left out."""
    wire = spec.to_wire()
    wire["models"] = [
        {k: v for k, v in m.items() if k != "maxConcurrency"} if "modelRef" in m else m for m in wire["models"]
    ]
    return short_hash({key: wire.get(key) for key in ("models", "embedding", "calibration")})


def config_map_name(owner: Owner) -> str:
    return child_name(owner, "config")


def calibrate_job_name(owner: Owner, spec: EnsembleRouterSpec) -> str:
    return child_name(owner, "calibrate", calibration_hash(spec))


def artifact_name(owner: Owner, spec: EnsembleRouterSpec) -> str:
    return child_name(owner, "calibration", calibration_hash(spec))


def calibrator_account(owner: Owner) -> str:
    return child_name(owner, "calibrate")


def router_name(owner: Owner) -> str:
    return child_name(owner, "router")


def router_url(owner: Owner, spec: EnsembleRouterSpec) -> str:
    return f"http://{router_name(owner)}.{owner.namespace}.svc:{spec.router.port}/v1"


def router_manifest(owner: Owner, spec: EnsembleRouterSpec, storage: PodStorage) -> dict[str, Any]:
    """The EnsembleRouter as calibration and router pods see it: models as endpoints, data as file paths."""
    wire = spec.to_wire()
    models = []
    for endpoint in resolve_endpoints(owner, spec.models):
        entry: dict[str, Any] = {"name": endpoint.name, "endpoint": {"url": endpoint.url, "model": endpoint.model}}
        if endpoint.api_key is not None:
            entry["endpoint"]["apiKeySecretRef"] = endpoint.api_key.model_dump(by_alias=True)
        models.append(entry)
    for entry, spec_entry in zip(models, spec.models, strict=True):
        if spec_entry.max_concurrency is not None:
            entry["maxConcurrency"] = spec_entry.max_concurrency
    wire["models"] = models
    wire.pop("modelCache", None)
    wire["calibration"]["dataset"]["uri"] = calibration_data_uri(spec, storage)
    return {
        "apiVersion": API_VERSION,
        "kind": "EnsembleRouter",
        "metadata": {"name": owner.name, "namespace": owner.namespace},
        "spec": wire,
    }


CALIBRATION_S3_REFUSAL = (
    "s3:// calibration data is read by `quorum router calibrate` (local mode) only: an EnsembleRouter holds no "
    "object-store credentials to hand its calibration pod; copy the data to a pvc:// or configmap:// location"
)
"""Said by the operator and, at admission, by the chart's policy (charts/quorum/templates/admissionpolicy.yaml)."""


def calibration_data_uri(spec: EnsembleRouterSpec, storage: PodStorage) -> str:
    """The calibration dataset as the pod reads it (its claim or ConfigMap mounted). `s3://` is refused, naming
    the field: the pod would have no credentials, so accepting it would only fail once calibration started."""
    uri = spec.calibration.dataset.uri
    if uri.startswith("s3://"):
        raise ValueError(f"spec.calibration.dataset.uri: {CALIBRATION_S3_REFUSAL}")
    return storage.localize(uri, field="spec.calibration.dataset.uri")


def router_config_map(owner: Owner, spec: EnsembleRouterSpec) -> dict[str, Any]:
    metadata = owner.metadata(config_map_name(owner), ROUTER_COMPONENT)
    return config_map(metadata, CONFIG_KEY, router_manifest(owner, spec, PodStorage()))


def artifact_config_map(owner: Owner, spec: EnsembleRouterSpec) -> dict[str, Any]:
    """Created empty by the operator (so the calibrator needs no `create` right); the calibration Job fills
    `binaryData` with the bundle and `data.summary.json` with its evaluation. No `data` here, so the
    operator's server-side apply never takes those fields back."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owner.metadata(artifact_name(owner, spec), CALIBRATE_COMPONENT),
    }


def calibrator_rbac(owner: Owner, spec: EnsembleRouterSpec) -> list[dict[str, Any]]:
    account = calibrator_account(owner)
    return [
        service_account(owner, account, CALIBRATE_COMPONENT, automount=False),
        *role_with_binding(owner, account, CALIBRATE_COMPONENT, calibrator_rules(artifact_name(owner, spec))),
    ]


def embedding_key_env(spec: EnsembleRouterSpec) -> list[dict[str, Any]]:
    """The embeddings server's token (`spec.embedding.endpoint.apiKeySecretRef`), by reference only."""
    endpoint = spec.embedding.endpoint
    if endpoint is None or endpoint.api_key_secret_ref is None:
        return []
    ref = endpoint.api_key_secret_ref
    return [{"name": EMBEDDING_API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}]


def calibrate_job(owner: Owner, spec: EnsembleRouterSpec) -> dict[str, Any]:
    storage = PodStorage()
    router_manifest(owner, spec, storage)
    pod_spec = quorum_pod_spec(
        image=spec.router.image or DEFAULT_IMAGE,
        args=["worker", "calibrate", CONFIG_PATH, "--artifact-configmap", artifact_name(owner, spec)],
        config_map=config_map_name(owner),
        storage=storage,
        env=[*api_key_env_vars(resolve_endpoints(owner, spec.models)), *embedding_key_env(spec)],
        service_account=calibrator_account(owner),
        automount_token=True,
        restart_policy="Never",
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": owner.metadata(calibrate_job_name(owner, spec), CALIBRATE_COMPONENT),
        "spec": {
            "backoffLimit": 2,
            "template": {"metadata": {"labels": owner.labels(CALIBRATE_COMPONENT)}, "spec": pod_spec},
        },
    }


def router_deployment(owner: Owner, spec: EnsembleRouterSpec, artifact: str, checksum: str) -> dict[str, Any]:
    """The router serves the artifact mounted from ConfigMap `artifact` (the newest calibrated one, so a
    recalibration never takes the router down); it has no Kubernetes token at all."""
    settings = spec.router
    env = [*api_key_env_vars(resolve_endpoints(owner, spec.models)), *embedding_key_env(spec)]
    ref = router_token_ref(owner, settings.auth_secret_ref)  # a token always: the user's or a generated one
    env.append({"name": ROUTER_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    # The router's own endpoints: /healthz (the process serves) and /readyz (a backend can answer and the
    # artifact is loaded), so traffic only reaches a router that can route.
    alive = {"httpGet": {"path": "/healthz", "port": "http"}}
    ready = {"httpGet": {"path": "/readyz", "port": "http"}}
    pod_spec = quorum_pod_spec(
        image=settings.image or DEFAULT_IMAGE,
        args=[
            "router",
            "serve",
            CONFIG_PATH,
            "--artifact",
            ARTIFACT_DIR,
            "--host",
            "0.0.0.0",
            "--port",
            str(settings.port),
        ],
        config_map=config_map_name(owner),
        storage=PodStorage(),
        env=env,
        service_account=router_name(owner),
        automount_token=False,
        restart_policy="Always",
        extra_volumes=[{"name": "artifact", "configMap": {"name": artifact}}],
        extra_mounts=[{"name": "artifact", "mountPath": ARTIFACT_DIR, "readOnly": True}],
        ports=[{"name": "http", "containerPort": settings.port}],
        probes={
            "startupProbe": {**alive, "periodSeconds": 5, "failureThreshold": 60},
            "readinessProbe": {**ready, "periodSeconds": 5},
            "livenessProbe": {**alive, "periodSeconds": 15, "failureThreshold": 4},
        },
    )
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": owner.selector(ROUTER_COMPONENT)},
        "template": {
            "metadata": {
                "labels": owner.labels(ROUTER_COMPONENT),
                # A new config or artifact rolls the pods.
                "annotations": {
                    CHECKSUM_ANNOTATION: checksum,
                    "quorum.dev/config-hash": short_hash(router_manifest(owner, spec, PodStorage())),
                },
            },
            "spec": pod_spec,
        },
    }
    if not settings.autoscaling.enabled:
        deployment_spec["replicas"] = settings.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(router_name(owner), ROUTER_COMPONENT),
        "spec": deployment_spec,
    }


def router_service(owner: Owner, spec: EnsembleRouterSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(router_name(owner), ROUTER_COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "selector": owner.selector(ROUTER_COMPONENT),
            "ports": [{"name": "http", "port": spec.router.port, "targetPort": "http"}],
        },
    }


def router_hpa(owner: Owner, spec: EnsembleRouterSpec) -> dict[str, Any]:
    scaling = spec.router.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": owner.metadata(router_name(owner), ROUTER_COMPONENT),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": router_name(owner)},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization},
                    },
                }
            ],
        },
    }


def router_credentials(owner: Owner, spec: EnsembleRouterSpec) -> list[dict[str, Any]]:
    """The generated Secrets: the backends' model key (when Quorum serves a model) and the router token
    (unless `router.authSecretRef` names the user's own)."""
    secrets = [generated_secret(owner, model_key_ref(owner))] if any(m.deployed for m in spec.models) else []
    if spec.router.auth_secret_ref is None:
        secrets.append(generated_secret(owner, router_token_ref(owner, None)))
    return secrets


def router_network_policies(owner: Owner, spec: EnsembleRouterSpec) -> list[dict[str, Any]]:
    """Backends answer only this resource's calibration and router; the calibration pod (which runs graded
    code) may connect only to its backends, its external model and embeddings endpoints, DNS and the API
    server."""
    clients = [CALIBRATE_COMPONENT, ROUTER_COMPONENT]
    embedding = [spec.embedding.endpoint] if spec.embedding.endpoint is not None else []
    calibration = egress_only_to_backends(owner, calibrator_account(owner), CALIBRATE_COMPONENT, spec.models, embedding)
    return [*backend_policies(owner, spec.models, clients), calibration]


def router_children(owner: Owner, spec: EnsembleRouterSpec) -> list[dict[str, Any]]:
    """What exists from the start: credentials, network policies, backends, config, calibration RBAC, the
    artifact holder, and the router's ServiceAccount (no Role: the router needs no Kubernetes access). The
    calibration Job follows once every backend is ready (it calls them all)."""
    return [
        *router_credentials(owner, spec),
        *router_network_policies(owner, spec),
        service_account(owner, router_name(owner), ROUTER_COMPONENT, automount=False),
        *calibrator_rbac(owner, spec),
        router_config_map(owner, spec),
        artifact_config_map(owner, spec),
        *backend_manifests(owner, spec.models, spec.model_cache),
    ]


def serving_children(owner: Owner, spec: EnsembleRouterSpec, artifact: str, checksum: str) -> list[dict[str, Any]]:
    """The router itself, created once an artifact is in place."""
    children = [router_deployment(owner, spec, artifact, checksum), router_service(owner, spec)]
    if spec.router.autoscaling.enabled:
        children.append(router_hpa(owner, spec))
    return children
