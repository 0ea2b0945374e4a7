"""Running the operator: kopf with Quorum's settings. Used by `quorum operator run` and by the cluster tests,
which run the very same operator in-process against the local control plane."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import kopf

from quorum.builders.meta import DEFAULT_IMAGE
from quorum.handlers.context import OperatorContext
from quorum.handlers.events import POSTERS, event_poster
from quorum.handlers.informer import start_informers
from quorum.handlers.kube import Kube, load_config
from quorum.handlers.storage import HandlingMemory

HANDLER_WORKERS = 16
"""kopf's threads for the spec handlers (create, update, resume): a reconcile mostly waits on the API server,
and a burst of new resources waits for these threads (at 8, 1,000 new SynthesisJobs queued behind them for
most of a minute; bench/operator_scale.py)."""
CHILD_WORKERS = 8
"""Threads reconciling parents whose children changed (`register.ChildQueue`)."""
CHILD_DELAY_SECONDS = 1.0
"""How long a child's change waits for the rest of its burst before its parent is reconciled."""
FINALIZER = "quorum.dev/finalizer"
"""kopf's finalizer name, should a handler ever need one. None does: children are garbage-collected through
their owner references, so no Quorum resource carries a finalizer and deletion works without the operator;
kopf removes this finalizer from objects an older operator version put it on."""


@dataclass
class OperatorOptions:
    namespaces: list[str] = field(default_factory=list)
    """Namespaces to watch; empty means cluster-wide."""
    kubeconfig: str | None = None
    """Kubeconfig file; default in-cluster credentials, then `KUBECONFIG`/~/.kube/config."""
    image: str = DEFAULT_IMAGE
    """Image of workers, calibration and router when a spec names none."""
    pod_annotations: dict[str, str] = field(default_factory=dict)
    """Annotations added to every pod template Quorum creates."""
    liveness: str | None = None
    """e.g. `http://0.0.0.0:8080/healthz`."""
    peering: str | None = None
    """kopf peering object name; None runs standalone (deploy one replica with the Recreate strategy)."""
    priority: int = 0
    """Peering priority, when peering."""
    server_timeout: int = 300
    """Watch requests end server-side after this, so a silently dead stream is replaced."""


def configure(settings: kopf.OperatorSettings, options: OperatorOptions) -> HandlingMemory:
    """kopf's settings; its per-resource state is kept in the returned memory, not in annotations
    (handlers/storage.py), and the resync prunes it."""
    memory = HandlingMemory()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = memory.progress
    settings.persistence.diffbase_storage = memory.diffbase
    settings.watching.server_timeout = options.server_timeout
    settings.watching.client_timeout = options.server_timeout + 30
    settings.watching.connect_timeout = 30
    settings.posting.level = logging.WARNING  # our own one-line events, not kopf's chatter
    settings.execution.max_workers = HANDLER_WORKERS
    return memory


def make_login(options: OperatorOptions) -> Any:
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if options.kubeconfig:
            import os

            os.environ["KUBECONFIG"] = options.kubeconfig
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    return login


async def run_operator(
    options: OperatorOptions, stop_flag: threading.Event | asyncio.Event | None = None, ready_flag: Any = None
) -> None:
    """Run until `stop_flag` is set (or forever)."""
    from quorum.handlers.register import ChildQueue, resync_forever  # importing registers the handlers

    registry = kopf.get_default_registry()
    kube = Kube(load_config(options.kubeconfig))

    posters = ThreadPoolExecutor(POSTERS, thread_name_prefix="events")
    ctx = OperatorContext(
        kube=kube,
        image=options.image,
        pod_annotations=dict(options.pod_annotations),
        post_event=event_poster(kube, posters),
    )
    settings = kopf.OperatorSettings()
    memory = configure(settings, options)
    if not getattr(registry, "_quorum_login", False):
        kopf.on.login(registry=registry)(make_login(options))
        registry._quorum_login = True  # type: ignore[attr-defined]
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=settings,
            memo=kopf.Memo(ctx=ctx),
            standalone=options.peering is None,
            peering_name=options.peering,
            priority=options.priority,
            liveness_endpoint=options.liveness,
            clusterwide=not options.namespaces,
            namespaces=options.namespaces,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    )
    resync = asyncio.create_task(resync_forever(ctx, options.namespaces, memory))
    halt = threading.Event()
    children = ChildQueue(ctx, CHILD_WORKERS, halt, CHILD_DELAY_SECONDS)
    start_informers(kube, options.namespaces, children.child_changed, halt)
    try:
        await operator
    finally:
        halt.set()
        resync.cancel()
        posters.shutdown(wait=False)
