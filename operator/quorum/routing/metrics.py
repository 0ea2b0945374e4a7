"""Prometheus metrics of one router: decisions, votes, backends. One registry per router instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "quorum_router_requests", "Client requests by strategy and HTTP status.", ["strategy", "status"], registry=r
        )
        self.decisions = Counter(
            "quorum_router_route_decisions",
            "Routing decisions by nearest cluster and first model.",
            ["cluster", "model"],
            registry=r,
        )
        self.agreement = Histogram(
            "quorum_router_vote_agreement",
            "Share of voting samples that back the returned answer.",
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
