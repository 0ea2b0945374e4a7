"""The kopf handlers. Each is a few lines: find the object, take its lock, call the kind's reconcile.

Three drivers call the same reconcile: spec changes (create/update/resume, which raise `TemporaryError`
while waiting so kopf retries them), a resync timer, and events of the children (Deployments, Jobs, pods
labelled `app.kubernetes.io/managed-by: quorum`), because kopf ignores status changes of the children and
of our own resources. Handlers never return values (they would land in `status` and be pruned).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from quorum.builders.meta import LABEL_ENSEMBLEROUTER, LABEL_MANAGED_BY, LABEL_SYNTHESISJOB, MANAGED_BY, Owner
from quorum.handlers import ensemble, synthesis
from quorum.handlers.backends import delete_backends
from quorum.handlers.context import OperatorContext, Outcome
from quorum.handlers.status import InvalidSpec

GROUP, VERSION = "quorum.dev", "v1alpha1"
RESYNC_SECONDS = 30.0

Reconcile = Callable[[OperatorContext, dict[str, Any]], Outcome]
KINDS: dict[str, tuple[str, str, Reconcile]] = {
    "synthesisjobs": ("SynthesisJob", LABEL_SYNTHESISJOB, synthesis.reconcile),
    "ensemblerouters": ("EnsembleRouter", LABEL_ENSEMBLEROUTER, ensemble.reconcile),
}
_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def plain(value: Any) -> Any:
    """kopf hands out read-only views; the reconcilers and pydantic want plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _lock(plural: str, namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((plural, namespace, name), threading.Lock())


def _run(memo: Any, plural: str, body: Mapping[str, Any]) -> Outcome:
    """One reconcile at a time per object, whichever driver asked."""
    raw = plain(body)
    ctx: OperatorContext = memo.ctx
    with _lock(plural, raw["metadata"]["namespace"], raw["metadata"]["name"]):
        if plural == "synthesisjobs" or plural == "ensemblerouters":
            fresh = ctx.kube.get(
                f"{GROUP}/{VERSION}", KINDS[plural][0], raw["metadata"]["namespace"], raw["metadata"]["name"]
            )
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return Outcome()
            raw = fresh  # the newest status: a queued driver must not act on what an earlier one already wrote
        return KINDS[plural][2](ctx, raw)


def _on_change(plural: str) -> Callable[..., None]:
    def handler(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        try:
            outcome = _run(memo, plural, body)
        except InvalidSpec as error:
            raise kopf.PermanentError(f"invalid spec: {error}") from error
        if outcome.waiting:
            raise kopf.TemporaryError(f"waiting for {outcome.waiting_for}", delay=outcome.delay)

    return handler


def _on_timer(plural: str) -> Callable[..., None]:
    def handler(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
        try:
            _run(memo, plural, body)
        except InvalidSpec:
            logger.debug("invalid spec; reported in status")

    return handler


def _on_delete(plural: str) -> Callable[..., None]:
    def handler(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """Free GPUs first: the model Deployments go before garbage collection gets to the rest."""
        delete_backends(memo.ctx, Owner.of(plain(body)))
        metadata = body["metadata"]
        with _locks_guard:
            _locks.pop((plural, metadata["namespace"], metadata["name"]), None)

    return handler


for _plural in KINDS:
    kopf.on.create(GROUP, VERSION, _plural, id="reconcile")(_on_change(_plural))
    kopf.on.update(GROUP, VERSION, _plural, id="reconcile", field="spec")(_on_change(_plural))
    kopf.on.resume(GROUP, VERSION, _plural, id="reconcile")(_on_change(_plural))
    kopf.timer(GROUP, VERSION, _plural, id="resync", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)(
        _on_timer(_plural)
    )
    kopf.on.delete(GROUP, VERSION, _plural, id="release")(_on_delete(_plural))


def _child_changed(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    """A Deployment, Job or pod of ours changed: reconcile the resource it belongs to."""
    labels = body["metadata"].get("labels") or {}
    namespace = body["metadata"].get("namespace")
    for plural, (kind, label, _reconcile) in KINDS.items():
        parent = labels.get(label)
        if parent and namespace:
            try:
                _run(memo, plural, {"metadata": {"namespace": namespace, "name": parent}})
            except InvalidSpec:
                logger.debug(f"{kind} {parent}: invalid spec; reported in status")


for _resource in (("apps", "v1", "deployments"), ("batch", "v1", "jobs"), ("v1", "pods")):
    kopf.on.event(*_resource, id="child", labels={LABEL_MANAGED_BY: MANAGED_BY})(_child_changed)
