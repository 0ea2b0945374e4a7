"""On the real control plane: the examples create exactly the expected children, with owner references;
a restarted operator creates no duplicates; deleting the resource garbage-collects every child."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from e2e.kube import eventually
from quorum.api.ensemble import EnsembleRouterSpec
from quorum.builders import ensemble, synthesis
from tests.operator import names

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KINDS = "deployments,services,jobs,configmaps,serviceaccounts,roles,rolebindings,horizontalpodautoscalers"
SELECTOR = "app.kubernetes.io/managed-by=quorum"


def example(name: str, namespace: str) -> dict:
    document = yaml.safe_load((EXAMPLES / name).read_text())
    document["metadata"]["namespace"] = namespace
    return document


def children(kube) -> dict[tuple[str, str], dict]:
    items = kube.get(KINDS, None, "-l", SELECTOR)["items"]
    return {(item["kind"], item["metadata"]["name"]): item for item in items}


def test_examples_create_exactly_the_expected_children_and_deletion_collects_them(kube, namespace, start_operator):
    sjob, ensr = example("synthesisjob.yaml", namespace), example("ensemblerouter.yaml", namespace)
    job, router = names.sjob("math-code"), names.ensr("team-ensemble")
    router_spec = EnsembleRouterSpec.model_validate(ensr["spec"])
    expected = {
        *{(kind, synthesis.worker_account(job)) for kind in ("ServiceAccount", "Role", "RoleBinding")},
        ("ConfigMap", synthesis.config_map_name(job)),
        *{
            (kind, names.backend_name(job, m))
            for m in ("qwen", "llama", "mistral")
            for kind in ("Deployment", "Service")
        },
        ("ServiceAccount", ensemble.router_name(router)),
        *{(kind, ensemble.calibrator_account(router)) for kind in ("ServiceAccount", "Role", "RoleBinding")},
        ("ConfigMap", ensemble.config_map_name(router)),
        ("ConfigMap", ensemble.artifact_name(router, router_spec)),
        *{
            (kind, names.backend_name(router, m))
            for m in ("qwen", "llama", "mistral", "internlm")
            for kind in ("Deployment", "Service")
        },
    }
    with start_operator():
        kube.apply([sjob, ensr])
        found = eventually(lambda: (c := children(kube)) and set(c) >= expected and c, timeout=60, what="children")
        # The example's PVCs do not exist here, so no backend becomes ready: workers and calibration wait.
        status = eventually(lambda: kube.get("sjob", "math-code").get("status", {}).get("conditions"), what="status")
        assert {c["type"]: c["reason"] for c in status}["Progressing"] == "WaitingForBackends"
    assert set(found) == expected
    uids = {key: item["metadata"]["uid"] for key, item in found.items()}
    owners = {"math-code": kube.get("sjob", "math-code")["metadata"]["uid"]}
    owners["team-ensemble"] = kube.get("ensr", "team-ensemble")["metadata"]["uid"]
    for (_kind, name), item in found.items():
        [reference] = item["metadata"]["ownerReferences"]
        assert reference["controller"] is True
        assert reference["uid"] == owners[reference["name"]] and name.startswith(reference["name"])
        assert "research" not in item["metadata"]["labels"].values()

    with start_operator():  # a restarted operator adopts what exists: same objects, nothing new
        kube.wait("sjob/math-code", "jsonpath={.status.phase}=Pending", timeout=30)
        again = children(kube)
        assert {key: item["metadata"]["uid"] for key, item in again.items()} == uids
        replica_sets = kube.get("replicasets", None, "-l", SELECTOR)["items"]
        assert len(replica_sets) == 7  # one per model Deployment

        kube.delete("sjob", "math-code")
        kube.delete("ensr", "team-ensemble")
        eventually(lambda: not children(kube), timeout=90, what="garbage collection of every child")
