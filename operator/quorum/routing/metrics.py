"""Prometheus metrics of one router: requests, decisions, votes, backends. One registry per router instance.

Two families of names:
- `quorum_router_*`: what Quorum does (routing, voting, fallbacks, latency, time to first token, tokens);
- `vllm:*`: the gauges vLLM production-stack's router exports, labelled `server` (the backend's base URL)
  and meaning the same here, so its Grafana dashboards and KEDA examples work unchanged. Windowed figures
  (`vllm:current_qps`, `vllm:avg_latency`, `vllm:avg_decoding_length`) cover the last `WINDOW_SECONDS`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
WINDOW_SECONDS = 60.0


class BackendStats:
    """Live counts and a sliding window of finished calls of one backend, for the production-stack gauges."""

    def __init__(self, model: str, server: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self.server = server
        self.running = 0
        self.waiting = 0
        self.healthy = True
        self._clock = clock
        self._finished: deque[tuple[float, float, int]] = deque()

    def finished(self, latency_s: float, completion_tokens: int) -> None:
        self._finished.append((self._clock(), latency_s, completion_tokens))

    def window(self) -> tuple[float, float, float]:
        """(queries per second, mean latency, mean completion tokens) over the window."""
        horizon = self._clock() - WINDOW_SECONDS
        while self._finished and self._finished[0][0] < horizon:
            self._finished.popleft()
        count = len(self._finished)
        if not count:
            return 0.0, 0.0, 0.0
        latency = sum(f[1] for f in self._finished) / count
        tokens = sum(f[2] for f in self._finished) / count
        return count / WINDOW_SECONDS, latency, tokens


class ProductionStackCollector(Collector):
    """Computes the `vllm:*` gauges at scrape time from each backend's stats (nothing on the request path)."""

    def __init__(self) -> None:
        self.backends: list[BackendStats] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            "running": GaugeMetricFamily("vllm:num_requests_running", "Backend calls in flight.", labels=["server"]),
            "waiting": GaugeMetricFamily(
                "vllm:num_requests_waiting", "Backend calls waiting for a concurrency slot.", labels=["server"]
            ),
            "qps": GaugeMetricFamily("vllm:current_qps", "Finished backend calls per second.", labels=["server"]),
            "latency": GaugeMetricFamily(
                "vllm:avg_latency", "Mean backend call latency in seconds.", labels=["server"]
            ),
            "decoding": GaugeMetricFamily(
                "vllm:avg_decoding_length", "Mean completion tokens per backend call.", labels=["server"]
            ),
            "healthy": GaugeMetricFamily(
                "vllm:healthy_pods_total", "1 when the backend's circuit lets requests through.", labels=["server"]
            ),
        }
        for stats in self.backends:
            qps, latency, decoding = stats.window()
            values = {
                "running": stats.running,
                "waiting": stats.waiting,
                "qps": qps,
                "latency": latency,
                "decoding": decoding,
                "healthy": 1 if stats.healthy else 0,
            }
            for key, family in families.items():
                family.add_metric([stats.server], values[key])
        yield from families.values()


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "quorum_router_requests", "Client requests by strategy and HTTP status.", ["strategy", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "quorum_router_request_duration_seconds",
            "End-to-end latency of client requests, from the body read to the last byte sent.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token_seconds = Histogram(
            "quorum_router_time_to_first_token_seconds",
            "Time until the first answer bytes went to the client (the whole answer when not streamed).",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "quorum_router_prompt_tokens", "Prompt tokens reported by the backends.", ["model"], registry=r
        )
        self.completion_tokens = Counter(
            "quorum_router_completion_tokens", "Completion tokens reported by the backends.", ["model"], registry=r
        )
        self.model_requests = Counter(
            "quorum_router_model_requests", "Successful backend calls per model.", ["model"], registry=r
        )
        self.cluster_requests = Counter(
            "quorum_router_cluster_requests",
            "Client requests per nearest cluster (`none` without a task map or for a named member model).",
            ["cluster"],
            registry=r,
        )
        self.decisions = Counter(
            "quorum_router_route_decisions",
            "Routing decisions by nearest cluster and first model.",
            ["cluster", "model"],
            registry=r,
        )
        self.agreement = Histogram(
            "quorum_router_vote_agreement",
            "Share of voting samples that back the returned answer; only requests where two or more samples voted.",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=r,
        )
        self.routing_seconds = Histogram(
            "quorum_router_routing_seconds",
            "Time to embed a query and choose its models.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_latency = Histogram(
            "quorum_router_backend_latency_seconds",
            "Latency of successful backend calls.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_errors = Counter(
            "quorum_router_backend_errors", "Failed backend calls by reason.", ["model", "reason"], registry=r
        )
        self.fallbacks = Counter(
            "quorum_router_fallbacks", "Requests that fell back to a lower-ranked model.", ["model"], registry=r
        )
        self.backend_available = Gauge(
            "quorum_router_backend_available",
            "1 when the backend's circuit lets requests through.",
            ["model"],
            registry=r,
        )
        self.in_flight = Gauge("quorum_router_requests_in_flight", "Client requests being served.", registry=r)
        self.production_stack = ProductionStackCollector()
        r.register(self.production_stack)

    def backend(self, model: str, server: str) -> BackendStats:
        stats = BackendStats(model, server)
        self.production_stack.backends.append(stats)
        return stats
