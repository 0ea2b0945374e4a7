"""Model: one shared vLLM backend that SynthesisJobs and EnsembleRouters reference by `models[].modelRef`.

Inline models (`models[].model`) give every consumer its own GPU Deployment; a Model is deployed once, scaled
on vLLM's queue depth while consumers need it, and to `replicas.min` (zero allowed) once none has for
`replicas.idleSeconds`. Consumers never delete it.
"""

from __future__ import annotations

from pydantic import Field

from quorum.api.base import ApiModel, CrossFieldRule
from quorum.api.common import Condition, LastError, ModelCache, ModelResources, VLLMSettings


class ModelReplicas(ApiModel):
    """How many vLLM replicas run: between `min` and `max`, more while requests queue, `min` when idle."""

    min: int = Field(default=0, ge=0, le=64)
    """Replicas kept with no consumer; 0 frees the GPUs once the Model has been idle for `idleSeconds`."""
    max: int = Field(default=1, ge=1, le=64)
    """Upper bound of the queue-depth scaler."""
    idle_seconds: int = Field(default=900, ge=0, le=604800)
    """How long the Model keeps its replicas after its last consumer went away (or finished)."""
    target_waiting_per_replica: int = Field(default=8, ge=1, le=4096)
    """Scale up when vLLM's `vllm:num_requests_waiting`, summed over the ready replicas, exceeds this many
    per replica: to `ceil(waiting / targetWaitingPerReplica)` replicas, at most `max`."""

    cross_field_rules = (
        CrossFieldRule(
            cel="self.min <= self.max",
            message="must not exceed max",
            holds=lambda r: r.min <= r.max,
            field=".min",
        ),
    )


class ModelSpec(ApiModel):
    """A vLLM server shared by every SynthesisJob and EnsembleRouter that references it."""

    model: str = Field(min_length=1, max_length=512)
    """Model for vLLM to serve (Hugging Face id or a path in the model cache); also the model name consumers
    send in their requests."""
    vllm: VLLMSettings = Field(default_factory=VLLMSettings)
    """vLLM server settings."""
    resources: ModelResources = Field(default_factory=ModelResources)
    """GPU and scheduling settings of one replica."""
    model_cache: ModelCache | None = None
    """PVC with model weights, mounted read-only into every replica."""
    replicas: ModelReplicas = Field(default_factory=ModelReplicas)
    """Replica bounds, queue-depth scaling and scale to zero."""
    max_concurrency: int = Field(default=128, ge=1, le=100000)
    """In-flight requests all consumers together send to this Model at most; split between them in proportion
    to what each asks for (see README, "Shared models")."""

    cross_field_rules = (
        CrossFieldRule(
            cel="self.vllm.tensorParallelSize <= self.resources.gpus",
            message="exceeds the GPUs requested per replica (resources.gpus)",
            holds=lambda s: s.vllm.tensor_parallel_size <= s.resources.gpus,
            field=".vllm.tensorParallelSize",
        ),
    )


class ModelConsumer(ApiModel):
    """A resource that references this Model and needs it now, with its share of `maxConcurrency`."""

    kind: str
    """`SynthesisJob` or `EnsembleRouter`."""
    name: str
    """Its name, in the Model's namespace."""
    requested: int = 0
    """In-flight requests it asks for (all its pods together)."""
    granted: int = 0
    """In-flight requests it may send (all its pods together)."""


class ModelStatus(ApiModel):
    """Readiness, endpoint and consumers of a Model."""

    observed_generation: int | None = None
    """The `metadata.generation` last reconciled."""
    phase: str = ""
    """Convenience summary: Ready, Scaling, ScaledToZero or Stalled; the conditions are the API."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Stalled and Reconciling."""
    ready_replicas: int = 0
    """vLLM replicas ready to serve."""
    replicas: int = 0
    """Desired vLLM replicas (what the scaler decided)."""
    url: str = ""
    """Base URL consumers use (the Service's DNS name, with `/v1`)."""
    consumers: list[ModelConsumer] = Field(default_factory=list)
    """Resources that reference this Model and need it now."""
    consumer_count: int = 0
    """`len(consumers)`, for `kubectl get`."""
    waiting_requests: int | None = None
    """`vllm:num_requests_waiting` summed over the ready replicas at the last scrape (unset when unknown)."""
    idle_since: str | None = None
    """When the last consumer went away; the replicas drop to `replicas.min` `idleSeconds` later."""
    last_error: LastError | None = None
    """The most recent error."""
