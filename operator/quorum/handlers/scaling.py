"""The shared Model's two decisions, as pure functions: how many vLLM replicas to run (queue depth and
consumers → replicas), and how its `maxConcurrency` is split between consumers. No I/O: the Model's
reconcile scrapes `/metrics` and lists consumers, these decide.

No HPA on a Prometheus adapter or KEDA here (neither is assumed installed): the operator is the scaler, and
it owns `spec.replicas` of the Deployment it created (never of anything a user or GitOps tool applies).
"""

from __future__ import annotations

import math
import re

from quorum.api.model import ModelReplicas

WAITING_METRIC = "vllm:num_requests_waiting"
_SAMPLE = re.compile(r"^vllm:num_requests_waiting(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)")


def waiting_requests(metrics_text: str) -> int:
    """`vllm:num_requests_waiting` summed over the samples of one replica's Prometheus text exposition; an
    exposition without the metric counts as no queue."""
    total = 0.0
    for line in metrics_text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match:
            value = float(match.group(2))
            if math.isfinite(value) and value > 0:
                total += value
    return round(total)


def desired_replicas(
    bounds: ModelReplicas, current: int, waiting: int | None, consumers: int, idle_for: float | None
) -> int:
    """Replicas to run now.

    - With consumers: at least one (and `min`), and more while requests queue: when the waiting requests
      exceed `targetWaitingPerReplica` per current replica, `ceil(waiting / target)`, at most `max`. The
      queue draining does not scale down at once (a burst would bounce the GPUs); the consumers going away
      does, after `idleSeconds`.
    - Without consumers: the current count until the Model has been idle for `idleSeconds`, then `min`.
    - `waiting` None (no replica answered the scrape) changes nothing.
    """
    current = max(0, min(current, bounds.max))
    if consumers == 0:
        if idle_for is not None and idle_for >= bounds.idle_seconds:
            return bounds.min
        return max(current, bounds.min)
    floor = max(bounds.min, 1)
    want = max(current, floor)
    if waiting is not None and waiting > bounds.target_waiting_per_replica * max(current, 1):
        want = max(want, math.ceil(waiting / bounds.target_waiting_per_replica))
    return min(want, bounds.max)


def split_budget(max_concurrency: int, requested: list[int]) -> list[int]:
    """Each consumer's share of a Model's `maxConcurrency`: what it asked for when all requests fit; else in
    proportion to its request, rounded down, at least 1 each (so a consumer is never starved to zero), and
    the leftovers of rounding to the largest requests first. The shares never sum above the budget unless
    there are more consumers than the budget (one each then)."""
    if sum(requested) <= max_concurrency:
        return list(requested)
    total = sum(requested)
    shares = [max(1, (r * max_concurrency) // total) for r in requested]
    left = max_concurrency - sum(shares)
    for index in sorted(range(len(requested)), key=lambda i: -requested[i]):
        if left <= 0:
            break
        if shares[index] < requested[index]:
            shares[index] += 1
            left -= 1
    return shares


def per_pod(share: int, pods: int) -> int:
    """A consumer's share as the per-pod concurrency its pods are configured with (at least 1)."""
    return max(1, share // max(1, pods))
