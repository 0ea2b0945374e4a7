"""The few Kubernetes calls the reconcilers make: server-side apply, get, list by labels, delete, and merge
patches of a status subresource. A thin layer over the official client's DynamicClient."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from quorum.builders.credentials import with_generated_value
from quorum.builders.meta import FIELD_MANAGER


def load_config(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (`KUBECONFIG` or ~/.kube/config)."""
    configuration = client.Configuration()
    try:
        if kubeconfig:
            raise config.ConfigException("explicit kubeconfig")
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return client.ApiClient(configuration)


class Kube:
    """One API connection, shared by every handler thread."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.dynamic = DynamicClient(api_client)
        self._resources: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        with self._lock:
            if key not in self._resources:
                self._resources[key] = self.dynamic.resources.get(api_version=api_version, kind=kind)
            return self._resources[key]

    def apply(self, manifest: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply as `quorum-operator`, forcing ownership of the fields we declare. `dry_run` has the
        API server validate (and admit) the object without storing it."""
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        applied = self.dynamic.server_side_apply(
            resource,
            body=manifest,
            namespace=manifest["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            dry_run="All" if dry_run else None,
        )
        return applied.to_dict()

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """A plain create: the API server refuses it (409 AlreadyExists) when the name is taken."""
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        created = resource.create(
            body=manifest, namespace=manifest["metadata"].get("namespace"), field_manager=FIELD_MANAGER
        )
        return created.to_dict()

    def create_once(self, manifest: dict[str, Any]) -> None:
        """Create a generated Secret with its random value unless one of that name exists, which is left as it
        is: the operator may create Secrets but never read, list or update them (builders/credentials.py)."""
        with contextlib.suppress(ConflictError):
            self.create(with_generated_value(manifest))

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Objects with all of `labels`, in `namespace` (None: every namespace)."""
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        found = self._resource(api_version, kind).get(namespace=namespace, label_selector=selector)
        return [item.to_dict() for item in found.items]

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete with background propagation (pods of a Job go too); False when it was already gone."""
        try:
            self._resource(api_version, kind).delete(
                name=name, namespace=namespace, body={"propagationPolicy": "Background"}
            )
            return True
        except NotFoundError:
            return False

    def patch_merge(self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._resource(api_version, kind).patch(
            name=name, namespace=namespace, body=patch, content_type="application/merge-patch+json"
        )

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """JSON merge patch of the status subresource: keys we send replace theirs, keys we omit stay (the
        workers' `status.shards.<index>` reports)."""
        resource = self._resource(api_version, kind).subresources["status"]
        resource.patch(
            name=name,
            namespace=namespace,
            body={"status": status},
            content_type="application/merge-patch+json",
        )
