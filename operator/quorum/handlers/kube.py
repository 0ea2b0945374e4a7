"""The few Kubernetes calls the reconcilers make: server-side apply, get, list by labels, delete, merge patches
of a status subresource, and the list-and-watch that feeds the child cache (handlers/informer.py).

The official client's ApiClient still does what is hard (kubeconfig, in-cluster tokens, TLS); its
DynamicClient is kept for discovery only (a kind's path). Requests go out as JSON bodies and come back as
plain dicts: the DynamicClient's ResourceInstance objects and their `.to_dict()` cost more CPU and
memory than the reconcile they serve (measured by bench/operator_scale.py). Errors are the client's
`ApiException` with the API server's status and body, as before.

Lists of a kind the child cache covers are answered from it once it is synced; writes put the object they
return into the cache, so the next reconcile sees what this one created before its watch event arrives.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from quorum.builders.credentials import with_generated_value
from quorum.builders.meta import FIELD_MANAGER
from quorum.handlers.metrics import API_REQUESTS

if TYPE_CHECKING:
    from quorum.handlers.informer import ObjectCache


def newer(candidate: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether `candidate` is at least as new as `current`: resourceVersions are etcd revisions (integers);
    one that is not an integer is taken as newer, since the server said it last."""
    if current is None:
        return True
    try:
        return int(candidate["metadata"]["resourceVersion"]) >= int(current["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return True


POOL_SIZE = 64
"""HTTP connections kept to the API server: every reconcile thread (kopf's and the child queue's), the threads
converging their children side by side (handlers/plan.py) and the informers' watches at once, so no request
opens a throwaway connection (a TLS handshake the loaded API server pays for)."""
JSON = "application/json"


def load_config(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (`KUBECONFIG` or ~/.kube/config)."""
    configuration = client.Configuration()
    try:
        if kubeconfig:
            raise config.ConfigException("explicit kubeconfig")
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = max(POOL_SIZE, os.cpu_count() or 1)
    return client.ApiClient(configuration)


def api_error(response: urllib3.BaseHTTPResponse, body: bytes) -> ApiException:
    """The official client's exception, with the API server's Status in `body`: its message names the field a
    refused object got wrong, which the Stalled condition repeats."""
    error = ApiException(status=response.status, reason=response.reason)
    error.body = body.decode("utf-8", "replace")
    error.headers = response.headers
    return error


def selector_of(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in labels.items())


class Kube:
    """One API connection, shared by every handler thread."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = api_client
        self.dynamic = DynamicClient(api_client)
        self.cache: ObjectCache | None = None
        self._resources: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        with self._lock:
            if key not in self._resources:
                self._resources[key] = self.dynamic.resources.get(api_version=api_version, kind=kind)
            return self._resources[key]

    def path(self, api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
        resource = self._resource(api_version, kind)
        return str(resource.path(name=name, namespace=namespace if resource.namespaced else None))

    def response(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = JSON,
        timeout: urllib3.Timeout | None = None,
        accept: str = JSON,
    ) -> urllib3.BaseHTTPResponse:
        """One request, authenticated as the ApiClient would; the response unread (a watch streams it).
        `accept` may ask for metadata only (PartialObjectMetadata), as a watcher that needs names does."""
        headers = {"Accept": accept, "Content-Type": content_type}
        _, url, headers, _, _ = self.api.param_serialize(
            method, path, header_params=headers, auth_settings=["BearerToken"]
        )
        if query:
            url += "?" + urlencode(query)
        API_REQUESTS.labels(method).inc()
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        pool = self.api.rest_client.pool_manager
        response = pool.request(method, url, body=payload, headers=headers, timeout=timeout, preload_content=False)
        if not 200 <= response.status < 300:
            body = response.read()  # unpreloaded: `response.data` would be empty
            response.release_conn()
            raise api_error(response, body)
        return response

    def request(self, method: str, path: str, query: list[tuple[str, Any]] | None = None, **kwargs: Any) -> Any:
        """The parsed answer; the connection goes back to the pool read to its end, so it is reused."""
        return json.loads(self.send(method, path, query, **kwargs))

    def send(self, method: str, path: str, query: list[tuple[str, Any]] | None = None, **kwargs: Any) -> bytes:
        response = self.response(method, path, query, **kwargs)
        try:
            return response.read()
        finally:
            response.release_conn()

    def _remember(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.cache is not None:
            self.cache.upsert(obj)
        return obj

    def apply(self, manifest: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply as `quorum-operator`, forcing ownership of the fields we declare. `dry_run` has the
        API server validate (and admit) the object without storing it."""
        metadata = manifest["metadata"]
        path = self.path(manifest["apiVersion"], manifest["kind"], metadata.get("namespace"), metadata["name"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")] + ([("dryRun", "All")] if dry_run else [])
        applied = self.request("PATCH", path, query, body=manifest, content_type="application/apply-patch+yaml")
        return applied if dry_run else self._remember(applied)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """A plain create: the API server refuses it (409 AlreadyExists) when the name is taken."""
        path = self.path(manifest["apiVersion"], manifest["kind"], manifest["metadata"].get("namespace"))
        return self._remember(self.request("POST", path, [("fieldManager", FIELD_MANAGER)], body=manifest))

    def post(self, manifest: dict[str, Any]) -> None:
        """A create whose answer is not needed (an Event): nothing is parsed or cached."""
        path = self.path(manifest["apiVersion"], manifest["kind"], manifest["metadata"].get("namespace"))
        self.send("POST", path, body=manifest)

    def create_once(self, manifest: dict[str, Any]) -> None:
        """Create a generated Secret with its random value unless one of that name exists, which is left as it
        is: the operator may create Secrets but never read, list or update them (builders/credentials.py)."""
        try:
            path = self.path(manifest["apiVersion"], manifest["kind"], manifest["metadata"].get("namespace"))
            query = [("fieldManager", FIELD_MANAGER)]
            self.send("POST", path, query, body=with_generated_value(manifest))
        except ApiException as error:
            if error.status != 409:
                raise

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", self.path(api_version, kind, namespace, name))  # type: ignore[no-any-return]
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def read(
        self, api_version: str, kind: str, namespace: str, name: str, at_least: str | None = None
    ) -> dict[str, Any] | None:
        """`get`, answered from the cache when it holds a copy at least as new as `at_least` (the version the
        caller saw, e.g. in the event that woke it); a GET otherwise, and when the cache holds none."""
        cached = self.cache.get(api_version, kind, namespace, name) if self.cache is not None else None
        if cached is not None and (at_least is None or newer(cached, {"metadata": {"resourceVersion": at_least}})):
            return cached
        return self.get(api_version, kind, namespace, name)

    def list(self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Objects with all of `labels`, in `namespace` (None: every namespace); from the child cache when it
        holds this kind and namespace."""
        if self.cache is not None:
            cached = self.cache.list(api_version, kind, namespace, labels)
            if cached is not None:
                return cached
        return self.list_with_version(api_version, kind, namespace, labels)[0]

    def list_with_version(
        self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str], accept: str = JSON
    ) -> tuple[list[dict[str, Any]], str]:
        """A LIST from the API server, and its resourceVersion (where a watch of it starts)."""
        query = [("labelSelector", selector_of(labels))] if labels else []
        found = self.request("GET", self.path(api_version, kind, namespace), query, accept=accept)
        items = found.get("items") or []
        for item in items:  # a list's items carry neither; the reconcilers and the cache want both
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items, str((found.get("metadata") or {}).get("resourceVersion") or "")

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        labels: dict[str, str],
        version: str,
        seconds: int,
        accept: str = JSON,
    ) -> Iterator[dict[str, Any]]:
        """The watch events after `version` (`{"type", "object"}`), until the API server ends the stream after
        `seconds`. A 410 Gone arrives as an ERROR event: the caller lists again."""
        query: list[tuple[str, Any]] = [("watch", "true"), ("resourceVersion", version)]
        query += [("allowWatchBookmarks", "true"), ("timeoutSeconds", seconds)]
        query += [("labelSelector", selector_of(labels))] if labels else []
        timeout = urllib3.Timeout(connect=30, read=seconds + 30)
        response = self.response("GET", self.path(api_version, kind, namespace), query, timeout=timeout, accept=accept)
        try:
            for line in _lines(response):
                yield json.loads(line)
        finally:  # a stream left midway has unread data: the connection is closed, not reused
            response.close()
            response.release_conn()

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete with background propagation (pods of a Job go too); False when it was already gone."""
        try:
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
            self.send("DELETE", self.path(api_version, kind, namespace, name), body=body)
            return True
        except ApiException as error:
            if error.status == 404:
                return False
            raise

    def patch_merge(self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        path = self.path(api_version, kind, namespace, name)
        self._remember(self.request("PATCH", path, body=patch, content_type="application/merge-patch+json"))

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """JSON merge patch of the status subresource: keys we send replace theirs, keys we omit stay (the
        workers' `status.shards.<index>` reports)."""
        path = self.path(api_version, kind, namespace, name) + "/status"
        body = {"status": status}
        self._remember(self.request("PATCH", path, body=body, content_type="application/merge-patch+json"))


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The newline-delimited JSON of a watch, as it arrives (chunks need not end on a line)."""
    pending = b""
    for chunk in response.stream(64 * 1024, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending
