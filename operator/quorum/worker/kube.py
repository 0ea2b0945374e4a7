"""The worker's one Kubernetes write: a merge patch of its SynthesisJob's `status.shards.<index>`, made with
the pod's own ServiceAccount token (a Role that allows exactly that, see builders/rbac.py)."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config
from kubernetes.config.incluster_config import SERVICE_CERT_FILENAME, SERVICE_TOKEN_FILENAME, InClusterConfigLoader

from quorum.api.resources import GROUP, VERSION
from quorum.worker.podfs import pod_path


def pod_api_client() -> client.ApiClient:
    """In-cluster credentials (the projected ServiceAccount token), else `KUBECONFIG` for a worker run by hand."""
    configuration = client.Configuration()
    try:
        InClusterConfigLoader(
            token_filename=str(pod_path(SERVICE_TOKEN_FILENAME)),
            cert_filename=str(pod_path(SERVICE_CERT_FILENAME)),
        ).load_and_set(configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return client.ApiClient(configuration)


class StatusPatcher:
    """Merge patches of one custom resource's status subresource."""

    def __init__(self, api_client: client.ApiClient, plural: str, namespace: str, name: str) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.plural, self.namespace, self.name = plural, namespace, name

    def patch(self, status: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            self.plural,
            self.name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )
