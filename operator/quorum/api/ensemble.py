"""EnsembleRouter: Avengers routing and voting over a pool of small models, as a Kubernetes resource.

Defaults follow `shared/specs/avengers.md`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from quorum.api.base import ApiModel, CrossFieldRule
from quorum.api.common import (
    BackendStatus,
    CallPolicy,
    Condition,
    DataFormat,
    DataUri,
    Endpoint,
    ImageRef,
    LastError,
    ModelCache,
    ModelEntry,
    SecretKeyRef,
    max_tokens_fit,
    unique_model_names,
)


class EmbeddingEngine(StrEnum):
    ONNXRUNTIME = "onnxruntime"
    SENTENCE_TRANSFORMERS = "sentence-transformers"


class Embedding(ApiModel):
    """The embedder of queries, the same for calibration and serving (the artifact records which one)."""

    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    """Local model id or path; the packaged all-MiniLM-L6-v2 is used offline by default."""
    engine: EmbeddingEngine = EmbeddingEngine.ONNXRUNTIME
    """How the local model runs: ONNX Runtime (no torch, faster on CPUs) or sentence-transformers (torch, which
    the default image lacks: set `router.image` to the quorum-torch image, or calibration and the router stop at
    start naming this field)."""
    endpoint: Endpoint | None = None
    """An OpenAI-compatible `/v1/embeddings` server (vLLM, TEI, a Quorum Model) instead of the local model:
    `url` with `/v1`, the served `model`, and `apiKeySecretRef` for its bearer token."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    """Time-out of one request to `endpoint`; failures count towards `router.circuitBreaker`."""
    batch_size: int = Field(default=64, ge=1, le=4096)
    """Texts per encoding batch (calibration) and the largest batch of concurrent queries (serving)."""


class TaskKind(StrEnum):
    MATH = "math"
    MULTIPLE_CHOICE = "multiple-choice"
    CODE = "code"
    OPEN = "open"


class TaskSpec(ApiModel):
    """How answers of one task are extracted, compared and voted on."""

    name: str = Field(min_length=1, max_length=128)
    """Task name as it appears in the dataset's task field."""
    kind: TaskKind = TaskKind.OPEN
    """Answer kind: math (boxed/normalized), multiple-choice (letters), code (tests), open (most central)."""
    choices: str = Field(default="ABCD", pattern=r"^[A-Z]{2,26}$")
    """Letters a multiple-choice answer may take."""
    last_number_fallback: bool = False
    """Math: a reply with no `\\boxed{}`, no "answer is"/"Answer:" and no bare answer votes with its last
    number (for datasets whose replies end with a plain number); off, such a reply does not vote."""


class CalibrationFields(ApiModel):
    """Which keys of a calibration record hold what."""

    question: str = "question"
    """The full prompt as it will be routed."""
    answer: str = "answer"
    """Reference answer."""
    task: str = "task"
    """Task name (selects the extractor via `calibration.tasks`)."""
    tests: str = "tests"
    """For code tasks: test code that must pass."""


class CalibrationDataset(ApiModel):
    """The labelled questions that build the task map."""

    uri: DataUri
    """Location of the dataset: `pvc://<claim>/<path>` or `configmap://<name>/<key>`; in local mode also
    `file://` and `s3://<bucket>/<key>` (read with the environment's AWS variables). The operator refuses
    `s3://`: an EnsembleRouter holds no object-store credentials to hand its calibration pod."""
    format: DataFormat = DataFormat.JSONL
    """Encoding of the dataset."""
    fields: CalibrationFields = Field(default_factory=CalibrationFields)
    """Key mapping."""


class Calibration(ApiModel):
    """Offline: embed, cluster, score every model per cluster, evaluate on a held-out split."""

    dataset: CalibrationDataset
    """Calibration data."""
    tasks: list[TaskSpec] = Field(
        default_factory=list,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Extractor per task; tasks not listed are graded as open-ended. Names are unique."""

    @field_validator("tasks")
    @classmethod
    def _unique_task_names(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        """Python half of the API server's `x-kubernetes-list-type: map` check on `tasks`."""
        names = [task.name for task in tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate task name {duplicates[0]!r}: names must be unique")
        return tasks

    clusters: int = Field(default=64, ge=1, le=1024)
    """k of k-means (the paper: good for 14–140, overfits beyond ~200); an upper bound once
    `minClusterSize` merges small clusters."""
    min_cluster_size: int = Field(default=10, ge=1, le=100000)
    """Clusters with fewer calibration questions are merged into the nearest one (so a set of 1–2k questions
    still routes queries to their specialists; 1 keeps every k-means cluster)."""
    samples: int = Field(default=10, ge=1, le=64)
    """Samples per model and question when scoring (self-consistency; the paper: 10)."""
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    """Sampling temperature while scoring."""
    max_tokens: int = Field(default=1024, ge=16, le=131072)
    """Token budget of one calibration answer."""
    test_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    """Share of each task held out for evaluation."""
    seed: int = Field(default=42, ge=0)
    """Seed of the split and of k-means."""
    shrinkage: float = Field(default=5.0, ge=0.0, le=1000.0)
    """Pseudo-count pulling a small cluster's accuracy toward the model's global accuracy."""


class Routing(ApiModel):
    """Online: which models answer a query."""

    clusters_blended: int = Field(default=1, ge=1, le=64)
    """Nearest centres considered (the paper: 1)."""
    beta: float = Field(default=6.0, ge=0.0, le=1000.0)
    """Sharpness of softmax(−β·distance) weights when blending several centres."""
    models_selected: int = Field(default=1, ge=1, le=16)
    """Models kept per query (1 for self-consistency, 2 for model-switch)."""


class VotingStrategy(StrEnum):
    SELF_CONSISTENCY = "self-consistency"
    MODEL_SWITCH = "model-switch"
    SINGLE = "single"


class Voting(ApiModel):
    """How the selected models' samples become one answer."""

    strategy: VotingStrategy = VotingStrategy.SELF_CONSISTENCY
    """`self-consistency`: n samples from the top model, majority wins; `model-switch`: the runner-up joins when
    the top model's majority is weak; `single`: one sample, streaming allowed."""
    samples: int = Field(default=10, ge=1, le=64)
    """Samples per selected model."""
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    """Sampling temperature when voting (a request's own temperature overrides it)."""
    switch_threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    """Model-switch: the top model's answer stands when its majority share reaches this."""
    quorum: float = Field(default=0.5, gt=0.0, le=1.0)
    """Share of samples that must come back for a vote to count; fewer falls back to the next model."""


class CircuitBreaker(ApiModel):
    """Stops sending to a backend that keeps failing, and probes it again later."""

    failure_threshold: int = Field(default=5, ge=1, le=1000)
    """Consecutive failures that open the circuit."""
    reset_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Time the circuit stays open before a trial request."""


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler for the router."""

    enabled: bool = False
    """Create the HPA (the Deployment then leaves `replicas` to it)."""
    min_replicas: int = Field(default=2, ge=1, le=100)
    """Lower bound."""
    max_replicas: int = Field(default=10, ge=1, le=1000)
    """Upper bound."""
    target_cpu_utilization: int = Field(default=70, ge=1, le=100)
    """Average CPU utilization to aim for, in percent."""

    cross_field_rules = (
        CrossFieldRule(
            cel="self.minReplicas <= self.maxReplicas",
            message="must not exceed maxReplicas",
            holds=lambda a: a.min_replicas <= a.max_replicas,
            field=".minReplicas",
        ),
    )


class RouterSettings(ApiModel):
    """The OpenAI-compatible router Deployment."""

    replicas: int = Field(default=2, ge=1, le=100)
    """Router pods (ignored when autoscaling is enabled)."""
    port: int = Field(default=8000, ge=1024, le=65535)
    """Port of the router's Service and container."""
    auth_secret_ref: SecretKeyRef | None = None
    """Secret key holding the bearer token clients must send; when unset the operator generates Secret
    `<name>-router-token-…` (key `token`): the router always requires a token."""
    backend_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    """Per-backend request time-out; a hanging backend never delays an answer beyond it."""
    max_concurrency: int = Field(default=1024, ge=1, le=100000)
    """Requests one router pod serves at once; more wait."""
    max_fan_out: int = Field(default=32, ge=1, le=1024)
    """Backend requests one client request may have in flight."""
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    """Per-backend circuit breaker."""
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    """Optional HPA."""
    image: ImageRef | None = None
    """Router and calibration image, pinned by tag or digest; default the operator's worker image (`--image`,
    the chart's `image`), resolved once when the resource is first reconciled and kept in `status.image`."""


class EnsembleRouterSpec(ApiModel):
    """Desired state of a routed ensemble."""

    models: list[ModelEntry] = Field(
        min_length=1,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """The model pool; names are unique (the API server enforces it as a map keyed by name)."""
    model_cache: ModelCache | None = None
    """PVC with model weights shared by the vLLM pods."""
    embedding: Embedding = Field(default_factory=Embedding)
    """Query embedder."""
    calibration: Calibration
    """Offline calibration."""
    routing: Routing = Field(default_factory=Routing)
    """Online routing."""
    voting: Voting = Field(default_factory=Voting)
    """Voting over samples."""
    router: RouterSettings = Field(default_factory=RouterSettings)
    """The router service."""
    calls: CallPolicy = Field(default_factory=CallPolicy)
    """Time-outs and retries for calibration calls."""

    _unique_model_names = field_validator("models")(unique_model_names)

    cross_field_rules = (
        CrossFieldRule(
            cel="self.routing.modelsSelected <= size(self.models)",
            message="exceeds the number of models",
            holds=lambda s: s.routing.models_selected <= len(s.models),
            field=".routing.modelsSelected",
        ),
        CrossFieldRule(
            cel="self.voting.strategy != 'model-switch' || self.routing.modelsSelected >= 2",
            message="must be at least 2 for voting.strategy model-switch",
            holds=lambda s: s.voting.strategy != VotingStrategy.MODEL_SWITCH or s.routing.models_selected >= 2,
            field=".routing.modelsSelected",
        ),
        CrossFieldRule(
            cel="self.routing.clustersBlended <= self.calibration.clusters",
            message="exceeds calibration.clusters",
            holds=lambda s: s.routing.clusters_blended <= s.calibration.clusters,
            field=".routing.clustersBlended",
        ),
        max_tokens_fit("calibration.maxTokens", lambda s: s.calibration.max_tokens),
    )


class ClusterSizes(ApiModel):
    """The distribution of calibration questions over the task map's clusters."""

    min: int = 0
    """Smallest cluster."""
    median: float = 0.0
    """Median cluster."""
    max: int = 0
    """Largest cluster."""


class CalibrationStatus(ApiModel):
    """The current calibration artifact and its held-out evaluation."""

    artifact: str = ""
    """Where the artifact bundle is (`configmap://<name>` or a volume path)."""
    checksum: str = ""
    """SHA-256 of the bundle; the router reports the checksum it serves."""
    clusters: int = 0
    """Clusters in the task map."""
    questions: int = 0
    """Calibration questions used."""
    cluster_sizes: ClusterSizes | None = None
    """Calibration questions per cluster."""
    routed_accuracy: float | None = None
    """Held-out accuracy of the routed ensemble, served through the router's own code at `voting.samples`."""
    best_single_accuracy: float | None = None
    """Held-out accuracy of the best single model."""
    oracle_accuracy: float | None = None
    """Held-out accuracy of a per-query oracle (upper bound)."""
    time: str | None = None
    """When calibration finished."""


class EnsembleRouterStatus(ApiModel):
    """Observed state; conditions are the API, `phase` a convenience."""

    observed_generation: int | None = None
    """The generation the operator last acted on."""
    phase: str = ""
    """Pending, Calibrating, Ready or Degraded."""
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready, BackendsReady, Calibrated, RouterReady, Degraded, and kstatus's Reconciling and Stalled."""
    backends: list[BackendStatus] = Field(default_factory=list)
    """Readiness of each model."""
    backends_ready: str = ""
    """`ready/total` for `kubectl get`."""
    url: str = ""
    """In-cluster URL of the router's OpenAI-compatible API."""
    calibration: CalibrationStatus = Field(default_factory=CalibrationStatus)
    """The artifact in use."""
    image: str = ""
    """Router and calibration image resolved when the resource was first reconciled."""
    calibration_retries: int = 0
    """Reruns of a calibration Job that completed without writing its artifact (at most its backoffLimit)."""
    last_error: LastError | None = None
    """The most recent error."""
