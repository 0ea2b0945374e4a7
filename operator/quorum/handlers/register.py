"""The kopf handlers. Each is a few lines: find the object, take its lock, call the kind's reconcile.

Three drivers call the same reconcile: spec changes (create/update/resume, which raise `TemporaryError`
while waiting or after a transient error, with backoff, so kopf retries them), a resync loop, and events of
the children (Deployments, Jobs, pods labelled `app.kubernetes.io/managed-by: quorum`, reported by the child
cache's watches, handlers/informer.py, through `ChildQueue`), because kopf ignores status changes of the
children and of our own resources. Handlers never return values (they would land in
`status` and be pruned).

No finalizer: every child carries an owner reference, so the garbage collector deletes them, and deleting a
resource works with the operator stopped (or uninstalled). That is why the resync is our own loop and not a
kopf timer — kopf puts a finalizer on every object a timer or daemon watches.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from quorum.builders.meta import LABEL_ENSEMBLEROUTER, LABEL_SHARED_MODEL, LABEL_SYNTHESISJOB
from quorum.handlers import ensemble, model, synthesis
from quorum.handlers.context import OperatorContext, Outcome
from quorum.handlers.metrics import DURATION, ERRORS, RECONCILES, record_phases
from quorum.handlers.plan import transient_failure
from quorum.handlers.storage import HandlingMemory

GROUP, VERSION = "quorum.dev", "v1alpha1"
RESYNC_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 300.0
FIRST_BACKOFF_SECONDS = 2.0

Reconcile = Callable[[OperatorContext, dict[str, Any]], Outcome]
KINDS: dict[str, tuple[str, str, Reconcile]] = {
    "synthesisjobs": ("SynthesisJob", LABEL_SYNTHESISJOB, synthesis.reconcile),
    "ensemblerouters": ("EnsembleRouter", LABEL_ENSEMBLEROUTER, ensemble.reconcile),
    "models": ("Model", LABEL_SHARED_MODEL, model.reconcile),
}
CONSUMER_PLURALS = {"SynthesisJob": "synthesisjobs", "EnsembleRouter": "ensemblerouters"}
_follow_ups: dict[tuple[str, str, str], threading.Timer] = {}
"""One pending timed reconcile per Model: its idle countdown ends without any event."""
_locks: dict[tuple[str, str, str], threading.RLock] = {}
_locks_guard = threading.Lock()
_reconciled: dict[tuple[str, str, str], float] = {}
"""When each object's last reconcile finished (monotonic): the resync skips what another driver just did."""
_queued: set[tuple[str, str, str]] = set()
"""Objects with a reconcile waiting for their lock: a child event then needs no second one (the waiting one
reads everything fresh once it runs), so a storm of pod events costs at most one running and one queued
reconcile per object."""


def plain(value: Any) -> Any:
    """kopf hands out read-only views; the reconcilers and pydantic want plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _lock(plural: str, namespace: str, name: str) -> threading.RLock:
    """Reentrant: `reconcile_coalesced` holds it while it calls `reconcile_object`."""
    with _locks_guard:
        return _locks.setdefault((plural, namespace, name), threading.RLock())


def reconcile_object(ctx: OperatorContext, plural: str, namespace: str, name: str, seen: str | None = None) -> Outcome:
    """One reconcile at a time per object, whichever driver asked, on the newest copy (a queued driver must
    not act on what an earlier one already wrote: status writes go into the cache as they are answered), at
    least as new as the version `seen` by the driver (a spec handler's event). A transient error is recorded
    and retried."""
    kind, _label, reconcile = KINDS[plural]
    with _lock(plural, namespace, name):
        fresh = ctx.kube.read(f"{GROUP}/{VERSION}", kind, namespace, name, seen)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return Outcome()
        started = time.perf_counter()
        try:
            outcome = reconcile(ctx, fresh)
        except Exception as error:  # transient by elimination: permanent errors are Stalled in the status
            ERRORS.labels(kind, type(error).__name__).inc()
            RECONCILES.labels(kind, "error").inc()
            transient_failure(ctx, fresh, error, (f"{GROUP}/{VERSION}", kind))
            return Outcome(waiting_for=f"a retry after {type(error).__name__}: {error}", retry=True)
        finally:
            DURATION.labels(kind).observe(time.perf_counter() - started)
            _reconciled[(plural, namespace, name)] = time.monotonic()
        RECONCILES.labels(kind, "waiting" if outcome.waiting else "done").inc()
        return outcome


def referenced_models(body: Mapping[str, Any]) -> list[str]:
    """Names of the Models a consumer's spec references (read loosely: an invalid spec may reference some)."""
    models = (body.get("spec") or {}).get("models") or []
    return list(dict.fromkeys(str((m.get("modelRef") or {}).get("name")) for m in models if m.get("modelRef")))


def reconcile_model(ctx: OperatorContext, namespace: str, name: str) -> None:
    """A Model, then the consumers it lists (they wait on its readiness and their share of it); the Model's
    lock is released before a consumer's is taken, so no two are ever held and nothing loops (a consumer's
    reconcile never reconciles a Model; only its spec handlers and its deletion do)."""
    reconcile_coalesced(ctx, "models", namespace, name)
    reconcile_consumers(ctx, namespace, name)


def reconcile_consumers(ctx: OperatorContext, namespace: str, name: str) -> None:
    fresh = ctx.kube.read(f"{GROUP}/{VERSION}", "Model", namespace, name)
    consumers = ((fresh or {}).get("status") or {}).get("consumers") or []
    for consumer in consumers:
        plural = CONSUMER_PLURALS.get(consumer.get("kind", ""))
        if plural:
            reconcile_coalesced(ctx, plural, namespace, consumer["name"])


def _follow_up(ctx: OperatorContext, namespace: str, name: str, delay: float) -> None:
    key = ("models", namespace, name)
    with _locks_guard:
        pending = _follow_ups.get(key)
        if pending is not None and pending.is_alive():
            return
        timer = threading.Timer(delay, reconcile_model, args=(ctx, namespace, name))
        timer.daemon = True
        _follow_ups[key] = timer
    timer.start()


def retry_delay(retry: int) -> float:
    """The wait before kopf's next try after a transient error: 2 s doubling per retry, at most 5 min. The
    exponent is capped before it is raised, so a resource that has failed for days (kopf's retry count only
    grows) never overflows a float and breaks its own handler."""
    doublings = min(max(retry, 0), 16)  # 2 · 2^16 is far past the cap already
    return min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2**doublings)


def _on_change(plural: str) -> Callable[..., None]:
    def handler(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
        metadata = body["metadata"]
        seen = metadata.get("resourceVersion")
        outcome = reconcile_object(memo.ctx, plural, metadata["namespace"], metadata["name"], seen)
        if plural == "models":
            reconcile_consumers(memo.ctx, metadata["namespace"], metadata["name"])
        for name in referenced_models(body):  # a new consumer scales its Models up at once
            reconcile_model(memo.ctx, metadata["namespace"], name)
        if outcome.waiting:
            delay = retry_delay(retry) if outcome.retry else outcome.delay
            raise kopf.TemporaryError(f"waiting for {outcome.waiting_for}", delay=delay)

    return handler


def _on_delete(plural: str) -> Callable[..., None]:
    def handler(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """Optional (no finalizer): the garbage collector removes the children; only our lock goes here, and
        the Models a consumer referenced count one consumer less (they start their idle countdown)."""
        metadata = body["metadata"]
        with _locks_guard:
            _locks.pop((plural, metadata["namespace"], metadata["name"]), None)
            _reconciled.pop((plural, metadata["namespace"], metadata["name"]), None)
        for name in referenced_models(body):
            reconcile_model(memo.ctx, metadata["namespace"], name)

    return handler


for _plural in KINDS:
    kopf.on.create(GROUP, VERSION, _plural, id="reconcile")(_on_change(_plural))
    kopf.on.update(GROUP, VERSION, _plural, id="reconcile", field="spec")(_on_change(_plural))
    kopf.on.resume(GROUP, VERSION, _plural, id="reconcile")(_on_change(_plural))
    kopf.on.delete(GROUP, VERSION, _plural, id="release", optional=True)(_on_delete(_plural))


def reconcile_coalesced(ctx: OperatorContext, plural: str, namespace: str, name: str) -> None:
    """`reconcile_object`, unless one for the same object is already waiting to run."""
    key = (plural, namespace, name)
    with _locks_guard:
        if key in _queued:
            return
        _queued.add(key)
    lock = _lock(*key)
    with lock:
        with _locks_guard:
            _queued.discard(key)
        outcome = reconcile_object(ctx, plural, namespace, name)
    if plural == "models" and outcome.waiting:
        _follow_up(ctx, namespace, name, outcome.delay)


def parent_of(child: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(plural, namespace, name) of the resource a child belongs to, by its labels; None for none of ours."""
    metadata = child.get("metadata") or {}
    labels, namespace = metadata.get("labels") or {}, metadata.get("namespace")
    for plural, (_kind, label, _reconcile) in KINDS.items():
        if labels.get(label) and namespace:
            return plural, namespace, labels[label]
    return None


class ChildQueue:
    """Parents to reconcile because a Deployment, Job or pod of theirs changed (the informers report them,
    handlers/informer.py): a parent is queued at most once however many events arrive before its turn, and
    the reconciles run on this queue's threads, never on the watch's or kopf's. A parent's turn comes
    `delay` seconds after the event that queued it, so the burst a Job's or pod's progress makes (a few
    status updates within a second) costs one reconcile. A Model's reconcile goes on to its consumers
    (`reconcile_model`)."""

    def __init__(self, ctx: OperatorContext, workers: int, stop: threading.Event, delay: float = 0.0) -> None:
        self.ctx, self.stop, self.delay = ctx, stop, delay
        self._pending: set[tuple[str, str, str]] = set()
        self._queue: queue.SimpleQueue[tuple[float, tuple[str, str, str]]] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self.threads = [
            threading.Thread(target=self._work, name=f"child-queue-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self.threads:
            thread.start()

    def child_changed(self, child: Mapping[str, Any]) -> None:
        parent = parent_of(child)
        if parent is None:
            return
        with self._guard:
            if parent in self._pending:
                return
            self._pending.add(parent)
        self._queue.put((time.monotonic() + self.delay, parent))

    def _work(self) -> None:
        while not self.stop.is_set():
            try:
                due, parent = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            self.stop.wait(max(0.0, due - time.monotonic()))
            with self._guard:
                self._pending.discard(parent)
            try:
                if parent[0] == "models":
                    reconcile_model(self.ctx, *parent[1:])
                else:
                    reconcile_coalesced(self.ctx, *parent)
            except Exception as error:  # the API server may be away; the next event or the resync tries again
                ERRORS.labels(KINDS[parent[0]][0], type(error).__name__).inc()


def resync_once(
    ctx: OperatorContext, namespaces: list[str], fresh_within: float = 0.0, memory: HandlingMemory | None = None
) -> None:
    """Reconcile every resource once (deadlines and TTLs pass without any event) and count them per phase.
    A resource another driver reconciled in the last `fresh_within` seconds is skipped: that reconcile read
    the clock as well, and at 1,000 resources a round of redundant ones (a GET each) took the API server's
    time from the jobs still waiting for their children (bench/operator_scale.py). What kopf's `memory` holds
    of resources missing from the listings is dropped."""
    now = time.monotonic()
    live: set[str] = set()
    for plural, (kind, _label, _reconcile) in KINDS.items():
        items = [
            item
            for namespace in namespaces or [None]
            for item in ctx.kube.list(f"{GROUP}/{VERSION}", kind, namespace, {})  # type: ignore[arg-type]
        ]
        record_phases(kind, items)
        live.update(str(item["metadata"].get("uid")) for item in items)
        for item in items:
            key = (plural, item["metadata"]["namespace"], item["metadata"]["name"])
            if now - _reconciled.get(key, -math.inf) >= fresh_within:
                reconcile_coalesced(ctx, *key)
    if memory is not None:
        memory.retain(live, now)


async def resync_forever(
    ctx: OperatorContext, namespaces: list[str], memory: HandlingMemory | None = None, interval: float = RESYNC_SECONDS
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(resync_once, ctx, namespaces, interval, memory)
        except Exception as error:  # the API server may be away for a while; the next round tries again
            ERRORS.labels("resync", type(error).__name__).inc()
