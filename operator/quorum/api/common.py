"""Building blocks shared by SynthesisJob and EnsembleRouter: model entries, secret references, data
locations, call policy and status conditions."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from quorum.api.base import ApiModel, CrossFieldRule, FieldRule
from quorum.locations import DATA_SCHEME_CEL, DATA_SCHEMES_TEXT, PARENT_SEGMENT_CEL, VOLUME_URI

DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
URI = r"^[a-z][a-z0-9+.-]*://.+$"
"""Any URI; which schemes a data location may use is `DataUri`'s rule (with a message that lists them)."""
VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
QUANTITY = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
"""A Kubernetes resource quantity (`500m`, `64Gi`, `1e3`), as `resource.ParseQuantity` accepts it."""
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}$"
"""A label key or qualified resource name: optional DNS-subdomain prefix and `/`, then a name of ≤ 63."""
LABEL_VALUE = rf"^({_LABEL_NAME})?$"
IMAGE = r"^[^\s@:/]+(:[0-9]+)?(/[^\s@:/]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$"
"""An image pinned by tag or digest (a registry port is allowed); `:latest` is refused separately."""
URL_CREDENTIALS = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*@"
"""`scheme://user:password@host`: credentials in a URL end up in the spec, ConfigMaps, logs and status."""


def cel_string(text: str) -> str:
    """`text` as a single-quoted CEL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _keys_match(pattern: str, what: str) -> FieldRule:
    regex = re.compile(pattern)
    return FieldRule(
        cel=f"self.all(k, k.matches({cel_string(pattern)}))",
        message=f"every key must be a {what}",
        holds=lambda value: all(regex.match(key) for key in value),
    )


ImageRef = Annotated[
    str,
    Field(pattern=IMAGE, max_length=512),
    FieldRule(
        cel="!self.endsWith(':latest')",
        message="must be pinned to a tag or digest, not latest",
        holds=lambda value: not value.endswith(":latest"),
    ),
]
"""A container image that cannot change under a running resource: tagged (not `latest`) or by digest."""
Quantities = Annotated[
    dict[str, Annotated[str, Field(pattern=QUANTITY, max_length=64)]],
    Field(max_length=32),
    _keys_match(LABEL_KEY, "resource name such as cpu, memory or nvidia.com/gpu"),
]
LabelSelector = Annotated[
    dict[str, Annotated[str, Field(pattern=LABEL_VALUE, max_length=63)]],
    Field(max_length=32),
    _keys_match(LABEL_KEY, "label key ([prefix/]name, name at most 63 characters)"),
]

DataUri = Annotated[
    str,
    Field(pattern=URI, max_length=2048),
    FieldRule(
        cel=f"self.matches({cel_string(DATA_SCHEME_CEL)})",
        message=f"must be a {DATA_SCHEMES_TEXT} location (http:// and https:// are not read: copy the data to "
        "one of these)",
        holds=lambda value: re.match(DATA_SCHEME_CEL, value) is not None,
    ),
    FieldRule(
        cel=f"!self.matches({cel_string(PARENT_SEGMENT_CEL)})",
        message="'..' segments are not allowed (a location stays inside its volume or bucket)",
        holds=lambda value: re.match(PARENT_SEGMENT_CEL, value) is None,
    ),
    FieldRule(
        cel=f"!self.matches('^(pvc|configmap)://') || self.matches({cel_string(VOLUME_URI)})",
        message="the claim or ConfigMap name must be a lowercase DNS subdomain",
        holds=lambda value: not re.match("^(pvc|configmap)://", value) or re.match(VOLUME_URI, value) is not None,
    ),
]
"""A data location. The API server and pydantic refuse the same escapes; the engines confine the path again
when they resolve it (`quorum.locations`)."""
ModelName = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=24)]
"""Model names become parts of child object names (`<resource>-<model>`), hence the DNS label and length."""


class SecretKeyRef(ApiModel):
    """A key inside a Secret in the resource's namespace. Secrets are only ever referenced, never inlined."""

    name: str = Field(pattern=r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", max_length=253)
    """Name of the Secret."""
    key: str = Field(default="token", min_length=1, max_length=253)
    """Key within the Secret whose value is used."""


class SecretRef(ApiModel):
    """A whole Secret in the resource's namespace, mounted or exposed as environment variables."""

    name: str = Field(pattern=r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", max_length=253)
    """Name of the Secret."""


class Endpoint(ApiModel):
    """An OpenAI-compatible server that already exists; Quorum deploys nothing for it."""

    url: Annotated[
        str,
        Field(pattern=r"^https?://.+$", max_length=2048),
        FieldRule(
            cel=f"!self.matches({cel_string(URL_CREDENTIALS)})",
            message="must not embed credentials (user:password@); put the key in a Secret and use apiKeySecretRef",
            holds=lambda url: re.match(URL_CREDENTIALS, url) is None,
        ),
    ]
    """Base URL including the API prefix, e.g. `http://llama.inference.svc:8000/v1`; no `user:password@`."""
    model: str = Field(min_length=1, max_length=512)
    """Model name to send in requests to this endpoint."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the bearer token for this endpoint, if it needs one."""


class VLLMSettings(ApiModel):
    """How the vLLM OpenAI server for a model is run."""

    image: ImageRef = VLLM_IMAGE
    """vLLM server image, pinned by tag or digest (never `latest`)."""
    tensor_parallel_size: int = Field(default=1, ge=1, le=16)
    """`--tensor-parallel-size`: GPUs one replica shards the model over."""
    max_model_len: int = Field(default=8192, ge=256, le=1_048_576)
    """`--max-model-len`: context length the server accepts."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    """`--gpu-memory-utilization`: fraction of GPU memory vLLM may take."""
    args: list[str] = Field(default_factory=list, max_length=64)
    """Extra command-line arguments appended to the vLLM server command."""
    startup_budget_seconds: int = Field(default=1800, ge=60, le=86400)
    """How long the startup probe lets a replica load weights before Kubernetes restarts it."""


class Toleration(ApiModel):
    """A pod toleration, as in core/v1."""

    key: str | None = Field(default=None, pattern=rf"{LABEL_KEY}|^$", max_length=316)
    """Taint key the toleration applies to; empty matches all keys (only with `Exists`)."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """`Exists` matches any value, `Equal` the given value."""
    value: str | None = Field(default=None, pattern=LABEL_VALUE, max_length=63)
    """Taint value to match with `Equal`; must be empty with `Exists`."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all effects."""

    cross_field_rules = (
        CrossFieldRule(
            cel="self.operator != 'Exists' || !has(self.value) || self.value == ''",
            message="must be empty when operator is Exists",
            holds=lambda t: t.operator != "Exists" or not t.value,
            field=".value",
        ),
        CrossFieldRule(
            cel="self.operator == 'Exists' || (has(self.key) && self.key != '')",
            message="must be set when operator is Equal (an empty key matches all taints only with Exists)",
            holds=lambda t: t.operator == "Exists" or bool(t.key),
            field=".key",
        ),
    )


class ModelResources(ApiModel):
    """Compute for one vLLM replica."""

    gpus: int = Field(default=1, ge=0, le=16)
    """`nvidia.com/gpu` requested (and limited) per replica."""
    requests: Quantities = Field(default_factory=dict)
    """Extra resource requests, e.g. `{cpu: "8", memory: 64Gi}` (Kubernetes quantities)."""
    limits: Quantities = Field(default_factory=dict)
    """Extra resource limits (Kubernetes quantities)."""
    node_selector: LabelSelector = Field(default_factory=dict)
    """Node labels the replica must land on, e.g. a GPU product label."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=16)
    """Tolerations for tainted GPU nodes."""


class ModelRef(ApiModel):
    """A shared `Model` resource in the same namespace: its one vLLM Deployment serves every consumer."""

    name: str = Field(pattern=DNS_LABEL, min_length=1, max_length=30)
    """Name of the Model."""


class ModelEntry(ApiModel):
    """One model of the pool: served by a vLLM Deployment of this resource's own (`model`), by a shared
    `Model` resource (`modelRef`), or by an existing OpenAI-compatible `endpoint`."""

    name: ModelName
    """Unique name of the model within the resource; used in child names and provenance."""
    model: str | None = Field(default=None, min_length=1, max_length=512)
    """Model for vLLM to serve (Hugging Face id or a path in the model cache). Set exactly one of `model`,
    `endpoint` and `modelRef`."""
    endpoint: Endpoint | None = None
    """An existing OpenAI-compatible server to use instead of deploying one."""
    model_ref: ModelRef | None = None
    """A shared `Model` resource serving this model; it is scaled up while this resource needs it and is never
    deleted by this resource's cleanup (`backends.deleteOnCompletion` applies only to `model`)."""
    vllm: VLLMSettings | None = None
    """vLLM server settings; only with `model`."""
    resources: ModelResources | None = None
    """GPU and scheduling settings of the vLLM replicas; only with `model`."""
    replicas: int = Field(default=1, ge=1, le=64)
    """vLLM replicas behind the model's Service; only with `model`."""
    max_concurrency: int | None = Field(default=None, ge=1, le=4096)
    """In-flight requests Quorum sends to this model at most; overrides the resource-wide default."""

    cross_field_rules = (
        CrossFieldRule(
            cel="[has(self.model), has(self.endpoint), has(self.modelRef)].filter(x, x).size() == 1",
            message="set exactly one of model (served by vLLM), endpoint (external server) or modelRef (a shared "
            "Model)",
            holds=lambda m: [m.model is not None, m.endpoint is not None, m.model_ref is not None].count(True) == 1,
        ),
        CrossFieldRule(
            cel="has(self.model) || (!has(self.vllm) && !has(self.resources))",
            message="vllm and resources apply only to models that this resource deploys (model), not with "
            "endpoint or modelRef (a Model holds its own)",
            holds=lambda m: m.model is not None or (m.vllm is None and m.resources is None),
            field=".vllm",
        ),
        CrossFieldRule(
            cel="!has(self.vllm) || self.vllm.tensorParallelSize <= (has(self.resources) ? self.resources.gpus : 1)",
            message="exceeds the GPUs requested per replica (resources.gpus, default 1)",
            holds=lambda m: m.vllm is None or m.vllm.tensor_parallel_size <= (m.resources.gpus if m.resources else 1),
            field=".vllm.tensorParallelSize",
        ),
    )

    @property
    def deployed(self) -> bool:
        """True when this resource runs its own vLLM Deployment for this model."""
        return self.endpoint is None and self.model_ref is None


def max_tokens_fit(max_tokens_field: str, max_tokens: Callable[[Any], int]) -> CrossFieldRule:
    """`<field> <= vllm.maxModelLen` of every served model: a longer answer than the server's context can
    never be produced, and vLLM refuses every such request."""
    default = VLLMSettings().max_model_len
    return CrossFieldRule(
        cel=f"self.models.all(m, has(m.endpoint) || has(m.modelRef) || "
        f"(has(m.vllm) ? m.vllm.maxModelLen : {default}) >= self.{max_tokens_field})",
        message=f"exceeds vllm.maxModelLen (default {default}) of a model Quorum serves",
        holds=lambda s: all(
            (m.vllm.max_model_len if m.vllm else default) >= max_tokens(s) for m in s.models if m.deployed
        ),
        field=f".{max_tokens_field}",
    )


def unique_model_names(models: list[ModelEntry]) -> list[ModelEntry]:
    """Python half of the API server's `x-kubernetes-list-type: map` check on `models`."""
    seen: set[str] = set()
    for model in models:
        if model.name in seen:
            raise ValueError(f"duplicate model name {model.name!r}: names must be unique")
        seen.add(model.name)
    return models


class ModelCache(ApiModel):
    """A PersistentVolumeClaim holding model weights, mounted read-only into every vLLM pod."""

    claim_name: str = Field(pattern=r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", max_length=253)
    """Name of the PVC in the resource's namespace."""
    mount_path: str = Field(default="/models", pattern=r"^/.*")
    """Where the claim is mounted; also exported as `HF_HOME`."""
    sub_path: str | None = None
    """Sub-directory of the claim to mount."""


class CallPolicy(ApiModel):
    """How calls to model servers are made: time-outs, retries with backoff, repair of invalid JSON."""

    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    """Per-request time-out."""
    max_retries: int = Field(default=3, ge=0, le=20)
    """Retries after a failed call (5xx, 429, connection error, time-out) before it is recorded as failed."""
    backoff_seconds: float = Field(default=1.0, ge=0, le=300)
    """First retry delay; doubles per retry, with jitter."""
    max_backoff_seconds: float = Field(default=30.0, ge=0, le=3600)
    """Upper bound of one retry delay."""
    json_repair_attempts: int = Field(default=2, ge=0, le=10)
    """Re-asks, with the parse error, when a structured answer is not valid JSON for its schema."""


class DataFormat(StrEnum):
    """Encoding of a dataset file."""

    JSONL = "jsonl"
    PARQUET = "parquet"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A kstatus-compatible condition; `lastTransitionTime` changes only when `status` flips."""

    type: str = Field(pattern=r"^[A-Z][A-Za-z]*$")
    """Condition type, e.g. `Ready`."""
    status: ConditionStatus
    """`True`, `False` or `Unknown`."""
    reason: str = Field(default="", pattern=r"^([A-Z][A-Za-z0-9]*)?$")
    """One CamelCase word saying why."""
    message: str = ""
    """Human-readable detail."""
    last_transition_time: str | None = None
    """RFC 3339 time of the last status flip."""
    observed_generation: int | None = None
    """The `metadata.generation` this condition was computed from."""


class LastError(ApiModel):
    """The most recent error, kept because events are garbage-collected within hours."""

    stage: str = ""
    """Stage or component where it happened."""
    reason: str = ""
    """CamelCase cause, e.g. `BackendUnavailable`."""
    message: str = ""
    """Detail."""
    time: str | None = None
    """RFC 3339 time it happened."""


class BackendStatus(ApiModel):
    """Readiness of one model backend."""

    name: str
    """Model name from the spec."""
    ready: bool = False
    """Whether at least one replica (or the external endpoint) is ready to serve."""
    ready_replicas: int = 0
    """Ready vLLM replicas (0 for external endpoints)."""
    replicas: int = 0
    """Desired vLLM replicas (0 for external endpoints)."""
    url: str = ""
    """Base URL the workers and router use."""
