"""Where kopf keeps what it knows of each resource between events: in the operator's memory, not on the object.

kopf's default storages write two annotations on every resource: the handlers' progress and the last handled
spec (the "diff base"). Each write is a PATCH of the whole resource, which the API server then sends to every
watch of it (kopf's and the child cache's), and kopf handles the echo. At 1,000 SynthesisJobs that was one of
the operator's requests per job and a share of the API server's time the jobs waited on
(bench/operator_scale.py).

Nothing is lost by keeping them in memory, because every handler is the same level-based reconcile: a
restarted operator knows no diff base, so kopf sees every resource as new and runs its create handler, which
reconciles it exactly as the resume handler would (a running job resumes; its children are found, not
duplicated). Only kopf's wake-up after a delay (a retry, or a wait for backends) still writes an annotation,
the "touch": it is how kopf hears of the object again without a change.

Annotations an older operator wrote are removed the first time a resource is handled, so a diff base left on
an object never goes stale in the cluster. Entries of deleted resources are dropped by `retain`, from the
resync's listing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import kopf

PREFIX = "quorum.dev"
DIFFBASE_KEY = "last-handled-configuration"


def _uid(body: Any) -> str:
    return str(body.get("metadata", {}).get("uid") or "")


class _ByUid:
    """What a storage holds, by resource uid, with when each uid was last stored: the resync drops the uids
    its listing no longer shows (`HandlingMemory.retain`). kopf calls the storages from its handler threads."""

    def __init__(self) -> None:
        self.held: dict[str, Any] = {}
        self.stored_at: dict[str, float] = {}
        self.lock = threading.Lock()

    def _stored(self, uid: str) -> None:
        self.stored_at[uid] = time.monotonic()  # under `lock`, by the caller

    def stale(self, live: set[str], listed_at: float) -> set[str]:
        """Uids missing from a listing made at `listed_at` and not stored since it started."""
        with self.lock:
            return {uid for uid, at in self.stored_at.items() if uid not in live and at < listed_at}

    def forget(self, uids: set[str]) -> None:
        with self.lock:
            for uid in uids:
                self.held.pop(uid, None)
                self.stored_at.pop(uid, None)


class MemoryProgressStorage(_ByUid, kopf.AnnotationsProgressStorage):
    """The handlers' progress (started, retries, delayed until) by resource uid and handler id. Touches and the
    essence cleaning stay the annotation storage's: the touch is kopf's wake-up call."""

    def __init__(self) -> None:
        _ByUid.__init__(self)
        kopf.AnnotationsProgressStorage.__init__(self, prefix=PREFIX)

    def fetch(self, *, key: Any, body: Any) -> kopf.ProgressRecord | None:
        with self.lock:
            record = self.held.get(_uid(body), {}).get(str(key))
        return dict(record) if record is not None else None  # type: ignore[return-value]

    def store(self, *, key: Any, record: kopf.ProgressRecord, body: Any, patch: Any) -> None:
        with self.lock:
            self.held.setdefault(_uid(body), {})[str(key)] = dict(record)
            self._stored(_uid(body))

    def purge(self, *, key: Any, body: Any, patch: Any) -> None:
        """Forget the record, and remove the annotation an older operator may have left (a no-op patch
        otherwise: nothing is written when the object has none)."""
        with self.lock:
            self.held.get(_uid(body), {}).pop(str(key), None)
        super().purge(key=key, body=body, patch=patch)


class MemoryDiffBaseStorage(_ByUid, kopf.AnnotationsDiffBaseStorage):
    """The last handled essence (spec, labels, annotations) by resource uid: what kopf diffs a change against
    to tell an update from nothing new."""

    def __init__(self) -> None:
        _ByUid.__init__(self)
        kopf.AnnotationsDiffBaseStorage.__init__(self, prefix=PREFIX, key=DIFFBASE_KEY)

    def fetch(self, *, body: Any) -> Any:
        with self.lock:
            return self.held.get(_uid(body))

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        with self.lock:
            self.held[_uid(body)] = essence
            self._stored(_uid(body))
        annotations = body.get("metadata", {}).get("annotations") or {}
        for key in self.make_keys(self.key, body=body):
            if key in annotations:  # an older operator's diff base: it would only go stale
                patch.metadata.annotations[key] = None


class HandlingMemory:
    """Both storages, and the pruning of resources that are gone."""

    def __init__(self) -> None:
        self.progress = MemoryProgressStorage()
        self.diffbase = MemoryDiffBaseStorage()

    def retain(self, live: set[str], listed_at: float) -> None:
        """Drop what is held of resources missing from a listing made at `listed_at` (monotonic); a resource
        first handled after the listing started is kept, since the listing could not show it."""
        for storage in (self.progress, self.diffbase):
            storage.forget(storage.stale(live, listed_at))
