"""The operator's Prometheus metrics, served by `quorum operator run --metrics-port` (the chart's metrics
Service): reconciles per kind and result, errors per kind and class, reconcile durations, API requests per
method, and the resources per phase (refreshed by every resync)."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("quorum_operator_reconciles_total", "Reconciles, by kind and result.", ["kind", "result"])
ERRORS = Counter(
    "quorum_operator_reconcile_errors_total", "Reconciles that ended in an error, by kind and class.", ["kind", "error"]
)
DURATION = Histogram(
    "quorum_operator_reconcile_duration_seconds",
    "Time one reconcile took, by kind.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
API_REQUESTS = Counter(
    "quorum_operator_api_requests_total",
    "Requests the reconciles and the child cache sent to the API server (kopf's own not included), by method.",
    ["method"],
)
RESOURCES = Gauge("quorum_operator_resources", "Resources the operator watches, by kind and phase.", ["kind", "phase"])


def record_phases(kind: str, items: list[dict[str, Any]]) -> None:
    """Set the per-phase gauge of `kind` from a full listing (phases that emptied drop to 0)."""
    tally = Tally(((item.get("status") or {}).get("phase") or "Unknown") for item in items)
    seen = _phases_seen.setdefault(kind, set())
    seen.update(tally)
    for phase in seen:
        RESOURCES.labels(kind, phase).set(tally.get(phase, 0))


_phases_seen: dict[str, set[str]] = {}
