"""`quorum worker synth`: one shard of a SynthesisJob (the Indexed Job's completion index), or the merge.

The mounted config is the SynthesisJob as the operator rewrote it for pods (builders/synthesis.py
`worker_manifest`): every model is an endpoint, every data location a `file://` path of a mounted volume or an
`s3://` URI (credentials from `output.credentialsSecretRef`, injected as the standard AWS variables).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from quorum.api.resources import SynthesisJob, load_one
from quorum.api.synthesis import StageState, SynthesisJobSpec
from quorum.builders.backends import api_key_env
from quorum.builders.synthesis import FINGERPRINT_ANNOTATION, OUTPUT_URI_ANNOTATION
from quorum.gra import GraConfig, ShardResult, merge_shards, run_shard
from quorum.llm import ModelEndpoint, eventloop
from quorum.locations import POD_DATA_ROOT, Location
from quorum.worker.kube import StatusPatcher, pod_api_client
from quorum.worker.podfs import fs_root, pod_path
from quorum.worker.progress import ShardReporter

SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"
"""Set by the Job controller in every pod of an Indexed Job."""
ATTEMPT_ENV = "QUORUM_ATTEMPT"
"""The index's failure count so far (builders/synthesis.py maps it from the pod's annotation)."""


class WorkerConfigError(ValueError):
    """The mounted config or the pod's environment cannot run a shard."""


@dataclass(frozen=True)
class PodJob:
    """A SynthesisJob as a worker pod sees it."""

    name: str
    namespace: str
    fingerprint: str
    output_uri: str
    """The output location as the user wrote it (`pvc://...`), for what the merge reports."""
    config: GraConfig

    @classmethod
    def load(cls, path: Path) -> PodJob:
        job = load_one(path, SynthesisJob)
        annotations = job.metadata.annotations or {}
        spec = _rooted(job.spec)
        root = fs_root()
        config = GraConfig.from_spec(
            spec, name=job.metadata.name, base_dir=root if root else path.parent, file_root=pod_path(POD_DATA_ROOT)
        )
        return cls(
            name=job.metadata.name,
            namespace=job.metadata.namespace or os.environ.get("POD_NAMESPACE", "default"),
            fingerprint=annotations.get(FINGERPRINT_ANNOTATION, ""),
            output_uri=annotations.get(OUTPUT_URI_ANNOTATION, spec.output.uri),
            config=config,
        )

    @property
    def out_dir(self) -> Location:
        return self.config.location(self.config.spec.output.uri)


def _rooted(spec: SynthesisJobSpec) -> SynthesisJobSpec:
    """Under `QUORUM_FS_ROOT`, absolute `file:///p` become `file://p` relative to the root (the config's
    base_dir). Every pod of a job then has the same spec, hence the same engine fingerprint, wherever its
    stand-in root lies."""
    if fs_root() is None:
        return spec
    wire = spec.to_wire()

    def relative(uri: str) -> str:
        return "file://" + uri.removeprefix("file:///") if uri.startswith("file:///") else uri

    wire["seeds"]["uri"] = relative(wire["seeds"]["uri"])
    wire["output"]["uri"] = relative(wire["output"]["uri"])
    dedup = wire.get("postprocess", {}).get("dedup", {})
    if dedup.get("decontaminationUri"):
        dedup["decontaminationUri"] = relative(dedup["decontaminationUri"])
    for override in (wire.get("prompts") or {}).values():
        override["templateUri"] = relative(override["templateUri"])
    return SynthesisJobSpec.model_validate(wire)


def pod_endpoints(spec: SynthesisJobSpec) -> list[ModelEndpoint]:
    """Every model is an endpoint in the pod config; API keys come from `QUORUM_API_KEY_<MODEL>` (a
    `secretKeyRef` in the pod spec, never a value in the config)."""
    endpoints = []
    for model in spec.models:
        if model.endpoint is None:
            raise WorkerConfigError(f"model {model.name!r} has no endpoint in the worker config")
        api_key = None
        if model.endpoint.api_key_secret_ref is not None:
            api_key = os.environ.get(api_key_env(model.name))
            if not api_key:
                raise WorkerConfigError(f"model {model.name!r}: ${api_key_env(model.name)} is not set")
        concurrency = model.max_concurrency or spec.workers.concurrency_per_model
        endpoints.append(ModelEndpoint(model.name, model.endpoint.url, model.endpoint.model, api_key, concurrency))
    return endpoints


def shard_index_from_env() -> int:
    raw = os.environ.get(SHARD_INDEX_ENV)
    if raw is None or not raw.isdigit():
        raise WorkerConfigError(f"${SHARD_INDEX_ENV} must be the shard index (got {raw!r})")
    return int(raw)


async def run_worker_shard(job: PodJob, shard_index: int, *, publish_interval: float = 1.0) -> ShardResult:
    """Run (or resume) the shard, reporting `status.shards.<index>` as it goes and once at the end."""
    patcher = StatusPatcher(pod_api_client(), "synthesisjobs", job.namespace, job.name)
    attempt = int(os.environ.get(ATTEMPT_ENV) or 0)
    reporter = ShardReporter(
        patcher.patch, shard_index, attempt=attempt, fingerprint=job.fingerprint, interval=publish_interval
    )
    async with reporter:
        try:
            result = await run_shard(
                job.config, shard_index, pod_endpoints(job.config.spec), job.out_dir, progress=reporter
            )
        except BaseException:
            with contextlib.suppress(Exception):  # the shard's own error is the one to surface
                await reporter.finish(StageState.FAILED)
            raise
        await reporter.finish(StageState.SUCCEEDED, result.counts, degenerate_reviewers=result.degenerate_reviewers)
    return result


def run_worker_merge(job: PodJob) -> dict[str, object]:
    """Merge the committed shards; the result is what the operator reads from the termination message."""
    manifest = merge_shards(job.config, job.out_dir)
    counts = manifest["counts"]
    return {
        "records": int(counts["accepted"]),
        "manifest": f"{job.output_uri.rstrip('/')}/manifest.json",
        "counts": counts,
    }


def run_synth(config_path: Path, *, merge: bool) -> str:
    """The whole command; returns the termination message."""
    job = PodJob.load(config_path)
    if merge:
        return json.dumps(run_worker_merge(job), separators=(",", ":"))
    result = eventloop.run(run_worker_shard(job, shard_index_from_env()))
    return json.dumps(
        {
            "shard": result.shard_index,
            "counts": result.counts.to_wire(),
            "reason": result.reason,
            "degenerateReviewers": result.degenerate_reviewers,
        }
    )
