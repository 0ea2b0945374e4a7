"""Least privilege, checked by the API server's own authorizer (`kubectl auth can-i --as=...`): the operator
(granted exactly `OPERATOR_RULES`, as the Helm chart does), the workers, calibration and the router can do
what they need and nothing more."""

from __future__ import annotations

import pytest

from e2e.kube import eventually
from quorum.builders.rbac import OPERATOR_RULES
from tests.operator.names import CALIBRATOR_ACCOUNT, ROUTER_ACCOUNT, WORKER_ACCOUNT
from tests.operator.test_synthesis_lifecycle import synthesis_job

pytestmark = pytest.mark.cluster


def grant_operator_rules(kube, namespace: str) -> None:
    meta = {"name": "quorum-operator", "namespace": namespace}
    kube.apply(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": OPERATOR_RULES},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "quorum-operator"},
                "subjects": [{"kind": "ServiceAccount", "name": "quorum-operator", "namespace": namespace}],
            },
        ]
    )


def test_each_component_can_do_what_it_needs_and_nothing_more(kube, namespace, start_operator):
    grant_operator_rules(kube, namespace)
    router = {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "EnsembleRouter",
        "metadata": {"name": "er", "namespace": namespace},
        "spec": {
            "models": [{"name": "sim", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "sim"}}],
            "calibration": {"dataset": {"uri": "configmap://calib/calib.jsonl"}, "clusters": 2},
        },
    }
    with start_operator(manual_pods=True):
        kube.apply([synthesis_job(namespace), router])
        eventually(
            lambda: kube.exists("rolebinding", WORKER_ACCOUNT) and kube.exists("rolebinding", CALIBRATOR_ACCOUNT)
        )
    artifact = next(
        c["metadata"]["name"]
        for c in kube.get("configmaps", None, "-l", "app.kubernetes.io/component=calibration")["items"]
    )
    operator, worker = kube.impersonate("quorum-operator"), kube.impersonate(WORKER_ACCOUNT)
    calibrator, router_sa = kube.impersonate(CALIBRATOR_ACCOUNT), kube.impersonate(ROUTER_ACCOUNT)

    allowed = [
        (operator, "watch", "synthesisjobs.quorum.dev"),
        (operator, "patch", "synthesisjobs.quorum.dev", "--subresource=status"),
        (operator, "patch", "ensemblerouters.quorum.dev"),
        (operator, "create", "deployments.apps"),
        (operator, "delete", "jobs.batch"),
        (operator, "create", "roles.rbac.authorization.k8s.io"),
        (operator, "create", "horizontalpodautoscalers.autoscaling"),
        (operator, "list", "pods"),
        # The child cache watches every child kind (handlers/informer.py).
        *[
            (operator, "watch", kind)
            for kind in ("configmaps", "serviceaccounts", "rolebindings.rbac.authorization.k8s.io")
        ],
        (operator, "create", "events"),
        (operator, "create", "secrets"),  # the generated model key and router token
        (operator, "create", "networkpolicies.networking.k8s.io"),
        (operator, "patch", "networkpolicies.networking.k8s.io"),
        (operator, "patch", "rolebindings.rbac.authorization.k8s.io"),
        (operator, "delete", "deployments.apps"),  # backends.deleteOnCompletion
        (operator, "delete", "configmaps"),  # stale calibrations
        (worker, "patch", "synthesisjobs.quorum.dev/sj", "--subresource=status"),
        (worker, "get", "synthesisjobs.quorum.dev/sj", "--subresource=status"),
        (calibrator, "patch", f"configmaps/{artifact}"),
    ]
    denied = [
        (operator, "get", "secrets"),
        (operator, "create", "pods"),
        (operator, "delete", "synthesisjobs.quorum.dev"),
        (operator, "update", "synthesisjobs.quorum.dev/sj", "--subresource=finalize"),
        (operator, "escalate", "roles.rbac.authorization.k8s.io"),
        # Narrowed: never a PUT, never a delete of what it only applies, Secrets create-only.
        *[(operator, verb, "secrets") for verb in ("list", "watch", "patch", "update", "delete")],
        (operator, "get", "secrets/tulu-api"),
        *[(operator, "update", kind) for kind in ("deployments.apps", "jobs.batch", "configmaps", "services")],
        (operator, "update", "synthesisjobs.quorum.dev"),
        (operator, "update", "ensemblerouters.quorum.dev", "--subresource=status"),
        *[(operator, "delete", kind) for kind in ("serviceaccounts", "roles.rbac.authorization.k8s.io")],
        (operator, "delete", "rolebindings.rbac.authorization.k8s.io"),
        (operator, "delete", "networkpolicies.networking.k8s.io"),
        (operator, "delete", "horizontalpodautoscalers.autoscaling"),
        (operator, "deletecollection", "jobs.batch"),
        (operator, "deletecollection", "configmaps"),
        (operator, "patch", "pods"),
        (operator, "bind", "roles.rbac.authorization.k8s.io"),
        (worker, "patch", "synthesisjobs.quorum.dev/other", "--subresource=status"),
        (worker, "patch", "synthesisjobs.quorum.dev/sj"),  # the spec: never
        (worker, "list", "synthesisjobs.quorum.dev"),
        (worker, "get", "secrets"),
        (worker, "create", "pods"),
        (calibrator, "patch", "configmaps/er-config"),
        (calibrator, "update", f"configmaps/{artifact}"),
        (calibrator, "create", "configmaps"),
        (calibrator, "get", "secrets"),
        (router_sa, "get", "configmaps"),
        (router_sa, "list", "pods"),
        (router_sa, "get", "ensemblerouters.quorum.dev"),
        (router_sa, "get", "secrets"),
    ]
    assert [check[1:] for check in allowed if not check[0].can_i(*check[1:])] == []
    assert [check[1:] for check in denied if check[0].can_i(*check[1:])] == []
