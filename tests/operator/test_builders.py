"""The desired-state builders, pinned without a cluster: names, labels, owner references, pod hardening,
vLLM settings, the worker Indexed Job and least-privilege RBAC."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from quorum.api.resources import EnsembleRouter, SynthesisJob
from quorum.api.synthesis import SynthesisJobSpec, output_fingerprint
from quorum.builders import ensemble, synthesis
from quorum.builders.backends import api_key_env, backend_name
from quorum.builders.credentials import model_key_ref
from quorum.builders.meta import Owner
from quorum.builders.pods import render_yaml
from quorum.builders.rbac import OPERATOR_RULES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OWNER = Owner(kind="SynthesisJob", name="math-code", namespace="research", uid="uid-1")
ROUTER_OWNER = Owner(kind="EnsembleRouter", name="team-ensemble", namespace="research", uid="uid-2")


def all_synthesis_manifests(job: SynthesisJob) -> list[dict[str, Any]]:
    spec = job.spec
    return [
        *synthesis.synthesis_children(OWNER, spec),
        synthesis.workers_job(OWNER, spec),
        synthesis.merge_job(OWNER, spec),
    ]


def all_router_manifests(router: EnsembleRouter) -> list[dict[str, Any]]:
    spec = router.spec
    serving = ensemble.serving_children(ROUTER_OWNER, spec, ensemble.artifact_name(ROUTER_OWNER, spec), "abc")
    return [*ensemble.router_children(ROUTER_OWNER, spec), ensemble.calibrate_job(ROUTER_OWNER, spec), *serving]


def pod_specs(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["spec"]["template"]["spec"] for m in manifests if m["kind"] in ("Deployment", "Job")]


def test_synthesis_children_are_named_deterministically_and_only_for_served_models(sjob):
    names = {(m["kind"], m["metadata"]["name"]) for m in all_synthesis_manifests(sjob)}
    assert names == {
        ("ServiceAccount", synthesis.worker_account(OWNER)),
        ("Role", synthesis.worker_account(OWNER)),
        ("RoleBinding", synthesis.worker_account(OWNER)),
        ("ConfigMap", synthesis.config_map_name(OWNER)),
        ("Secret", model_key_ref(OWNER).name),
        *{
            (kind, backend_name(OWNER, m))
            for m in ("qwen", "llama", "mistral")
            for kind in ("Deployment", "Service", "NetworkPolicy")
        },
        ("Job", synthesis.workers_name(OWNER)),
        ("Job", synthesis.merge_name(OWNER)),
    }
    assert all_synthesis_manifests(sjob) == all_synthesis_manifests(sjob)


def test_router_children_are_named_deterministically(ensr):
    digest = ensemble.calibration_hash(ensr.spec)
    names = {(m["kind"], m["metadata"]["name"]) for m in all_router_manifests(ensr)}
    router = ensemble.router_name(ROUTER_OWNER)
    assert ("Job", ensemble.calibrate_job_name(ROUTER_OWNER, ensr.spec)) in names
    assert ("ConfigMap", ensemble.artifact_name(ROUTER_OWNER, ensr.spec)) in names
    assert {("Deployment", router), ("Service", router)} <= names
    assert ensemble.artifact_name(ROUTER_OWNER, ensr.spec).startswith(f"team-ensemble-calibration-{digest}-")
    assert ("HorizontalPodAutoscaler", ensemble.router_name(ROUTER_OWNER)) not in names


def test_every_child_is_owned_by_its_resource_and_never_copies_its_labels(sjob, ensr):
    for owner, manifests in ((OWNER, all_synthesis_manifests(sjob)), (ROUTER_OWNER, all_router_manifests(ensr))):
        for manifest in manifests:
            metadata = manifest["metadata"]
            assert metadata["namespace"] == owner.namespace
            [reference] = metadata["ownerReferences"]
            assert reference["controller"] is True and reference["uid"] == owner.uid
            assert reference["kind"] == owner.kind and reference["name"] == owner.name
            labels = metadata["labels"]
            assert labels["app.kubernetes.io/managed-by"] == "quorum"
            assert labels[owner.parent_label] == owner.name
            assert "app.kubernetes.io/component" in labels


def test_every_manifest_is_valid_kubernetes(sjob, ensr):
    for manifest in [*all_synthesis_manifests(sjob), *all_router_manifests(ensr)]:
        kubernetes_validate.validate(manifest, "1.33", strict=True)


def test_every_pod_is_non_root_read_only_and_drops_capabilities(sjob, ensr):
    for pod in pod_specs([*all_synthesis_manifests(sjob), *all_router_manifests(ensr)]):
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]


def test_vllm_deployment_carries_the_model_settings(sjob):
    [deployment] = [
        m
        for m in all_synthesis_manifests(sjob)
        if m["metadata"]["name"] == backend_name(OWNER, "llama") and m["kind"] == "Deployment"
    ]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "vllm/vllm-openai:v0.11.0"
    assert container["args"][:2] == ["serve", "meta-llama/Llama-3.1-8B-Instruct"]
    assert "--max-model-len=8192" in container["args"] and "--tensor-parallel-size=1" in container["args"]
    assert "--gpu-memory-utilization=0.9" in container["args"]
    assert container["args"][-1] == "--enable-prefix-caching"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] >= 1800
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    [cache] = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert cache["persistentVolumeClaim"] == {"claimName": "hf-cache", "readOnly": True}
    assert pod["automountServiceAccountToken"] is False
    assert deployment["spec"]["template"]["metadata"]["labels"]["quorum.dev/model"] == "llama"


def test_startup_budget_sets_the_startup_probe(sjob):
    wire = sjob.spec.to_wire()
    wire["models"][0]["vllm"]["startupBudgetSeconds"] = 3600
    spec = SynthesisJobSpec.model_validate(wire)
    [deployment] = [
        m
        for m in synthesis.synthesis_children(OWNER, spec)
        if m["metadata"]["name"] == backend_name(OWNER, "qwen") and m["kind"] == "Deployment"
    ]
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 3600
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L40S"}


def test_workers_job_is_indexed_with_the_spec_controls(sjob):
    job = synthesis.workers_job(OWNER, sjob.spec)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 16 and spec["parallelism"] == 4
    assert spec["backoffLimitPerIndex"] == 3 and spec["activeDeadlineSeconds"] == 86400
    assert spec["suspend"] is False
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == synthesis.worker_account(OWNER)
    [container] = pod["containers"]
    assert container["args"] == ["worker", "synth", "/etc/quorum/synthesisjob.yaml"]
    [config_volume] = [v for v in pod["volumes"] if v["name"] == "config"]
    assert config_volume["configMap"]["name"] == synthesis.config_map_name(OWNER)


def test_api_keys_reach_pods_only_through_secret_references(sjob):
    container = synthesis.workers_job(OWNER, sjob.spec)["spec"]["template"]["spec"]["containers"][0]
    [key] = [e for e in container["env"] if e["name"] == api_key_env("tulu")]
    assert key == {"name": "QUORUM_API_KEY_TULU", "valueFrom": {"secretKeyRef": {"name": "tulu-api", "key": "token"}}}
    assert container["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert all("value" not in e or "KEY" not in e["name"] for e in container["env"])


def test_worker_config_is_a_valid_manifest_with_every_model_an_endpoint(sjob):
    config = synthesis.worker_config_map(OWNER, sjob.spec)
    manifest = yaml.safe_load(config["data"]["synthesisjob.yaml"])
    parsed = SynthesisJob.model_validate(manifest)
    endpoints = {m.name: m.endpoint for m in parsed.spec.models}
    assert endpoints["qwen"].url == f"http://{backend_name(OWNER, 'qwen')}.research.svc:8000/v1"
    assert endpoints["qwen"].model == "Qwen/Qwen2.5-7B-Instruct"
    assert endpoints["tulu"].url == "http://tulu.inference.svc:8000/v1"
    assert endpoints["tulu"].api_key_secret_ref.name == "tulu-api"
    assert manifest["metadata"]["annotations"]["quorum.dev/fingerprint"] == output_fingerprint(sjob.spec)


def test_pvc_and_configmap_uris_become_mounted_files(sjob):
    wire = sjob.spec.to_wire()
    wire["seeds"]["uri"] = "configmap://seed-data/seeds.jsonl"
    wire["output"] = {"uri": "pvc://results/runs/one"}
    spec = SynthesisJobSpec.model_validate(wire)
    manifest = yaml.safe_load(synthesis.worker_config_map(OWNER, spec)["data"]["synthesisjob.yaml"])
    assert manifest["spec"]["seeds"]["uri"] == "file:///data/configmap/seed-data/seeds.jsonl"
    assert manifest["spec"]["output"]["uri"] == "file:///data/pvc/results/runs/one"
    pod = synthesis.workers_job(OWNER, spec)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["pvc-results"]["persistentVolumeClaim"] == {"claimName": "results"}
    assert volumes["cm-seed-data"]["configMap"] == {"name": "seed-data"}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["pvc-results"]["readOnly"] is False and mounts["cm-seed-data"]["readOnly"] is True


def test_fingerprint_ignores_live_controls_but_not_output_shaping_fields(sjob):
    base = output_fingerprint(sjob.spec)
    wire = sjob.spec.to_wire()
    workers = {**wire["workers"], "parallelism": 1, "concurrencyPerModel": 3, "image": "registry:5000/quorum:9.9"}
    models = [dict(m) for m in wire["models"]]
    models[0]["vllm"] = {**models[0]["vllm"], "gpuMemoryUtilization": 0.5}
    live = {
        **wire,
        "suspend": True,
        "activeDeadlineSeconds": 5,
        "workers": workers,
        "calls": {**wire["calls"], "timeoutSeconds": 7.0},
        "models": models,
    }
    assert output_fingerprint(SynthesisJobSpec.model_validate(live)) == base
    shaping = {**wire, "generation": {**wire["generation"], "temperature": 0.3}}
    assert output_fingerprint(SynthesisJobSpec.model_validate(shaping)) != base


def test_engine_and_operator_share_one_fingerprint(sjob):
    from quorum.gra.config import GraConfig

    assert GraConfig.from_spec(sjob.spec).fingerprint() == output_fingerprint(sjob.spec)


def test_calibration_hash_follows_the_pool_but_not_the_router_settings(ensr):
    wire = ensr.spec.to_wire()
    base = ensemble.calibration_hash(ensr.spec)
    spec_type = type(ensr.spec)
    assert ensemble.calibration_hash(spec_type.model_validate({**wire, "router": {"replicas": 5}})) == base
    fewer = {**wire, "models": wire["models"][:3]}
    assert ensemble.calibration_hash(spec_type.model_validate(fewer)) != base


def test_router_has_no_kubernetes_token_and_reads_the_artifact(ensr):
    artifact = ensemble.artifact_name(ROUTER_OWNER, ensr.spec)
    deployment = ensemble.router_deployment(ROUTER_OWNER, ensr.spec, artifact, "sum")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == ensemble.router_name(ROUTER_OWNER)
    [volume] = [v for v in pod["volumes"] if v["name"] == "artifact"]
    assert volume["configMap"]["name"] == artifact
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["QUORUM_ROUTER_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "router-token", "key": "token"}
    assert deployment["spec"]["replicas"] == 2
    roles = [m for m in all_router_manifests(ensr) if m["kind"] in ("Role", "RoleBinding")]
    assert {m["metadata"]["name"] for m in roles} == {ensemble.calibrator_account(ROUTER_OWNER)}


def test_autoscaling_adds_an_hpa_and_leaves_replicas_to_it(ensr):
    wire = ensr.spec.to_wire()
    wire["router"]["autoscaling"] = {"enabled": True, "minReplicas": 2, "maxReplicas": 6}
    spec = type(ensr.spec).model_validate(wire)
    children = ensemble.serving_children(ROUTER_OWNER, spec, "cm", "sum")
    [hpa] = [c for c in children if c["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["maxReplicas"] == 6
    assert "replicas" not in children[0]["spec"]


def test_worker_role_may_only_patch_the_status_of_its_own_job(sjob):
    [role] = [m for m in synthesis.worker_rbac(OWNER) if m["kind"] == "Role"]
    assert role["rules"] == [
        {
            "apiGroups": ["quorum.dev"],
            "resources": ["synthesisjobs/status"],
            "resourceNames": ["math-code"],
            "verbs": ["get", "patch"],
        }
    ]


def test_operator_rules_never_grant_wildcards_or_reading_secrets():
    for rule in OPERATOR_RULES:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["create"]  # the generated keys: created once, never read back


def test_a_prompt_template_in_a_configmap_is_mounted_for_the_workers(sjob):
    wire = sjob.spec.to_wire()
    wire["prompts"] = {"reviewResponse": {"templateUri": "configmap://house-prompts/review-response.j2"}}
    spec = SynthesisJobSpec.model_validate(wire)
    manifest = yaml.safe_load(synthesis.worker_config_map(OWNER, spec)["data"]["synthesisjob.yaml"])
    uri = manifest["spec"]["prompts"]["reviewResponse"]["templateUri"]
    assert uri == "file:///data/configmap/house-prompts/review-response.j2"
    pod = synthesis.workers_job(OWNER, spec)["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["cm-house-prompts"]["configMap"] == {"name": "house-prompts"}


def test_a_rendered_config_is_the_yaml_of_its_manifest_remembered_by_content_and_key_order() -> None:
    manifest = {"spec": {"b": 1, "a": [1.0, True, "x"]}, "kind": "SynthesisJob"}
    text = render_yaml(manifest)
    assert text == yaml.safe_dump(manifest, sort_keys=False)
    assert render_yaml(copy.deepcopy(manifest)) is text  # equal content: the remembered text
    reordered = {"kind": "SynthesisJob", "spec": {"a": [1.0, True, "x"], "b": 1}}
    assert render_yaml(reordered) == yaml.safe_dump(reordered, sort_keys=False) != text
    changed = {"spec": {"b": 1, "a": [1, True, "x"]}, "kind": "SynthesisJob"}  # 1 is not 1.0 in the YAML
    assert render_yaml(changed) == yaml.safe_dump(changed, sort_keys=False) != text
