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


class MemoryProgressStorage(kopf.AnnotationsProgressStorage):
    """The handlers' progress (started, retries, delayed until) by resource uid and handler id. Touches and the
    essence cleaning stay the annotation storage's: the touch is kopf's wake-up call."""

    def __init__(self) -> None:
        super().__init__(prefix=PREFIX)
        self.records: dict[tuple[str, str], kopf.ProgressRecord] = {}
        self.stored_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def fetch(self, *, key: Any, body: Any) -> kopf.ProgressRecord | None:
        with self._lock:
            record = self.records.get((_uid(body), str(key)))
        return dict(record) if record is not None else None  # type: ignore[return-value]

    def store(self, *, key: Any, record: kopf.ProgressRecord, body: Any, patch: Any) -> None:
        with self._lock:
            self.records[(_uid(body), str(key))] = dict(record)  # type: ignore[assignment]
            self.stored_at[_uid(body)] = time.monotonic()

    def purge(self, *, key: Any, body: Any, patch: Any) -> None:
        """Forget the record, and remove the annotation an older operator may have left (a no-op patch
        otherwise: nothing is written when the object has none)."""
        with self._lock:
            self.records.pop((_uid(body), str(key)), None)
        super().purge(key=key, body=body, patch=patch)

    def forget(self, uids: set[str]) -> None:
        with self._lock:
            self.records = {k: v for k, v in self.records.items() if k[0] not in uids}
            for uid in uids:
                self.stored_at.pop(uid, None)


class MemoryDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """The last handled essence (spec, labels, annotations) by resource uid: what kopf diffs a change against
    to tell an update from nothing new."""

    def __init__(self) -> None:
        super().__init__(prefix=PREFIX, key=DIFFBASE_KEY)
        self.essences: dict[str, Any] = {}
        self.stored_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def fetch(self, *, body: Any) -> Any:
        with self._lock:
            return self.essences.get(_uid(body))

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        with self._lock:
            self.essences[_uid(body)] = essence
            self.stored_at[_uid(body)] = time.monotonic()
        annotations = body.get("metadata", {}).get("annotations") or {}
        for key in self.make_keys(self.key, body=body):
            if key in annotations:  # an older operator's diff base: it would only go stale
                patch.metadata.annotations[key] = None

    def forget(self, uids: set[str]) -> None:
        with self._lock:
            for uid in uids:
                self.essences.pop(uid, None)
                self.stored_at.pop(uid, None)


class HandlingMemory:
    """Both storages, and the pruning of resources that are gone."""

    def __init__(self) -> None:
        self.progress = MemoryProgressStorage()
        self.diffbase = MemoryDiffBaseStorage()

    def retain(self, live: set[str], listed_at: float) -> None:
        """Drop what is held of resources missing from a listing made at `listed_at` (monotonic); a resource
        first handled after the listing started is kept, since the listing could not show it."""
        for storage in (self.progress, self.diffbase):
            with storage._lock:
                gone = {uid for uid, at in storage.stored_at.items() if uid not in live and at < listed_at}
            storage.forget(gone)
