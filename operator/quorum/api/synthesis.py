"""SynthesisJob: the GRA pipeline (generate, review twice, adjudicate, deduplicate) as a Kubernetes resource.

Defaults follow `shared/specs/gra.md` (the paper's outline plus Quorum's choices where it is silent).
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from quorum.api.base import ApiModel, CrossFieldRule
from quorum.api.common import (
    BackendStatus,
    CallPolicy,
    Condition,
    DataFormat,
    DataUri,
    ImageRef,
    LastError,
    ModelCache,
    ModelEntry,
    SecretRef,
    max_tokens_fit,
    unique_model_names,
)


class Role(StrEnum):
    GENERATOR = "generator"
    REVIEWER = "reviewer"
    ADJUDICATOR = "adjudicator"


class SynthesisModel(ModelEntry):
    """A pool member; every model may play every role unless `roles` narrows it (the paper assigned roles at
    random)."""

    roles: list[Role] = Field(
        default_factory=lambda: [Role.GENERATOR, Role.REVIEWER, Role.ADJUDICATOR], min_length=1, max_length=3
    )
    """Roles this model may play."""


class SeedFields(ApiModel):
    """Which keys of a seed record hold what; a key set to an empty string is absent from the data."""

    id: str = "id"
    """Stable seed id; line numbers are used when the key is missing."""
    instruction: str = "instruction"
    """The task statement."""
    input: str = "input"
    """Optional context for the instruction."""
    output: str = "output"
    """The reference response."""
    domain: str = "domain"
    """Domain label, used when `domains.mode` is `field`."""


class SeedSource(ApiModel):
    """Where the seed data lives. `pvc://<claim>/<path>` and `file://` are read directly; `s3://` uses
    `output.credentialsSecretRef`; `configmap://<name>/<key>` suits small seed sets."""

    uri: DataUri
    """Location of the seed file."""
    format: DataFormat = DataFormat.JSONL
    """Encoding of the seed file."""
    fields: SeedFields = Field(default_factory=SeedFields)
    """Mapping from our field names to the keys of the seed records."""


class DomainMode(StrEnum):
    FIELD = "field"
    CLASSIFY = "classify"
    CLUSTER = "cluster"


class DomainAllocation(StrEnum):
    PROPORTIONAL = "proportional"
    EQUAL = "equal"


class Domains(ApiModel):
    """How seeds are split into domains (stage 1). Generation, few-shot demos and reports are per domain."""

    mode: DomainMode = DomainMode.FIELD
    """`field`: read `seeds.fields.domain`; `classify`: one LLM call per seed over `names`; `cluster`: k-means
    over seed embeddings."""
    names: list[str] = Field(
        default_factory=lambda: ["math", "code", "reasoning", "knowledge", "writing"], max_length=64
    )
    """Domain names; in `classify` mode the closed list the classifier picks from."""
    clusters: int = Field(default=5, ge=1, le=256)
    """Number of clusters in `cluster` mode."""
    allocation: DomainAllocation = DomainAllocation.PROPORTIONAL
    """Generation slots per domain: in proportion to the domain's seeds, or equal for every domain."""
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    """Sampling temperature of the classifier (`classify` mode)."""
    max_tokens: int = Field(default=64, ge=8, le=4096)
    """Token budget of one classification."""

    cross_field_rules = (
        CrossFieldRule(
            cel="self.mode != 'classify' || size(self.names) >= 2",
            message="classify mode needs at least two names to choose from",
            holds=lambda d: d.mode != DomainMode.CLASSIFY or len(d.names) >= 2,
            field=".names",
        ),
    )


class Generation(ApiModel):
    """Stage 3 and the round loop: how many samples to write and how."""

    target: int = Field(default=10000, ge=1, le=10_000_000)
    """Accepted records wanted; rounds stop once it is reached."""
    rounds: int = Field(default=5, ge=1, le=100)
    """Rounds at most (the paper ran five rounds of 10K)."""
    samples_per_round: int | None = Field(default=None, ge=1, le=10_000_000)
    """Candidates generated per round; default `ceil(target / rounds)`."""
    few_shot: int = Field(default=3, ge=0, le=16)
    """Seeds of the domain shown to the generator as demonstrations, with their digests."""
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    """Sampling temperature of the generator."""
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    """Nucleus sampling of the generator."""
    max_tokens: int = Field(default=2048, ge=16, le=131072)
    """Token budget of one generated sample."""
    seed: int = Field(default=42, ge=0)
    """Seed of every random choice (demos, role assignment), so a rerun is reproducible."""


class Digest(ApiModel):
    """Stage 2: one call per seed extracts 3–8 keywords and a summary of at most two sentences."""

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    """Sampling temperature of the digest calls."""
    max_tokens: int = Field(default=256, ge=16, le=16384)
    """Token budget of one digest."""


class GreyZone(StrEnum):
    REJECT = "reject"
    ADJUDICATE = "adjudicate"


class Review(ApiModel):
    """Stages 4–6: two review rounds by a panel of other models, then the μ/σ gate."""

    reviewers: int = Field(default=3, ge=1, le=15)
    """Reviewers per sample, drawn from the pool minus the generator."""
    scale: int = Field(default=10, ge=2, le=100)
    """Scores run from 1 to `scale`."""
    accept_at_least: float = Field(default=7.0, ge=1)
    """Accept when the mean score μ reaches this and reviewers agree (σ ≤ `maxStd`)."""
    reject_below: float = Field(default=5.0, ge=1)
    """Reject when μ falls below this."""
    max_std: float = Field(default=1.5, ge=0)
    """Reviewers disagree when the population std σ of their scores exceeds this; the sample is adjudicated."""
    grey_zone: GreyZone = GreyZone.REJECT
    """What happens when `rejectBelow` ≤ μ < `acceptAtLeast` with agreement."""
    temperature: float = Field(default=0.1, ge=0.0, le=0.2)
    """Reviewer temperature (low, so scores are stable)."""
    max_tokens: int = Field(default=512, ge=16, le=16384)
    """Token budget of one review."""
    instruction_rubric: list[str] = Field(
        default_factory=lambda: ["clarity", "answerability", "domain relevance"], min_length=1, max_length=16
    )
    """Round 1 dimensions: what reviewers score about the instruction."""
    response_rubric: list[str] = Field(
        default_factory=lambda: [
            "correctness",
            "completeness",
            "relevance",
            "coherence",
            "language",
            "safety",
        ],
        min_length=1,
        max_length=16,
    )
    """Round 2 dimensions: what reviewers score about the response."""
    allow_same_model: bool = False
    """Let a model review its own samples, and one model fill several reviewer seats, when the pool is too
    small (local mode with one model). The dataset's manifest then records `independent: false`."""
    calibration_items: int = Field(default=6, ge=0, le=64)
    """Seeds every reviewer model scores before the run, each also as a planted flawed copy (shuffled
    instruction, mismatched response): the evidence for degenerate-reviewer detection. 0 skips it."""
    exclude_degenerate: bool = True
    """Leave out of the gate the verdicts of reviewer models that calibration found degenerate (copying the
    prompt or other reviews, constant scores); the manifest and report say which and why."""

    cross_field_rules = (
        CrossFieldRule(
            cel="!self.excludeDegenerate || self.calibrationItems >= 3",
            message="must be at least 3 when excludeDegenerate is true (or set excludeDegenerate to false)",
            holds=lambda r: not r.exclude_degenerate or r.calibration_items >= 3,
            field=".calibrationItems",
        ),
        CrossFieldRule(
            cel="self.acceptAtLeast >= self.rejectBelow",
            message="must be greater than or equal to rejectBelow",
            holds=lambda r: r.accept_at_least >= r.reject_below,
            field=".acceptAtLeast",
        ),
        CrossFieldRule(
            cel="self.acceptAtLeast <= double(self.scale)",
            message="must not exceed scale",
            holds=lambda r: r.accept_at_least <= r.scale,
            field=".acceptAtLeast",
        ),
    )


class Adjudication(ApiModel):
    """Stage 7: a model that neither generated nor reviewed the sample settles disagreements."""

    enabled: bool = True
    """Without adjudication, samples that would be adjudicated are rejected."""
    temperature: float = Field(default=0.1, ge=0.0, le=1.0)
    """Adjudicator temperature."""
    max_tokens: int = Field(default=512, ge=16, le=16384)
    """Token budget of one verdict."""


class DedupScope(StrEnum):
    SEEDS = "seeds"
    ACCEPTED = "accepted"
    DECONTAMINATION = "decontamination"


class Dedup(ApiModel):
    """Semantic deduplication: embeddings of instruction (+ input), cosine via faiss inner product."""

    enabled: bool = True
    """Drop near-duplicates."""
    threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    """Cosine similarity at or above which a sample is a duplicate."""
    against: list[DedupScope] = Field(
        default_factory=lambda: [DedupScope.SEEDS, DedupScope.ACCEPTED], min_length=1, max_length=3
    )
    """What a sample is compared with."""
    decontamination_uri: DataUri | None = None
    """JSONL of benchmark prompts (`instruction` key) that no kept sample may resemble."""
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    """sentence-transformers model; the packaged all-MiniLM-L6-v2 is used offline by default."""

    cross_field_rules = (
        CrossFieldRule(
            cel="!('decontamination' in self.against) || has(self.decontaminationUri)",
            message="must be set when against includes decontamination",
            holds=lambda d: DedupScope.DECONTAMINATION not in d.against or d.decontamination_uri is not None,
            field=".decontaminationUri",
        ),
    )


class RecordFormat(StrEnum):
    ALPACA = "alpaca"
    SHAREGPT = "sharegpt"
    OPENAI = "openai"


class Postprocess(ApiModel):
    """Stage 8: deduplicate, complete digests, write one record format."""

    dedup: Dedup = Field(default_factory=Dedup)
    """Semantic deduplication settings."""
    fill_digests: bool = True
    """Complete missing keywords/summaries of kept samples."""
    format: RecordFormat = RecordFormat.OPENAI
    """Record layout of `dataset.*`: OpenAI `messages` (the default; what TRL's SFTTrainer and LLaMA-Factory read
    as is), ShareGPT `conversations` or Alpaca `instruction`/`input`/`output`. Every layout carries the same
    `provenance` struct."""


class Output(ApiModel):
    """Where the dataset, `rejected.jsonl`, `manifest.json`, the report, the dataset card and the shard journals
    (for resume) are written."""

    uri: DataUri
    """Directory URI, e.g. `pvc://datasets/runs/math-code/` or `s3://bucket/quorum/math-code/` (any
    S3-compatible store; set `AWS_ENDPOINT_URL_S3` in the credentials Secret for one other than AWS)."""
    format: DataFormat = DataFormat.JSONL
    """Encoding of `dataset.*`."""
    credentials_secret_ref: SecretRef | None = None
    """Secret with object-store credentials for every `s3://` location of the job (seeds, decontamination set,
    output): its keys become the workers' environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional
    `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL_S3`). In local mode the same variables are read from
    the environment."""


class Workers(ApiModel):
    """The worker Indexed Job: one index per shard of the seed data."""

    shards: int = Field(default=16, ge=1, le=1024)
    """Shards of the work; each commits its output atomically, so a retried shard never duplicates."""
    parallelism: int = Field(default=4, ge=1, le=1024)
    """Shards running at once."""
    concurrency_per_model: int = Field(default=32, ge=1, le=4096)
    """In-flight requests one worker sends to one model."""
    backoff_limit_per_index: int = Field(default=3, ge=0, le=100)
    """Retries of a failing shard before the job fails."""
    image: ImageRef | None = None
    """Worker image, pinned by tag or digest; default the operator's worker image (`--image`, the chart's
    `image`), resolved once when the job starts and kept in `status.image` (an operator upgrade never changes a
    running job's image)."""

    cross_field_rules = (
        CrossFieldRule(
            cel="self.parallelism <= self.shards",
            message="must not exceed shards",
            holds=lambda w: w.parallelism <= w.shards,
            field=".parallelism",
        ),
    )


class Backends(ApiModel):
    """What happens to the vLLM Deployments when the job ends."""

    delete_on_completion: bool = True
    """Free the GPUs once the job succeeds or fails."""


class PromptOverride(ApiModel):
    """A user-written prompt for one stage: a Jinja2 template of the user message. Its variables are listed in
    the README; an unknown variable or a syntax error stops the run at start, naming this field."""

    template_uri: DataUri
    """The template file: `file://`, `pvc://<claim>/<path>`, `configmap://<name>/<key>` or `s3://<bucket>/<key>`."""
    system: str | None = Field(default=None, max_length=4000)
    """Replaces the stage's system message."""


class Prompts(ApiModel):
    """Optional per-stage prompt overrides; a stage left out uses Quorum's built-in prompt. The JSON schema of
    each answer stays Quorum's, so an override changes what is asked, not what comes back."""

    classify: PromptOverride | None = None
    """Stage 1, `classify` domain mode."""
    digest: PromptOverride | None = None
    """Stage 2, seed digests (and filled digests of kept samples)."""
    generate: PromptOverride | None = None
    """Stage 3."""
    review_instruction: PromptOverride | None = None
    """Stage 4 (also used for calibration)."""
    review_response: PromptOverride | None = None
    """Stage 5 (also used for calibration)."""
    adjudicate: PromptOverride | None = None
    """Stage 7."""


class SynthesisMode(StrEnum):
    GENERATE = "generate"
    REFINE = "refine"


def _generators(spec: SynthesisJobSpec) -> list[SynthesisModel]:
    return [m for m in spec.models if Role.GENERATOR in m.roles]


def _enough_reviewers(spec: SynthesisJobSpec) -> bool:
    if spec.review.allow_same_model:
        return any(Role.REVIEWER in m.roles for m in spec.models)
    authors = _generators(spec) if spec.mode == SynthesisMode.GENERATE else []
    return (
        all(
            sum(Role.REVIEWER in m.roles and m.name != g.name for m in spec.models) >= spec.review.reviewers
            for g in authors
        )
        and sum(Role.REVIEWER in m.roles for m in spec.models) >= spec.review.reviewers
    )


class SynthesisJobSpec(ApiModel):
    """Desired state of a GRA synthesis run."""

    mode: SynthesisMode = SynthesisMode.GENERATE
    """`generate` writes new samples from the seeds; `refine` reviews (and gates) the seed data itself."""
    models: list[SynthesisModel] = Field(
        min_length=1,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """The model pool; names are unique (the API server enforces it as a map keyed by name)."""
    model_cache: ModelCache | None = None
    """PVC with model weights shared by the vLLM pods."""
    seeds: SeedSource = Field(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "seeds is immutable; create a new SynthesisJob"}
            ]
        }
    )
    """The seed data. Immutable: changing it would mix two datasets in one output."""
    domains: Domains = Field(default_factory=Domains)
    """Domain split."""
    digest: Digest = Field(default_factory=Digest)
    """Seed digests."""
    generation: Generation = Field(default_factory=Generation)
    """Generation and rounds."""
    review: Review = Field(default_factory=Review)
    """Review panel and gate."""
    adjudication: Adjudication = Field(default_factory=Adjudication)
    """Adjudicator."""
    postprocess: Postprocess = Field(default_factory=Postprocess)
    """Dedup, digests and record format."""
    prompts: Prompts = Field(default_factory=Prompts)
    """Per-stage prompt overrides."""
    output: Output
    """Where results go."""
    workers: Workers = Field(default_factory=Workers)
    """Sharding and concurrency."""
    calls: CallPolicy = Field(default_factory=CallPolicy)
    """Time-outs, retries and JSON repair for model calls."""
    suspend: bool = False
    """Stop the workers (committed shards are kept) until set back to false."""
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    """Fail the job when it runs longer than this."""
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    """Delete the resource this long after it succeeded or failed."""
    backends: Backends = Field(default_factory=Backends)
    """Lifecycle of the model Deployments."""

    _unique_model_names = field_validator("models")(unique_model_names)

    cross_field_rules = (
        CrossFieldRule(
            cel="self.mode == 'refine' || self.models.exists(m, 'generator' in m.roles)",
            message="at least one model needs the generator role",
            holds=lambda s: s.mode == SynthesisMode.REFINE or bool(_generators(s)),
            field=".models",
        ),
        CrossFieldRule(
            cel="self.review.allowSameModel ? self.models.exists(r, 'reviewer' in r.roles) : "
            "(self.models.filter(r, 'reviewer' in r.roles).size() >= self.review.reviewers && "
            "(self.mode == 'refine' || self.models.all(g, !('generator' in g.roles) || "
            "self.models.filter(r, 'reviewer' in r.roles && r.name != g.name).size() >= self.review.reviewers)))",
            message="exceeds the models with the reviewer role other than the generator; lower it or set "
            "review.allowSameModel",
            holds=_enough_reviewers,
            field=".review.reviewers",
        ),
        CrossFieldRule(
            cel="!self.adjudication.enabled || self.models.exists(m, 'adjudicator' in m.roles)",
            message="is true but no model has the adjudicator role",
            holds=lambda s: not s.adjudication.enabled or any(Role.ADJUDICATOR in m.roles for m in s.models),
            field=".adjudication.enabled",
        ),
        CrossFieldRule(
            cel="self.domains.mode != 'field' || self.seeds.fields.domain != ''",
            message="must name the domain key when domains.mode is field",
            holds=lambda s: s.domains.mode != DomainMode.FIELD or s.seeds.fields.domain != "",
            field=".seeds.fields.domain",
        ),
        CrossFieldRule(
            cel="self.review.rejectBelow <= double(self.review.scale)",
            message="must not exceed review.scale",
            holds=lambda s: s.review.reject_below <= s.review.scale,
            field=".review.rejectBelow",
        ),
        max_tokens_fit("generation.maxTokens", lambda s: s.generation.max_tokens),
    )


class StageState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class StageStatus(ApiModel):
    """Progress of one pipeline stage across all shards."""

    name: str
    """Stage name: the job's backends, workers and merge, then the GRA stages the workers report (round,
    domains, digest, generate, review-instruction, review-response, adjudicate, dedup, write)."""
    state: StageState = StageState.PENDING
    """Where the stage stands."""
    done: int = 0
    """Units finished."""
    total: int = 0
    """Units planned."""
    rate: float = 0.0
    """Units finished per second since the stage started (summed over shards for the job)."""


class SynthesisCounts(ApiModel):
    """The funnel, summed over shards. One set of definitions (`quorum.gra.funnel` computes them) for the
    manifest, the live board, the final summary and this status; `accepted + rejected` is every candidate."""

    seeds: int = 0
    """Seed records read (bad lines excluded)."""
    generated: int = 0
    """Candidates with a sample (written by a generator, or in refine mode the seed under review)."""
    round1_passed: int = 0
    """Candidates whose instruction passed round 1 (adjudicated accepts included)."""
    round2_passed: int = 0
    """Candidates whose response passed round 2 (adjudicated accepts included)."""
    adjudicated: int = 0
    """Candidates sent to the adjudicator in either round."""
    accepted: int = 0
    """Records in the final dataset."""
    rejected: int = 0
    """Candidates not in the dataset: rejected by a gate, duplicates, failed and surplus ones."""
    duplicates: int = 0
    """Accepted candidates dropped as near-duplicates (part of `rejected`)."""
    failed: int = 0
    """Candidates lost to failed model calls after retries (part of `rejected`; recorded, never silent)."""
    surplus: int = 0
    """Accepted candidates beyond `generation.target`, left out so the dataset has exactly `target` records
    (part of `rejected`)."""
    failed_calls: int = 0
    """Per-seed calls (domain classification, digest, calibration) that failed after retries; the run went
    on without their answers. Not candidates."""


def count_keys() -> tuple[str, ...]:
    """The wire names of the counts, for code that reads them from JSON."""
    return tuple(field.alias or name for name, field in SynthesisCounts.model_fields.items())


class ShardStatus(ApiModel):
    """What a worker reports for its shard; a map keyed by shard index so concurrent merge-patches from
    different workers never overwrite each other."""

    state: StageState = StageState.PENDING
    """Shard state."""
    stage: str = ""
    """Stage the shard is in."""
    done: int = 0
    """Units of the current stage finished."""
    total: int = 0
    """Units of the current stage planned."""
    counts: SynthesisCounts = Field(default_factory=SynthesisCounts)
    """The shard's funnel."""
    stages: list[StageStatus] = Field(default_factory=list)
    """The shard's GRA stages (done, total, rate), what the job's `status.stages` sums."""
    degenerate_reviewers: list[str] = Field(default_factory=list)
    """Reviewer models the shard's calibration found degenerate (see the manifest's `reviewers`)."""
    attempt: int = 0
    """Worker attempt (pod restarts of this index)."""
    fingerprint: str = ""
    """Fingerprint of the configuration the worker ran, so reports of an older configuration are ignored."""
    updated: str | None = None
    """RFC 3339 time of the report."""


class OutputStatus(ApiModel):
    """Where the finished dataset is."""

    uri: str = ""
    """Output directory."""
    records: int = 0
    """Records in the dataset."""
    manifest: str = ""
    """URI of `manifest.json`, the provenance and report index."""


class SynthesisJobStatus(ApiModel):
    """Observed state; conditions are the API, `phase` a convenience."""

    observed_generation: int | None = None
    """The generation the operator last acted on."""
    phase: str = ""
    """Pending, Running, Suspended, Succeeded or Failed."""
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready, BackendsReady, Progressing, Succeeded, Failed, Suspended, and kstatus's Reconciling (transient
    work or a retry) and Stalled (a permanent error; the message names the field)."""
    progress: str = ""
    """Short progress text for `kubectl get`, e.g. `12/16 shards`."""
    stages: list[StageStatus] = Field(default_factory=list)
    """Per-stage progress."""
    counts: SynthesisCounts = Field(default_factory=SynthesisCounts)
    """Funnel counts over all shards."""
    shards: dict[str, ShardStatus] = Field(default_factory=dict)
    """Per-shard reports keyed by shard index."""
    backends: list[BackendStatus] = Field(default_factory=list)
    """Readiness of each model."""
    fingerprint: str = ""
    """Hash of the spec parts that change the output; a changed one is handled explicitly."""
    image: str = ""
    """Worker image resolved when the job started (the spec's, else the operator's default then)."""
    degenerate_reviewers: list[str] = Field(default_factory=list)
    """Reviewer models that any shard's calibration found degenerate (the union of
    `shards.<i>.degenerateReviewers`); each is announced once by a `DegenerateReviewer` Warning event."""
    output: OutputStatus = Field(default_factory=OutputStatus)
    """Result location."""
    start_time: str | None = None
    """When the workers started."""
    completion_time: str | None = None
    """When the job succeeded or failed."""
    last_error: LastError | None = None
    """The most recent error."""


def output_fingerprint(spec: SynthesisJobSpec) -> str:
    """The one owner of "what changes the output": local resume, worker shards and the operator's
    spec-change guard all compare this hash.

    Left out on purpose: concurrency, parallelism, time-outs, deadlines, images, vLLM serving settings and
    endpoint URLs, which change how fast or where the work runs but not what it produces, and the output
    location itself. They apply to a running job live or at its next shard.
    """
    return hashlib.sha256(json.dumps(output_relevant_spec(spec), sort_keys=True).encode()).hexdigest()[:16]


def output_relevant_spec(spec: SynthesisJobSpec) -> dict[str, Any]:
    wire = spec.to_wire()
    models = [
        {
            "name": m.name,
            "roles": sorted(str(r) for r in m.roles),
            "model": m.model if m.endpoint is None else m.endpoint.model,
        }
        for m in spec.models
    ]
    calls = wire.get("calls", {})
    return {
        "mode": wire.get("mode"),
        "models": models,
        "seeds": wire["seeds"],
        "domains": wire.get("domains"),
        "digest": wire.get("digest"),
        "prompts": wire.get("prompts"),
        "generation": wire.get("generation"),
        "review": wire.get("review"),
        "adjudication": wire.get("adjudication"),
        "postprocess": wire.get("postprocess"),
        "outputFormat": wire["output"].get("format"),
        "shards": wire.get("workers", {}).get("shards"),
        "jsonRepairAttempts": calls.get("jsonRepairAttempts"),
    }
