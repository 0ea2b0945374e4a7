"""Prometheus metrics of one router: requests, decisions, votes, backends. One registry per router instance.

Two families of names:
- `quorum_router_*`: what Quorum does (routing, voting, fallbacks, latency, time to first token, tokens);
- `vllm:*`: the gauges vLLM production-stack's router exports, labelled `server` (the backend's base URL)
  and meaning the same here, so its Grafana dashboards and KEDA examples work unchanged. Windowed figures
  (`vllm:current_qps`, `vllm:avg_latency`, `vllm:avg_decoding_length`) cover the last `WINDOW_SECONDS`.

With several worker processes (`quorum router serve --workers N`) every worker writes its values to files in
one directory (prometheus_client's multiprocess mode) and a scrape of any worker merges them all: counters and
histograms add up, `quorum_router_requests_in_flight` sums, and `quorum_router_backend_available` is the
minimum over workers (each has its own circuit breakers). The `vllm:*` gauges are merged from figures each
worker publishes every `PUBLISH_SECONDS` (and the scraped worker just before answering).
"""

from __future__ import annotations

import glob
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
WINDOW_SECONDS = 60.0
PUBLISH_SECONDS = 1.0
WORKER_FIGURES = "quorum_router_worker_backend_figures"
"""Internal gauges the workers publish their `BackendStats` through; merged into `vllm:*`, never exported."""
WORKER_HEALTHY = "quorum_router_worker_backend_healthy"
SUMMED = ("running", "waiting", "calls", "latency_sum", "tokens_sum")


def share_across_processes(directory: Path) -> None:
    """prometheus_client's multiprocess mode for this process: values live in files under `directory`, which
    every worker of one router shares (it must start empty). Call it in each worker before any metric exists."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue()


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

    def window_sums(self) -> tuple[int, float, int]:
        """(finished calls, their summed latency, their summed completion tokens) over the window."""
        horizon = self._clock() - WINDOW_SECONDS
        while self._finished and self._finished[0][0] < horizon:
            self._finished.popleft()
        return len(self._finished), sum(f[1] for f in self._finished), sum(f[2] for f in self._finished)

    def figures(self) -> dict[str, float]:
        """What the `vllm:*` gauges are computed from; sums, so that several workers' figures add up."""
        calls, latency, tokens = self.window_sums()
        return {
            "running": self.running,
            "waiting": self.waiting,
            "calls": calls,
            "latency_sum": latency,
            "tokens_sum": tokens,
        }


def production_stack_families(figures: dict[str, dict[str, float]]) -> list[GaugeMetricFamily]:
    """The `vllm:*` gauges from each server's summed figures (`BackendStats.figures` plus `healthy`)."""
    families = {
        "running": GaugeMetricFamily("vllm:num_requests_running", "Backend calls in flight.", labels=["server"]),
        "waiting": GaugeMetricFamily(
            "vllm:num_requests_waiting", "Backend calls waiting for a concurrency slot.", labels=["server"]
        ),
        "qps": GaugeMetricFamily("vllm:current_qps", "Finished backend calls per second.", labels=["server"]),
        "latency": GaugeMetricFamily("vllm:avg_latency", "Mean backend call latency in seconds.", labels=["server"]),
        "decoding": GaugeMetricFamily(
            "vllm:avg_decoding_length", "Mean completion tokens per backend call.", labels=["server"]
        ),
        "healthy": GaugeMetricFamily(
            "vllm:healthy_pods_total", "1 when the backend's circuit lets requests through.", labels=["server"]
        ),
    }
    for server, f in figures.items():
        calls = f.get("calls", 0)
        derived = {
            "running": f.get("running", 0),
            "waiting": f.get("waiting", 0),
            "qps": calls / WINDOW_SECONDS,
            "latency": f.get("latency_sum", 0) / calls if calls else 0.0,
            "decoding": f.get("tokens_sum", 0) / calls if calls else 0.0,
            "healthy": f.get("healthy", 1),
        }
        for key, family in families.items():
            family.add_metric([server], derived[key])
    return list(families.values())


class ProductionStackCollector(Collector):
    """Computes the `vllm:*` gauges at scrape time from each backend's stats (nothing on the request path)."""

    def __init__(self) -> None:
        self.backends: list[BackendStats] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = {s.server: {**s.figures(), "healthy": 1 if s.healthy else 0} for s in self.backends}
        yield from production_stack_families(figures)


class MergedWorkersCollector(Collector):
    """Every worker's metrics from the shared directory, with the internal per-worker backend figures turned
    into the `vllm:*` gauges (summed; `healthy` is the minimum over workers)."""

    def __init__(self, directory: str, servers: Callable[[], list[str]]) -> None:
        self.directory = directory
        self.servers = servers

    def collect(self) -> Iterator[Metric]:
        figures: dict[str, dict[str, float]] = {server: {} for server in self.servers()}
        for metric in MultiProcessCollector.merge(glob.glob(os.path.join(self.directory, "*.db"))):
            if metric.name not in (WORKER_FIGURES, WORKER_HEALTHY):
                yield metric
                continue
            for sample in metric.samples:
                key = sample.labels.get("figure", "healthy")
                figures.setdefault(sample.labels["server"], {})[key] = sample.value
        yield from production_stack_families(figures)


class RouterMetrics:
    """`registry` is what `/metrics` exposes. `shared`: this process is one of several workers (see
    `share_across_processes`); its metrics then live in a registry of their own and `registry` merges the
    files of all workers."""

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        self.registry = CollectorRegistry()
        r = CollectorRegistry() if shared else self.registry
        self._define_requests(r)
        self._define_calls(r)
        self.production_stack = ProductionStackCollector()
        if not shared:
            r.register(self.production_stack)
            return
        self._merge_workers(r)

    def _merge_workers(self, r: CollectorRegistry) -> None:
        """A worker among several: its backend figures go to the shared files as internal gauges, and
        `registry` serves every worker's metrics merged, with the `vllm:*` gauges computed from all figures."""
        self._figures = Gauge(
            WORKER_FIGURES, "Internal.", ["server", "figure"], registry=r, multiprocess_mode="livesum"
        )
        self._healthy = Gauge(WORKER_HEALTHY, "Internal.", ["server"], registry=r, multiprocess_mode="livemin")
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        servers = self.production_stack.backends
        self.registry.register(MergedWorkersCollector(directory, lambda: [s.server for s in servers]))

    def _define_requests(self, r: CollectorRegistry) -> None:
        """What clients asked and how they were routed."""
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

    def _define_calls(self, r: CollectorRegistry) -> None:
        """Votes, routing time and the backend calls behind the answers."""
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
            multiprocess_mode="livemin",
        )
        self.in_flight = Gauge(
            "quorum_router_requests_in_flight", "Client requests being served.", registry=r, multiprocess_mode="livesum"
        )

    def backend(self, model: str, server: str) -> BackendStats:
        stats = BackendStats(model, server)
        self.production_stack.backends.append(stats)
        return stats

    def publish(self) -> None:
        """A worker's backend figures to the shared files (a no-op with one process, whose scrape reads them)."""
        if not self.shared:
            return
        for stats in self.production_stack.backends:
            for figure, value in stats.figures().items():
                self._figures.labels(stats.server, figure).set(value)
            self._healthy.labels(stats.server).set(1 if stats.healthy else 0)
