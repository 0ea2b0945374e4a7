"""The operator chart renders valid, hardened, least-privilege manifests for every supported values set."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import typer
import yaml

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.builders.ensemble import router_service
from quorum.builders.meta import Owner
from quorum.builders.rbac import OPERATOR_CLUSTER_RULES, OPERATOR_RULES
from quorum.cli import main
from tests.charts.helm import OPERATOR_CHART, Helm, HelmError, find, one
from tests.charts.validation import validate_strictly

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cluster-wide": {"rbac": {"clusterWide": True}},
    "several-namespaces": {"operator": {"watchNamespaces": ["team-a", "team-b"]}},
    "minimal": {
        "metrics": {"enabled": False},
        "networkPolicy": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
    },
    "monitored-and-pinned-by-digest": {
        "image": {"repository": "registry.example/quorum", "tag": "0.1.0", "digest": "sha256:" + "a" * 64},
        "operatorImage": {"repository": "registry.example/quorum-operator", "digest": "sha256:" + "b" * 64},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "networkPolicy": {
            "apiServer": {"cidrs": ["10.0.0.1/32"]},
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
            "extraEgress": [{"ports": [{"port": 8000, "protocol": "TCP"}]}],
        },
        "operator": {"nodeSelector": {"kubernetes.io/os": "linux"}, "priorityClassName": "system-cluster-critical"},
    },
    "existing-service-account": {"serviceAccount": {"create": False, "name": "platform-quorum"}},
    "router-dashboards-and-monitor": {
        "dashboards": {"enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "Quorum"}},
        "metrics": {"routerServiceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "operator": {"watchNamespaces": ["team-a", "team-b"]},
    },
}


@pytest.fixture(scope="module")
def rendered(helm: Helm) -> dict[str, list[dict[str, Any]]]:
    return {name: helm.template(OPERATOR_CHART, values) for name, values in VALUE_SETS.items()}


def test_lint_strict_passes(helm: Helm) -> None:
    for values in ({}, VALUE_SETS["cluster-wide"]):
        output = helm.run("lint", "--strict", str(OPERATOR_CHART), "--values", "-", stdin=yaml.safe_dump(values))
        assert "0 chart(s) failed" in output


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_manifests_validate_strictly(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    assert validate_strictly(rendered[name]) == []


def test_strict_validation_catches_an_unknown_field(rendered: dict[str, list[dict[str, Any]]]) -> None:
    broken = copy.deepcopy(rendered["defaults"])
    one(broken, "Deployment")["spec"]["template"]["spec"]["containers"][0]["runAsRoot"] = True
    assert len(validate_strictly(broken)) == 1


def test_service_monitor_scrapes_the_metrics_service(rendered: dict[str, list[dict[str, Any]]]) -> None:
    manifests = rendered["monitored-and-pinned-by-digest"]
    monitor, service = one(manifests, "ServiceMonitor"), one(manifests, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert find(rendered["defaults"], "ServiceMonitor") == []


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_pod_is_hardened(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    pod = one(rendered[name], "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["privileged"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_one_replica_recreated_with_kopf_liveness_probes(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = one(rendered["defaults"], "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["operator", "run", "--liveness=http://0.0.0.0:8080/healthz"]
    health = next(p for p in container["ports"] if p["name"] == "health")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert health["containerPort"] == 8080


def test_operator_runs_its_own_image_and_gives_children_the_worker_image_both_pinned(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    container = one(rendered["defaults"], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    chart = yaml.safe_load((OPERATOR_CHART / "Chart.yaml").read_text())
    assert container["image"] == f"quorum-dev/quorum-operator:{chart['appVersion']}"
    assert {"name": "QUORUM_IMAGE", "value": f"quorum-dev/quorum:{chart['appVersion']}"} in container["env"]
    pinned = one(rendered["monitored-and-pinned-by-digest"], "Deployment")["spec"]["template"]["spec"]
    operator = pinned["containers"][0]
    assert operator["image"] == f"registry.example/quorum-operator:{chart['appVersion']}@sha256:" + "b" * 64
    children = "registry.example/quorum:0.1.0@sha256:" + "a" * 64
    assert {"name": "QUORUM_IMAGE", "value": children} in operator["env"]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"image": {"tag": "latest"}}, "image.tag must be pinned"),
        ({"operatorImage": {"tag": "latest"}}, "operatorImage.tag must be pinned"),
        ({"securityContext": {"allowPrivilegeEscalation": True, "readOnlyRootFilesystem": True}}, "allowPrivilege"),
        ({"securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": False}}, "readOnlyRoot"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
        ({"rbac": {"clusterwide": True}}, "clusterwide"),
        ({"operator": {"watchNamespaces": ["Not_A_Namespace"]}}, "watchNamespaces"),
        ({"serviceAccount": {"create": False}}, "serviceAccount.name is required"),
    ],
    ids=[
        "latest-tag",
        "latest-operator-tag",
        "escalation",
        "writable-root",
        "root",
        "typo",
        "bad-namespace",
        "no-service-account",
    ],
)
def test_bad_values_are_refused_with_the_reason(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError, match=complaint):
        helm.template(OPERATOR_CHART, values)


def operator_roles(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Roles or ClusterRoles with the operator's working rules (not kopf's read-only observer role)."""
    roles = find(manifests, "Role") + find(manifests, "ClusterRole")
    return [r for r in roles if not r["metadata"]["name"].endswith("-observer")]


def observer(manifests: list[dict[str, Any]], kind: str = "ClusterRole") -> dict[str, Any]:
    return next(m for m in find(manifests, kind) if m["metadata"]["name"].endswith("-observer"))


def test_rbac_is_namespace_scoped_by_default(rendered: dict[str, list[dict[str, Any]]]) -> None:
    manifests = rendered["defaults"]
    assert [r["kind"] for r in operator_roles(manifests)] == ["Role"]
    assert len(find(manifests, "ClusterRole")) == len(find(manifests, "ClusterRoleBinding")) == 1
    role, binding = one(manifests, "Role"), one(manifests, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "quorum-system"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "quorum", "namespace": "quorum-system"}]
    args = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=quorum-system" in args


def test_each_watched_namespace_gets_a_role_and_is_watched(rendered: dict[str, list[dict[str, Any]]]) -> None:
    manifests = rendered["several-namespaces"]
    assert sorted(r["metadata"]["namespace"] for r in find(manifests, "Role")) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in find(manifests, "RoleBinding")) == ["team-a", "team-b"]
    args = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]


def test_cluster_wide_option_uses_one_cluster_role(rendered: dict[str, list[dict[str, Any]]]) -> None:
    manifests = rendered["cluster-wide"]
    assert find(manifests, "Role") == [] and find(manifests, "RoleBinding") == []
    (role,) = operator_roles(manifests)
    binding = next(b for b in find(manifests, "ClusterRoleBinding") if not b["metadata"]["name"].endswith("-observer"))
    assert role["kind"] == "ClusterRole" and role["metadata"]["name"] == "quorum-system-quorum"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert role["rules"] == one(rendered["defaults"], "Role")["rules"]
    args = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--namespace")]  # no namespace: kopf watches the cluster


def test_existing_service_account_is_bound_not_created(rendered: dict[str, list[dict[str, Any]]]) -> None:
    manifests = rendered["existing-service-account"]
    assert find(manifests, "ServiceAccount") == []
    assert one(manifests, "RoleBinding")["subjects"][0]["name"] == "platform-quorum"
    assert one(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-quorum"


def test_network_policy_admits_metrics_only_and_egress_to_dns_api_and_model_server_metrics(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    policy = one(rendered["defaults"], "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == ["metrics"]
    egress_ports = sorted({p["port"] for rule in policy["egress"] for p in rule["ports"]})
    assert egress_ports == [53, 443, 6443, 8000]
    # Port 8000 only to Quorum's model servers (the shared Models' scaler reads their /metrics).
    scrape = next(rule for rule in policy["egress"] if rule["ports"][0]["port"] == 8000)
    selector = scrape["to"][0]["podSelector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/managed-by": "quorum", "app.kubernetes.io/component": "model-server"}
    restricted = one(rendered["monitored-and-pinned-by-digest"], "NetworkPolicy")["spec"]
    assert {"ipBlock": {"cidr": "10.0.0.1/32"}} in restricted["egress"][1]["to"]
    assert restricted["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]


def test_disruption_budget_never_blocks_a_drain(rendered: dict[str, list[dict[str, Any]]]) -> None:
    budget = one(rendered["defaults"], "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1 and "minAvailable" not in budget
    deployment = one(rendered["defaults"], "Deployment")
    assert budget["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("name", ["defaults", "cluster-wide", "several-namespaces", "minimal"])
def test_chart_grants_exactly_the_operator_rules(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    roles = operator_roles(rendered[name])
    assert roles and all(role["rules"] == OPERATOR_RULES for role in roles)
    assert observer(rendered[name])["rules"] == OPERATOR_CLUSTER_RULES


def test_cluster_scoped_observation_is_read_only_and_named_per_release_namespace(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    role, binding = observer(rendered["defaults"]), observer(rendered["defaults"], "ClusterRoleBinding")
    assert {verb for rule in role["rules"] for verb in rule["verbs"]} <= {"get", "list", "watch"}
    assert role["metadata"]["name"] == binding["roleRef"]["name"] == "quorum-system-quorum-observer"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "quorum", "namespace": "quorum-system"}]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_command_line_is_accepted_by_quorum_operator_run(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    container = one(rendered[name], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    quorum: Any = typer.main.get_command(main.app)
    root = quorum.make_context("quorum", ["operator"])
    run = quorum.get_command(root, container["args"][0]).get_command(root, container["args"][1])
    parsed = run.make_context("run", list(container["args"][2:]))  # raises on an unknown or malformed option
    assert parsed.params["liveness"] == "http://0.0.0.0:8080/healthz"
    assert parsed.params["metrics_port"] == (9090 if name != "minimal" else None)


def test_dashboard_config_map_carries_the_dashboard_for_the_grafana_sidecar(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    config_map = one(rendered["router-dashboards-and-monitor"], "ConfigMap")
    shipped = json.loads((OPERATOR_CHART / "files" / "dashboards" / "quorum-router.json").read_text())
    assert json.loads(config_map["data"]["quorum-router.json"]) == shipped
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Quorum"}
    assert find(rendered["defaults"], "ConfigMap") == []


def test_router_service_monitor_selects_the_router_services_the_operator_builds(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    monitors = find(rendered["router-dashboards-and-monitor"], "ServiceMonitor")
    (monitor,) = [m for m in monitors if m["metadata"]["name"].endswith("-routers")]
    spec = EnsembleRouterSpec.model_validate(
        {
            "models": [{"name": "a", "endpoint": {"url": "http://a/v1", "model": "a"}}],
            "calibration": {"dataset": {"uri": "file://x.jsonl"}},
        }
    )
    service = router_service(Owner("EnsembleRouter", "support", "team-a", "uid-1"), spec)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert find(rendered["defaults"], "ServiceMonitor") == []


def test_the_admission_policy_checks_every_secret_and_configmap_field_by_its_own_validation(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """One authorizer validation per reference field (every prompt stage too), so the refusal names the field;
    the s3:// calibration refusal says what the operator says (one text, two layers)."""
    from quorum.api.synthesis import Prompts
    from quorum.builders.ensemble import CALIBRATION_S3_REFUSAL

    spec = one(rendered["defaults"], "ValidatingAdmissionPolicy")["spec"]
    checked = [
        (v["expression"].split(".all(")[0], v["expression"].split("resource('")[1].split("'")[0])
        for v in spec["validations"]
        if "authorizer" in v["expression"]
    ]
    secrets = ["modelKeyRefs", "embeddingKeyRefs", "outputCredentialRefs", "routerAuthRefs"]
    locations = ["seeds.uri", "output.uri", "postprocess.dedup.decontaminationUri", "calibration.dataset.uri"]
    locations += [f"prompts.{info.alias}.templateUri" for info in Prompts.model_fields.values()]
    assert checked == [(f"variables.{name}", "secrets") for name in secrets] + [
        (f"variables.configMapRefs.filter(r, r.field == 'spec.{field}')", "configmaps") for field in locations
    ]
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    assert "spec.embedding.endpoint.apiKeySecretRef" in variables["embeddingKeyRefs"]
    assert all(f"spec.prompts.{stage}.templateUri" in variables["locations"] for stage in ("generate", "adjudicate"))
    [s3] = [v for v in spec["validations"] if "s3://" in v["expression"]]
    assert s3["message"] == f"spec.calibration.dataset.uri: {CALIBRATION_S3_REFUSAL}"


def test_the_admission_policy_is_on_by_default_and_allows_only_the_pinned_images(
    rendered: dict[str, list[dict[str, Any]]], helm: Helm
) -> None:
    from quorum.api.common import VLLM_IMAGE

    policy = one(rendered["defaults"], "ValidatingAdmissionPolicy")
    allowed = next(v["expression"] for v in policy["spec"]["variables"] if v["name"] == "allowedImages")
    assert yaml.safe_load(allowed) == ["quorum-dev/quorum:0.1.0", VLLM_IMAGE]
    binding = one(rendered["several-namespaces"], "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "team-a",
        "team-b",
    ]
    assert "matchResources" not in one(rendered["cluster-wide"], "ValidatingAdmissionPolicyBinding")["spec"]
    off = helm.template(OPERATOR_CHART, {"admissionPolicy": {"enabled": False}})
    assert find(off, "ValidatingAdmissionPolicy") == []
    with pytest.raises(HelmError, match="allowedImages"):
        helm.template(OPERATOR_CHART, {"admissionPolicy": {"allowedImages": ["x/y:latest"]}})
