"""RBAC is enforced: a service account may do what its Role grants and nothing else.

Quorum's workers, router and operator each get a least-privilege ServiceAccount; these tests prove the plane
judges such accounts as a production API server would, by impersonation and by their own signed tokens.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from e2e.kube import Kube, KubectlError, eventually
from e2e.kubeconfig import token_kubeconfig

pytestmark = pytest.mark.cluster


def _worker_with_pod_reader_role(kube: Kube) -> None:
    namespace = kube.namespace
    kube.apply(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "worker"}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "worker"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": namespace}],
            },
        ]
    )


def test_impersonated_service_account_is_denied_what_its_role_lacks(kube: Kube) -> None:
    _worker_with_pod_reader_role(kube)
    worker = kube.impersonate("worker")

    assert worker.can_i("list", "pods")
    assert not worker.can_i("delete", "pods")
    assert not worker.can_i("get", "secrets")
    assert not worker.can_i("list", "pods", "--namespace=default")
    worker.kubectl("get", "pods")
    with pytest.raises(KubectlError, match="forbidden"):
        worker.kubectl("get", "secrets")
    with pytest.raises(KubectlError, match="forbidden"):
        worker.kubectl("create", "configmap", "sneaky")


def test_service_account_token_authenticates_as_the_account(kube: Kube, tmp_path: Path) -> None:
    _worker_with_pod_reader_role(kube)
    # The controller manager's token controller fills this Secret with a token signed by the plane's key.
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": "worker-token",
                "annotations": {"kubernetes.io/service-account.name": "worker"},
            },
        }
    )
    token_b64 = eventually(
        lambda: kube.get("secret", "worker-token").get("data", {}).get("token"),
        timeout=30,
        what="the token controller to populate the secret",
    )
    token = base64.b64decode(token_b64).decode()
    as_worker = Kube(
        token_kubeconfig(kube.kubeconfig, token, tmp_path / "worker.kubeconfig"),
        namespace=kube.namespace,
        binary=kube.binary,
    )

    who = as_worker.json("auth", "whoami")
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{kube.namespace}:worker"
    as_worker.kubectl("get", "pods")
    with pytest.raises(KubectlError, match="forbidden"):
        as_worker.kubectl("get", "secrets")
