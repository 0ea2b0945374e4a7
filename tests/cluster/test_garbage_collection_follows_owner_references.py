"""Deleting an owner deletes what it owns: the garbage collector the operator relies on for cleanup.

Quorum's custom resources own their Deployments, Services and Jobs through controller owner references, so
this test uses a custom resource of its own (tests/cluster/crds/) as the owner.
"""

from __future__ import annotations

import pytest

from e2e.kube import Kube, eventually
from tests.cluster.manifests import deployment

pytestmark = pytest.mark.cluster

GROUP = "e2e.quorum.dev"
WIDGETS = f"widgets.{GROUP}"  # installed by the fixtures from tests/cluster/crds/


def _owned_by(owner: dict, child: dict) -> dict:
    child["metadata"]["ownerReferences"] = [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    return child


def _gone(kube: Kube, *selectors: tuple[str, str]) -> bool:
    return all(not kube.get(kind, None, f"--selector={sel}")["items"] for kind, sel in selectors)


def test_deleting_a_custom_resource_deletes_its_children_and_their_pods(kube: Kube) -> None:
    kube.apply({"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "owner"}, "spec": {}})
    owner = kube.get(WIDGETS, "owner")
    kube.apply(_owned_by(owner, deployment("child", replicas=2)))
    kube.apply(
        _owned_by(
            owner,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "child-config", "labels": {"app": "child"}},
            },
        )
    )
    kube.wait("deployment/child", "condition=Available", timeout=60)

    kube.delete(WIDGETS, "owner")

    eventually(
        lambda: _gone(
            kube,
            ("deployments", "app=child"),
            ("configmaps", "app=child"),
            ("replicasets", "app=child"),
            ("pods", "app=child"),
        ),
        # Seconds on the local plane; up to 30 s more on a cluster whose controller manager started before
        # the CRD existed (QUORUM_E2E_CLUSTER=up or kind): its garbage collector rediscovers kinds every 30 s.
        timeout=90,
        what="the garbage collector to delete the widget's children",
    )


def test_orphan_deletion_keeps_the_children(kube: Kube) -> None:
    kube.apply(deployment("parent", replicas=1))
    kube.wait("deployment/parent", "condition=Available", timeout=60)

    kube.kubectl("delete", "deployment", "parent", "--cascade=orphan", "--wait=true")

    def orphaned() -> bool:
        sets = kube.get("replicasets", None, "--selector=app=parent")["items"]
        return len(sets) == 1 and not sets[0]["metadata"].get("ownerReferences")

    eventually(orphaned, timeout=30, what="the ReplicaSet to lose its owner reference")
    assert len(kube.get("pods", None, "--selector=app=parent")["items"]) == 1
