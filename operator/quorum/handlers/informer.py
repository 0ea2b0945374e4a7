"""The children, as the watches report them: a cache the reconcilers' LISTs are answered from.

Why: a reconcile used to LIST every child kind of its resource, and a label-selected LIST costs the API server
a scan of the whole namespace, so N resources cost N² work and 1,000 SynthesisJobs took minutes to get their
children (bench/operator_scale.py). Here one LIST and one WATCH per child kind and watched namespace (label
`app.kubernetes.io/managed-by=quorum`, filtered by the API server) keep every child in memory, indexed by
label, and `Kube.list` reads from it once the kind is synced.

Correctness is the reflector's: a LIST, then a WATCH from its resourceVersion; an expired version (410) or
a broken stream lists again. The cache may lag the API server by an event; what could go wrong with that is
covered elsewhere — a write puts its answer into the cache at once (`Kube`), and a create refused because the
child exists after all is resolved by reading it (`OperatorContext.converge`).

The watches of Deployments, Jobs and pods also drive the reconciles of their parents (their status is what a
reconcile waits for), through a queue that runs each parent's reconcile at most once at a time and once per
burst of events, on its own threads, so a storm of pod events never holds kopf's handler threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes.client.exceptions import ApiException

from quorum.builders.meta import LABEL_MANAGED_BY, MANAGED_BY
from quorum.handlers.kube import Kube, newer

log = logging.getLogger(__name__)

CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
)
"""Every kind a reconcile observes (Secrets never: the operator may only create them)."""
RESOURCE_KINDS: tuple[tuple[str, str], ...] = (
    ("quorum.dev/v1alpha1", "SynthesisJob"),
    ("quorum.dev/v1alpha1", "EnsembleRouter"),
    ("quorum.dev/v1alpha1", "Model"),
)
"""Quorum's own resources, cached too (unlabelled, so watched whole): a reconcile reads its resource from the
cache when the copy there is at least as new as the one its driver saw (`Kube.read`)."""
TRIGGERS = {("apps/v1", "Deployment"), ("batch/v1", "Job"), ("v1", "Pod")}
"""The kinds whose changes reconcile their parent: their status is what a reconcile waits for."""
MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}
WATCH_SECONDS = 300
"""A watch ends server-side after this, so a silently dead stream is replaced (as kopf's do)."""

Key = tuple[str, str, str, str]
"""(apiVersion, kind, namespace, name)."""


TEMPLATED = ("Job", "Deployment")
"""Kinds whose pod template the cache drops: no plan reads it (a Job's is immutable; a changed Deployment is
found by its applied-manifest hash), and it is most of what such an object holds."""


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """What a reconcile reads of a child, without what it never does and what costs the most memory: the
    managed fields, a pod's spec (its status, labels and annotations tell its fate), and the pod template of
    a Job or Deployment (at 1,000 SynthesisJobs the cache was most of the operator's memory)."""
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    kept = {k: v for k, v in obj.items() if not (k == "spec" and obj.get("kind") == "Pod")}
    if obj.get("kind") in TEMPLATED and isinstance(kept.get("spec"), dict):
        kept["spec"] = {k: v for k, v in kept["spec"].items() if k != "template"}
    kept["metadata"] = metadata
    return kept


def news(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """Whether a child's change can change its parent's plan, so that it is worth a reconcile. The plans read
    a Job's or Deployment's spec and status, and of a pod its phase, readiness and address (failures and
    termination messages come with a phase; a model replica is scraped once ready). A pod's other updates
    (scheduling, finalizers, a new pending pod the Job's status already counts) are not news: at scale each
    such reconcile cost a GET and often a status write (bench/operator_scale.py)."""
    if after.get("kind") != "Pod":
        return before is None or (before.get("spec"), before.get("status")) != (after.get("spec"), after.get("status"))
    return pod_facts(before) != pod_facts(after)


def pod_facts(pod: dict[str, Any] | None) -> tuple[Any, ...]:
    """Phase, readiness and address; a pod not seen before counts as pending, unready and without one."""
    status = (pod or {}).get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return status.get("phase") or "Pending", ready, status.get("podIP")


def cacheable(obj: dict[str, Any]) -> bool:
    """Only Quorum's resources and the children it manages are held."""
    kind = (obj.get("apiVersion"), obj.get("kind"))
    if kind in RESOURCE_KINDS:
        return True
    return kind in CHILD_KINDS and (obj["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY


class ObjectCache:
    """Children by key, indexed by each label pair, for the (kind, namespace) pairs whose watch is synced."""

    def __init__(self) -> None:
        self._objects: dict[Key, dict[str, Any]] = {}
        self._by_label: dict[tuple[str, str, str, str, str], set[str]] = {}
        self._synced: set[tuple[str, str, str | None]] = set()
        self._lock = threading.Lock()

    @staticmethod
    def key(obj: dict[str, Any]) -> Key:
        metadata = obj["metadata"]
        return obj["apiVersion"], obj["kind"], metadata.get("namespace") or "", metadata["name"]

    def _index(self, key: Key, obj: dict[str, Any], add: bool) -> None:
        for label, value in (obj["metadata"].get("labels") or {}).items():
            names = self._by_label.setdefault((*key[:3], label, value), set())
            if add:
                names.add(key[3])
            else:
                names.discard(key[3])
                if not names:
                    del self._by_label[(*key[:3], label, value)]

    def upsert(self, obj: dict[str, Any]) -> bool:
        """Keep `obj` unless a newer copy is held; only managed objects of cached kinds are kept. True when
        what a reconcile reads of it changed (`news`): a new copy of what is held already is not news."""
        if not cacheable(obj):
            return False
        with self._lock:
            changed = self._put(obj)
        return changed is not None and news(*changed)

    def _put(self, obj: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
        """Hold `obj` (the lock is held) unless a newer copy is; (the copy it replaces, the one kept) or None."""
        key = self.key(obj)
        current = self._objects.get(key)
        if not newer(obj, current):
            return None
        if current is not None:
            self._index(key, current, add=False)
        kept = self._objects[key] = slim(obj)
        self._index(key, obj, add=True)
        return current, kept

    def remove(self, obj: dict[str, Any]) -> None:
        key = self.key(obj)
        with self._lock:
            current = self._objects.get(key)
            if current is not None and newer(obj, current):
                del self._objects[key]
                self._index(key, current, add=False)

    def replace(self, api_version: str, kind: str, namespace: str | None, items: Iterable[dict[str, Any]]) -> None:
        """A fresh LIST of one kind in one namespace (None: all) stands for everything held of it. Swapped in
        under one lock: a reconcile reading meanwhile sees the old set or the new one, never a half-empty one
        (which would look like deleted children)."""
        with self._lock:
            stale = [
                k for k in self._objects if k[:2] == (api_version, kind) and (namespace is None or k[2] == namespace)
            ]
            for key in stale:
                self._index(key, self._objects.pop(key), add=False)
            for item in items:
                if cacheable(item):
                    self._put(item)
            self._synced.add((api_version, kind, namespace))

    def unsync(self, api_version: str, kind: str, namespace: str | None) -> None:
        with self._lock:
            self._synced.discard((api_version, kind, namespace))

    def list(
        self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str]
    ) -> list[dict[str, Any]] | None:
        """The held objects with all of `labels` (copies: the reconcilers may change what they get), or None
        when this kind and namespace are not synced, or the selector reaches past the managed objects."""
        if labels.get(LABEL_MANAGED_BY, MANAGED_BY) != MANAGED_BY or namespace is None or not labels:
            return None
        with self._lock:
            if not {(api_version, kind, namespace), (api_version, kind, None)} & self._synced:
                return None
            sets = [self._by_label.get((api_version, kind, namespace, k, v), set()) for k, v in labels.items()]
            names = set.intersection(*sets)
            found = [self._objects[(api_version, kind, namespace, name)] for name in sorted(names)]
        return [_copy(obj) for obj in found]

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of the held object, or None when it is not held (or its kind and namespace are not synced)."""
        with self._lock:
            found = self._objects.get((api_version, kind, namespace, name))
        return _copy(found) if found is not None else None


def _copy(value: Any) -> Any:
    """A deep copy of JSON data, faster than `copy.deepcopy`."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class Informer(threading.Thread):
    """One kind in one namespace (None: all): LIST, then WATCH from there, into the cache, forever."""

    def __init__(
        self,
        kube: Kube,
        kind: tuple[str, str],
        namespace: str | None,
        on_change: Callable[[dict[str, Any]], None] | None,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"informer-{kind[1]}-{namespace or 'all'}", daemon=True)
        assert kube.cache is not None
        self.kube, self.cache, self.kind, self.namespace = kube, kube.cache, kind, namespace
        self.on_change, self.stop = on_change, stop
        self.labels = {} if kind in RESOURCE_KINDS else MANAGED

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                items, version = self.kube.list_with_version(*self.kind, self.namespace, self.labels)
                self.cache.replace(*self.kind, self.namespace, items)
                self.follow(version)
            except Exception as error:  # the API server may be away: list again after a pause
                if self.stop.is_set():
                    return
                log.warning("watch of %s in %s: %s", self.kind[1], self.namespace or "all namespaces", error)
                self.stop.wait(2.0)
            self.cache.unsync(*self.kind, self.namespace)

    def follow(self, version: str) -> None:
        """Apply watch events until the stream cannot resume (then the caller lists again)."""
        while not self.stop.is_set():
            started = time.monotonic()
            for event in self.kube.watch(*self.kind, self.namespace, self.labels, version, WATCH_SECONDS):
                if self.stop.is_set():
                    return
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                version = obj.get("metadata", {}).get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                obj.setdefault("apiVersion", self.kind[0])
                obj.setdefault("kind", self.kind[1])
                if kind == "DELETED":
                    self.cache.remove(obj)
                if (kind == "DELETED" or self.cache.upsert(obj)) and self.on_change is not None:
                    self.on_change(obj)
            if time.monotonic() - started < 1.0:
                self.stop.wait(1.0)  # a stream that ends at once: do not spin


def start_informers(
    kube: Kube,
    namespaces: list[str],
    on_change: Callable[[dict[str, Any]], None],
    stop: threading.Event,
) -> list[Informer]:
    """The cache and its watches: every child kind and resource kind in every watched namespace (or
    cluster-wide)."""
    kube.cache = ObjectCache()
    informers = [
        Informer(kube, kind, namespace, on_change if kind in TRIGGERS else None, stop)
        for kind in CHILD_KINDS + RESOURCE_KINDS
        for namespace in namespaces or [None]
    ]
    for informer in informers:
        informer.start()
    return informers
