"""Answering one chat request: route (embed → task map → healthy models), sample, vote, fall back.

Robustness rules, each pinned by a test:
- every backend call has its own time-out (`router.backendTimeoutSeconds`) and no retries, so a hanging
  backend costs at most one time-out before the next-ranked model is tried;
- a request has at most `router.maxFanOut` backend calls in flight;
- a circuit breaker per backend keeps routes away from dead models;
- a vote counts when at least `voting.quorum` of the samples came back; otherwise the next-ranked model is
  asked, and when every model falls short the best partial vote is used rather than failing the request.

One serving path: `quorum router serve` and calibration's held-out evaluation both call `RouterEngine.answer`,
so the `routedAccuracy` an artifact publishes is the accuracy of this code at `voting.samples`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quorum.api.ensemble import EnsembleRouterSpec, VotingStrategy
from quorum.llm import CallFailed, ModelEndpoint
from quorum.llm.http1 import BackendConnectionError, Response
from quorum.llm.slots import Slots
from quorum.routing.artifact import Artifact
from quorum.routing.backend import Backend, BackendAnswer
from quorum.routing.breaker import CircuitBreaker
from quorum.routing.embedding import EmbeddingBatcher, conversation_text
from quorum.routing.metrics import RouterMetrics
from quorum.routing.strategy import decide, make_samples
from quorum.routing.structured import StructuredRule, structured_rule
from quorum.routing.tasks import TaskRule
from quorum.routing.vote import Decision, Sample

CLIENT_ERROR_STATUSES = frozenset(range(400, 500)) - {408, 409, 425, 429}
ROUTER_FIELDS = frozenset({"quorum", "n", "stream", "stream_options"})
"""Request fields the router acts on itself; every other field reaches the backend unchanged."""


class NoBackendAvailable(Exception):
    """No model could serve the request (all unhealthy, failing or timing out): HTTP 503."""


class BackendRejected(Exception):
    """Every backend refused the request itself (HTTP 4xx such as a context overflow): passed on as 400."""


@dataclass(frozen=True)
class ChatRequest:
    """The parts of an OpenAI request the router acts on (checked by `quorum.routing.wire`); every other field
    (max_tokens, stop, seed, tools, ...) travels in `body` to the backend untouched."""

    messages: list[dict[str, Any]]
    model: str | None = None
    temperature: float | None = None
    n: int = 1
    task: str | None = None
    """Task name that selects the answer extractor; by default the routed cluster's dominant task."""
    request_id: str | None = None
    """Derives the per-sample seeds when the client sent no `seed` (a fresh id per request by default)."""
    body: dict[str, Any] = field(default_factory=dict)
    """The client's request as sent (validated); forwarded to the backend with the model name replaced."""
    endpoint: str = "chat/completions"
    """`chat/completions` or `completions` (then `messages` holds the prompt as one user turn, for routing)."""

    @property
    def seed(self) -> int | None:
        seed = self.body.get("seed")
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else None

    def backend_body(
        self, model: str, temperature: float | None, *, seed: int | None = None, stream: bool = False
    ) -> dict[str, Any]:
        """The body one backend call sends: the client's fields, this backend's model name, one sample, and
        that sample's own seed when voting (see `sample_seeds`)."""
        body = {k: v for k, v in self.body.items() if k not in ROUTER_FIELDS}
        body["model"] = model
        if temperature is not None:
            body["temperature"] = temperature
        if seed is not None:
            body["seed"] = seed
        if stream:
            body["stream"] = True
            if "stream_options" in self.body:
                body["stream_options"] = self.body["stream_options"]
        return body


SEED_RANGE = 2**31
"""Per-sample seeds stay below 2³¹: every OpenAI-compatible server (vLLM, llama.cpp) takes them."""


def sample_seeds(base: int | str, model: str, count: int) -> list[int]:
    """`count` distinct seeds for one model's samples, derived from the client's seed (or a request id).

    Why: passing the client's seed unchanged to n sample calls makes a seeded backend return one answer n
    times, and self-consistency then votes over copies. Derived seeds keep a seeded request reproducible
    while its samples stay independent."""
    seeds: list[int] = []
    counter = 0
    while len(seeds) < count:
        digest = hashlib.sha256(f"{base}|{model}|{counter}".encode()).digest()
        seed = int.from_bytes(digest[:8], "big") % SEED_RANGE
        if seed not in seeds:
            seeds.append(seed)
        counter += 1
    return seeds


@dataclass
class RoutedAnswer:
    """What the server needs to build the response and its audit trail."""

    choices: list[dict[str, Any]]
    """The backends' choices as sent, one per returned choice; the first is the vote's chosen sample."""
    strategy: str
    models: list[str]
    cluster: int | None
    decision: Decision | None
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    samples_requested: int = 0
    samples_received: int = 0
    fallbacks: list[str] = field(default_factory=list)
    task: str | None = None
    rule: str = "single"
    """Which rule chose the answer (see `_rule_applied` and `quorum.routing.structured`)."""


@dataclass
class Forwarded:
    """A pass-through call: the model that answers, its cluster, and the open backend response to relay."""

    model: str
    cluster: int | None
    backend: Backend
    response: Response


@dataclass
class _ModelSamples:
    model: str
    completions: list[BackendAnswer]
    errors: list[CallFailed]


class RouterEngine:
    """Routing and voting for one EnsembleRouter; owns one HTTP connection pool for all backends."""

    def __init__(
        self,
        name: str,
        spec: EnsembleRouterSpec,
        endpoints: Sequence[ModelEndpoint],
        *,
        artifact: Artifact | None = None,
        batcher: EmbeddingBatcher | None = None,
        metrics: RouterMetrics | None = None,
        require_artifact: bool = True,
    ) -> None:
        self.name = name
        self.spec = spec
        self.artifact = artifact
        self.batcher = batcher
        self.metrics = metrics or RouterMetrics()
        self.require_artifact = require_artifact
        """Readiness waits for a task map when the pool has several models (spec order is a stopgap only)."""
        settings = spec.router
        self.models = [e.name for e in endpoints]
        self.backends = {e.name: Backend(e, settings.backend_timeout_seconds, self.metrics) for e in endpoints}
        self.breakers = {
            e.name: CircuitBreaker(settings.circuit_breaker.failure_threshold, settings.circuit_breaker.reset_seconds)
            for e in endpoints
        }
        self._members = [(m, self.breakers[m], self.backends[m]) for m in self.models]
        self._available = {m: self.metrics.backend_available.labels(m) for m in self.models}
        for gauge in self._available.values():
            gauge.set(1)  # every backend starts healthy (`BackendStats.healthy`)
        self._no_cluster = self.metrics.cluster_requests.labels("none")
        self._requests = Slots(settings.max_concurrency)
        self.rules = {t.name: TaskRule.from_spec(t) for t in spec.calibration.tasks}
        if artifact is not None:
            for task, description in artifact.tasks.items():
                self.rules.setdefault(task, TaskRule.described(task, description))

    async def aclose(self) -> None:
        for backend in self.backends.values():
            backend.pool.close()
        if self.batcher is not None:
            await self.batcher.aclose()

    def healthy(self) -> list[str]:
        """Models whose circuit lets a request through; the availability gauges follow (written on change
        only: this runs on every request)."""
        available = []
        for model, breaker, backend in self._members:
            up = breaker.available()
            if up:
                available.append(model)
            if up is not backend.stats.healthy:
                backend.stats.healthy = up
                self._available[model].set(1 if up else 0)
        return available

    def _routes_by_embedding(self, request: ChatRequest, vector: np.ndarray | None) -> bool:
        """A task map routes the pool; for a pinned model it still finds the task (and so the extractor),
        which costs one embedding unless the request names its task."""
        if self.artifact is None or (vector is None and self.batcher is None):
            return False
        if request.model in self.backends:
            return request.task is None
        return len(self.models) > 1

    async def route(self, request: ChatRequest, vector: np.ndarray | None = None) -> tuple[list[str], int | None]:
        """Healthy models best first for this request, and the nearest cluster (None without a task map).

        `vector` is the query's embedding when the caller has it already (calibration's evaluation)."""
        healthy = self.healthy()
        pinned = request.model in self.backends
        if pinned and request.model not in healthy:
            raise NoBackendAvailable(f"model {request.model!r} is unavailable (circuit open)")
        if not healthy:
            raise NoBackendAvailable("no backend is available: every model's circuit is open")
        order, cluster = healthy, None
        if self._routes_by_embedding(request, vector) and self.artifact is not None:
            started = time.perf_counter()
            if vector is None and self.batcher is not None:
                vector = await self.batcher.embed(conversation_text(request.messages))
            route = self.artifact.task_map.route(
                vector,
                blended=self.spec.routing.clusters_blended,
                beta=self.spec.routing.beta,
                select=len(healthy),
                available=healthy,
            )
            self.metrics.routing_seconds.observe(time.perf_counter() - started)
            order, cluster = route.models, route.cluster
        (self._no_cluster if cluster is None else self.metrics.cluster_requests.labels(str(cluster))).inc()
        return ([request.model] if pinned else order), cluster

    def selected_count(self, request: ChatRequest, strategy: VotingStrategy) -> int:
        """How many models vote: `routing.modelsSelected` (at least 2 for model-switch, 1 for a pinned model
        or strategy single). Healthy models ranked below them are fallbacks only."""
        if request.model in self.backends or strategy is VotingStrategy.SINGLE:
            return 1
        floor = 2 if strategy is VotingStrategy.MODEL_SWITCH else 1
        return max(self.spec.routing.models_selected, floor)

    def rule(self, request: ChatRequest, cluster: int | None) -> TaskRule:
        """Tool calls and structured outputs vote on their value whatever the task; otherwise the task's rule."""
        structured = structured_rule(request.body)
        if structured is not None:
            return structured
        task = request.task
        if task is None and cluster is not None and self.artifact is not None:
            task = self.artifact.task_map.cluster_tasks[cluster]
        if task and task in self.rules:
            return self.rules[task]
        return TaskRule(name=task or "open")

    def _sample_count(self, request: ChatRequest, strategy: VotingStrategy) -> int:
        if strategy is VotingStrategy.SINGLE or request.temperature == 0:
            return max(1, request.n)  # greedy samples are identical: voting is moot
        return max(self.spec.voting.samples, request.n)

    def passes_through(self, request: ChatRequest) -> bool:
        """One sample from one model and no vote: the body is forwarded and the answer relayed as sent."""
        strategy = self.spec.voting.strategy
        if self._sample_count(request, strategy) != 1:
            return False
        return strategy is VotingStrategy.SINGLE or self.selected_count(request, strategy) == 1

    async def answer(self, request: ChatRequest, *, vector: np.ndarray | None = None) -> RoutedAnswer:
        """The one serving path (the HTTP router and calibration's held-out evaluation both call it)."""
        async with self._requests:
            self.metrics.in_flight.inc()
            try:
                return await self._answer(request, vector)
            finally:
                self.metrics.in_flight.dec()

    async def _answer(self, request: ChatRequest, vector: np.ndarray | None) -> RoutedAnswer:
        order, cluster = await self.route(request, vector)
        strategy = self.spec.voting.strategy
        wanted = min(self.selected_count(request, strategy), len(order))
        if wanted == 1 and strategy is VotingStrategy.MODEL_SWITCH:
            strategy = VotingStrategy.SELF_CONSISTENCY
        rule = self.rule(request, cluster)
        count = self._sample_count(request, strategy)
        needed = max(1, int(np.ceil(self.spec.voting.quorum * count)))
        fan_out = asyncio.Semaphore(self.spec.router.max_fan_out)
        base = request.seed if request.seed is not None else (request.request_id or uuid.uuid4().hex)
        gathered: list[_ModelSamples] = []
        fallbacks: list[str] = []
        rejections: list[CallFailed] = []
        remaining = list(order)
        while remaining and len([g for g in gathered if len(g.completions) >= needed]) < wanted:
            full_so_far = len([g for g in gathered if len(g.completions) >= needed])
            # model-switch asks the runner-up only when the first model's majority is weak
            size = 1 if strategy is VotingStrategy.MODEL_SWITCH and full_so_far == 0 else wanted - full_so_far
            batch, remaining = remaining[:size], remaining[size:]
            results = await asyncio.gather(
                *(self._sample(m, request, sample_seeds(base, m, count), fan_out) for m in batch)
            )
            for model, result in zip(batch, results, strict=True):
                rejections.extend(e for e in result.errors if e.status in CLIENT_ERROR_STATUSES)
                if len(result.completions) >= needed:
                    gathered.append(result)
                else:
                    fallbacks.append(model)
                    self.metrics.fallbacks.labels(model).inc()
                    if result.completions:
                        gathered.append(result)  # kept as a last resort, ranked after full votes
            full = [g for g in gathered if len(g.completions) >= needed]
            if strategy is VotingStrategy.MODEL_SWITCH and len(full) == 1 and self._first_stands(full[0], rule):
                break
        full = [g for g in gathered if len(g.completions) >= needed]
        chosen = full or sorted(gathered, key=lambda g: -len(g.completions))[:1]
        if not chosen:
            if rejections and len(rejections) >= count:
                raise BackendRejected(rejections[0].message)
            raise NoBackendAvailable(f"no backend answered the request (tried {', '.join(order)})")
        return self._finish(request, strategy, rule, cluster, chosen, count, fallbacks)

    def _first_stands(self, result: _ModelSamples, rule: TaskRule) -> bool:
        samples = make_samples(result.model, 0, _vote_texts(result.completions, rule), rule)
        decision = decide(VotingStrategy.SELF_CONSISTENCY, [samples], rule)
        share = decision.counts.get(decision.answer, 0) / len(samples) if decision.answer else 0.0
        return share >= self.spec.voting.switch_threshold or not rule.votes_on_strings

    def _finish(
        self,
        request: ChatRequest,
        strategy: VotingStrategy,
        rule: TaskRule,
        cluster: int | None,
        chosen: list[_ModelSamples],
        count: int,
        fallbacks: list[str],
    ) -> RoutedAnswer:
        per_model = [
            make_samples(g.model, rank, _vote_texts(g.completions, rule), rule) for rank, g in enumerate(chosen)
        ]
        replies = {(g.model, i): c.choice for g in chosen for i, c in enumerate(g.completions)}
        embed = None
        if not rule.votes_on_strings and self.batcher is not None:
            embed = self.batcher.embedder.encode
        if strategy is VotingStrategy.SINGLE:
            decision = Decision(chosen=per_model[0][0], answer=None)
        else:
            decision = decide(
                strategy, per_model, rule, switch_threshold=self.spec.voting.switch_threshold, embed=embed
            )
            if decision.answer is not None and decision.voters >= 2:  # one sample, or no voting key: no vote
                self.metrics.agreement.observe(decision.agreement)
        ordered = _choice_order(decision, [s for samples in per_model for s in samples], request.n)
        models = [g.model for g in chosen]
        self.metrics.decisions.labels(str(cluster) if cluster is not None else "none", models[0]).inc()
        usage = {
            "prompt_tokens": sum(c.prompt_tokens for g in chosen for c in g.completions),
            "completion_tokens": sum(c.completion_tokens for g in chosen for c in g.completions),
        }
        return RoutedAnswer(
            choices=[replies[(s.model, s.index)] for s in ordered],
            strategy=strategy.value,
            models=models,
            cluster=cluster,
            decision=decision,
            usage=usage,
            samples_requested=count * len(chosen),
            samples_received=sum(len(g.completions) for g in chosen),
            fallbacks=fallbacks,
            task=None if isinstance(rule, StructuredRule) else rule.name,
            rule=_rule_applied(strategy, rule, embed is not None, decision),
        )

    async def _sample(
        self, model: str, request: ChatRequest, seeds: list[int], fan_out: asyncio.Semaphore
    ) -> _ModelSamples:
        """One single-sample call per seed, in parallel (a failed sample then costs one vote, not all of them)."""
        backend = self.backends[model]
        breaker = self.breakers[model]
        temperature = request.temperature if request.temperature is not None else self.spec.voting.temperature

        async def one(seed: int) -> BackendAnswer | CallFailed:
            async with fan_out:
                if not breaker.acquire():
                    return CallFailed(model, "CircuitOpen", "circuit open", 0)
                try:
                    body = request.backend_body(backend.endpoint.model, temperature, seed=seed)
                    completion = await backend.call(request.endpoint, body)
                except CallFailed as error:
                    if error.status in CLIENT_ERROR_STATUSES:
                        breaker.release()  # the request's fault, not the backend's
                    else:
                        breaker.record_failure()
                    backend.failed(error)
                    return error
                except BaseException:
                    breaker.release()
                    raise
                breaker.record_success()
                return completion

        results = await asyncio.gather(*(one(seed) for seed in seeds))
        return _ModelSamples(
            model=model,
            completions=[r for r in results if isinstance(r, BackendAnswer)],
            errors=[r for r in results if isinstance(r, CallFailed)],
        )

    @asynccontextmanager
    async def forward(
        self, request: ChatRequest, data: Callable[[ModelEndpoint], bytes], *, stream: bool
    ) -> AsyncIterator[Forwarded]:
        """Pass-through: the first healthy routed model that answers 200 is relayed (its body not parsed here).

        Falls back to the next model on a refused connection, a time-out or a 5xx; a 4xx is the request's fault
        and raises `BackendRejected`. `data(endpoint)` gives the body bytes for that backend."""
        async with self._requests:
            self.metrics.in_flight.inc()
            try:
                order, cluster = await self.route(request)
                for model in order:
                    forwarded = await self._open(model, cluster, request.endpoint, data, stream)
                    if forwarded is None:
                        continue
                    try:
                        yield forwarded
                        return
                    finally:
                        forwarded.backend.close(forwarded.response)
                raise NoBackendAvailable(f"no backend answered the request (tried {', '.join(order)})")
            finally:
                self.metrics.in_flight.dec()

    async def _open(
        self, model: str, cluster: int | None, path: str, data: Callable[[ModelEndpoint], bytes], stream: bool
    ) -> Forwarded | None:
        backend, breaker = self.backends[model], self.breakers[model]
        if not breaker.acquire():
            return None
        try:
            response = await backend.open(path, data(backend.endpoint), stream=stream)
        except CallFailed as error:
            breaker.record_failure()
            backend.failed(error)
            self.metrics.fallbacks.labels(model).inc()
            return None
        except BaseException:
            breaker.release()
            raise
        if response.status == 200:
            breaker.record_success()
            return Forwarded(model, cluster, backend, response)
        try:
            text = (await response.read())[:500].decode("utf-8", "replace")
        except (BackendConnectionError, TimeoutError):
            text = ""
        finally:
            backend.close(response)
        error = CallFailed(model, f"HTTP{response.status}", text, 1, status=response.status)
        backend.failed(error)
        if response.status in CLIENT_ERROR_STATUSES:
            breaker.release()
            raise BackendRejected(text)
        breaker.record_failure()
        self.metrics.fallbacks.labels(model).inc()
        return None


def _vote_texts(completions: Sequence[BackendAnswer], rule: TaskRule) -> list[str]:
    if isinstance(rule, StructuredRule):
        return [rule.vote_text(c.choice, c.text) for c in completions]
    return [c.text for c in completions]


def _rule_applied(strategy: VotingStrategy, rule: TaskRule, embedded: bool, decision: Decision) -> str:
    """`single` (no vote), `tool-calls` / `json-value` / `majority` (a vote on keys), `most-central` (open
    answers by embedding), or `first-sample` (nobody gave a voting key: the top model's first sample)."""
    if strategy is VotingStrategy.SINGLE:
        return "single"
    if not rule.votes_on_strings and embedded:
        return "most-central"
    if decision.answer is None:
        return "first-sample"
    return rule.name if isinstance(rule, StructuredRule) else "majority"


def _choice_order(decision: Decision, samples: list[Sample], n: int) -> list[Sample]:
    """The chosen sample, then the best sample of each runner-up answer, then the rest by (rank, index)."""
    ordered = [decision.chosen]
    by_answer = {}
    for sample in sorted(samples, key=lambda s: s.order):
        if sample.answer and sample.answer not in by_answer:
            by_answer[sample.answer] = sample
    for answer in decision.counts:
        sample = by_answer.get(answer)
        if sample is not None and sample not in ordered:
            ordered.append(sample)
    ordered.extend(s for s in sorted(samples, key=lambda s: s.order) if s not in ordered)
    return ordered[:n]
