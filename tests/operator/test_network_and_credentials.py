"""What a resource's children may reach and with which credentials, pinned without a cluster: every model
backend admits only its own resource's callers and requires the generated key; the calibration pod (graded
code) may connect only to its backends, DNS and the API server; the router always asks a token. Every object
is validated against the official Kubernetes schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from quorum.builders import ensemble, synthesis
from quorum.builders.backends import backend_name
from quorum.builders.credentials import (
    GENERATED_KEY,
    is_create_only,
    model_key_ref,
    router_token_ref,
    with_generated_value,
)
from quorum.builders.meta import LABEL_COMPONENT
from tests.charts.helm import KUBERNETES_VERSION
from tests.operator.test_builders import (
    OWNER,
    ROUTER_OWNER,
    all_router_manifests,
    all_synthesis_manifests,
    pod_specs,
)


def of_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def test_network_policies_and_secrets_validate_against_the_kubernetes_schemas(sjob, ensr):
    manifests = [*all_synthesis_manifests(sjob), *all_router_manifests(ensr)]
    checked = [m for m in manifests if m["kind"] in ("NetworkPolicy", "Secret")]
    # 3 served models + their key (sjob); 4 served models + calibration + their key (ensr, token named by user)
    assert len(checked) == 4 + 6
    for manifest in checked:
        kubernetes_validate.validate(
            with_generated_value(manifest) if is_create_only(manifest) else manifest, KUBERNETES_VERSION, strict=True
        )


def test_each_synthesis_backend_admits_only_this_jobs_workers_and_merge(sjob):
    policy = of_kind(all_synthesis_manifests(sjob), "NetworkPolicy")[backend_name(OWNER, "qwen")]["spec"]
    assert policy["podSelector"]["matchLabels"] == {
        "quorum.dev/synthesisjob": "math-code",
        LABEL_COMPONENT: "model-server",
        "quorum.dev/model": "qwen",
    }
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    [peer] = rule["from"]
    assert peer == {
        "podSelector": {
            "matchLabels": {"quorum.dev/synthesisjob": "math-code"},
            "matchExpressions": [
                {"key": LABEL_COMPONENT, "operator": "In", "values": ["synthesis-merge", "synthesis-worker"]}
            ],
        }
    }
    assert "namespaceSelector" not in peer  # same namespace only


def test_each_router_backend_admits_only_its_calibration_and_router(ensr):
    policies = of_kind(all_router_manifests(ensr), "NetworkPolicy")
    served = [m.name for m in ensr.spec.models if m.deployed]
    assert served and all(backend_name(ROUTER_OWNER, name) in policies for name in served)
    [peer] = policies[backend_name(ROUTER_OWNER, served[0])]["spec"]["ingress"][0]["from"]
    assert peer["podSelector"]["matchLabels"] == {"quorum.dev/ensemblerouter": "team-ensemble"}
    assert peer["podSelector"]["matchExpressions"][0]["values"] == ["calibration", "router"]


def test_the_calibration_pod_may_connect_only_to_dns_its_backends_and_the_api_server(ensr):
    policy = of_kind(all_router_manifests(ensr), "NetworkPolicy")[ensemble.calibrator_account(ROUTER_OWNER)]["spec"]
    assert policy["podSelector"]["matchLabels"][LABEL_COMPONENT] == "calibration"
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["ingress"] == []
    dns, backends, api_server, *external = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
    assert backends["to"] == [
        {
            "podSelector": {
                "matchLabels": {"quorum.dev/ensemblerouter": "team-ensemble", LABEL_COMPONENT: "model-server"}
            }
        }
    ]
    assert [p["port"] for p in api_server["ports"]] == [443, 6443]
    assert external == []  # examples/ensemblerouter.yaml serves every model itself
    wire = ensr.spec.to_wire()
    wire["models"][0] = {"name": "ext", "endpoint": {"url": "https://api.example.com/v1", "model": "x"}}
    spec = type(ensr.spec).model_validate(wire)
    policy = of_kind(ensemble.router_children(ROUTER_OWNER, spec), "NetworkPolicy")[
        ensemble.calibrator_account(ROUTER_OWNER)
    ]
    assert policy["spec"]["egress"][3] == {"ports": [{"port": 443, "protocol": "TCP"}]}


def test_the_calibration_pod_may_reach_its_embeddings_endpoint_port(ensr):
    """The calibration pod embeds every question through `embedding.endpoint` when one is set: its port must be
    open, or calibration fails on a NetworkPolicy-enforcing cluster; no other port opens with it."""
    wire = ensr.spec.to_wire()
    wire["embedding"] = {"endpoint": {"url": "http://tei.embed.svc:8080/v1", "model": "minilm"}}
    spec = type(ensr.spec).model_validate(wire)
    policy = of_kind(ensemble.router_children(ROUTER_OWNER, spec), "NetworkPolicy")[
        ensemble.calibrator_account(ROUTER_OWNER)
    ]
    assert policy["spec"]["egress"][3:] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]
    wire["models"][0] = {"name": "ext", "endpoint": {"url": "https://api.example.com/v1", "model": "x"}}
    wire["embedding"]["endpoint"]["url"] = "https://api.example.com/v1"
    spec = type(ensr.spec).model_validate(wire)
    policy = of_kind(ensemble.router_children(ROUTER_OWNER, spec), "NetworkPolicy")[
        ensemble.calibrator_account(ROUTER_OWNER)
    ]
    assert policy["spec"]["egress"][3:] == [{"ports": [{"port": 443, "protocol": "TCP"}]}]  # one rule per port


def test_vllm_requires_the_generated_key_and_its_clients_send_it(sjob):
    manifests = all_synthesis_manifests(sjob)
    secret = of_kind(manifests, "Secret")[model_key_ref(OWNER).name]
    assert is_create_only(secret) and "data" not in secret and "stringData" not in secret
    assert secret["metadata"]["annotations"][GENERATED_KEY] == "token"
    vllm = of_kind(manifests, "Deployment")[backend_name(OWNER, "qwen")]["spec"]["template"]["spec"]["containers"][0]
    assert "--api-key=$(VLLM_API_KEY)" in vllm["args"]
    [key] = [e for e in vllm["env"] if e["name"] == "VLLM_API_KEY"]
    assert key["valueFrom"]["secretKeyRef"] == model_key_ref(OWNER).model_dump()
    worker = synthesis.workers_job(OWNER, sjob.spec)["spec"]["template"]["spec"]["containers"][0]
    [sent] = [e for e in worker["env"] if e["name"] == "QUORUM_API_KEY_QWEN"]
    assert sent["valueFrom"]["secretKeyRef"] == model_key_ref(OWNER).model_dump()


def test_a_generated_value_is_random_and_stays_out_of_the_builders():
    secret = synthesis.synthesis_children(OWNER, synthesis_spec_with_one_served_model())[0]
    first, second = with_generated_value(secret), with_generated_value(secret)
    assert first["stringData"]["token"] != second["stringData"]["token"]
    assert len(first["stringData"]["token"]) >= 43  # 256 bits, URL-safe base64


def synthesis_spec_with_one_served_model():
    from quorum.api.synthesis import SynthesisJobSpec

    return SynthesisJobSpec.model_validate(
        {
            "models": [{"name": "m", "model": "org/m"}],
            "review": {"allowSameModel": True},
            "seeds": {"uri": "pvc://d/s.jsonl"},
            "output": {"uri": "pvc://d/out"},
        }
    )


@pytest.mark.parametrize("named", [None, {"name": "mine", "key": "k"}])
def test_the_router_always_requires_a_token(ensr, named):
    wire = ensr.spec.to_wire()
    wire["router"].pop("authSecretRef", None)
    if named:
        wire["router"]["authSecretRef"] = named
    spec = type(ensr.spec).model_validate(wire)
    deployment = ensemble.router_deployment(ROUTER_OWNER, spec, "cm", "sum")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    expected = named or router_token_ref(ROUTER_OWNER, None).model_dump()
    assert env["QUORUM_ROUTER_TOKEN"]["valueFrom"]["secretKeyRef"] == expected
    secrets = of_kind(ensemble.router_children(ROUTER_OWNER, spec), "Secret")
    assert (router_token_ref(ROUTER_OWNER, None).name in secrets) is (named is None)


def test_only_pods_that_call_the_api_mount_a_token(sjob, ensr):
    mounted = {}
    for manifest in [*all_synthesis_manifests(sjob), *all_router_manifests(ensr)]:
        if manifest["kind"] in ("Deployment", "Job"):
            mounted[manifest["metadata"]["name"]] = manifest["spec"]["template"]["spec"]["automountServiceAccountToken"]
    calls_the_api = {
        synthesis.workers_name(OWNER),
        synthesis.merge_name(OWNER),
        ensemble.calibrate_job_name(ROUTER_OWNER, ensr.spec),
    }
    assert {name for name, automount in mounted.items() if automount} == calls_the_api
    assert len(pod_specs(all_synthesis_manifests(sjob))) == len([n for n in mounted if n.startswith("math-code")])


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:hunter2@llm.svc:8000/v1", "http://llm.svc:8000/v1"),
        ("https://k%40y@api.example.com/v1?x=1", "https://api.example.com/v1?x=1"),
        ("http://llm.svc:8000/v1", "http://llm.svc:8000/v1"),
    ],
)
def test_status_never_echoes_credentials_of_an_endpoint_url(url: str, shown: str) -> None:
    from quorum.builders.backends import ResolvedEndpoint

    assert ResolvedEndpoint("m", url, "m").display_url == shown
