"""Local mode: a SynthesisJob manifest run on one machine, every shard in one process.

Models with an `endpoint` are used as they are; models Quorum would deploy with vLLM in a cluster are served
here by the packaged SmolLM2-135M-Instruct (one llama.cpp server shared by all of them).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from quorum.api.synthesis import SynthesisCounts
from quorum.gra.config import GraConfig
from quorum.gra.merge import merge_shards, write_manifest
from quorum.gra.seeds import OnBadSeed
from quorum.gra.shard import ShardResult, load_seed_set, run_shard
from quorum.gra.store import claim_output, shards_root
from quorum.llm import ClientPool, ModelEndpoint, RetryPolicy, eventloop
from quorum.locations import Location, as_location

log = logging.getLogger(__name__)

ShardProgressCallback = Callable[[int, str, int, int, SynthesisCounts], None]
"""(shard index, stage, done, total, shard counts): the shard callback with the shard named."""


class BackendUnavailable(RuntimeError):
    """A model endpoint did not answer before the run started; the message names the model and its URL."""


def check_backends(endpoints: list[ModelEndpoint], timeout: float = 10.0) -> None:
    """Ask every endpoint for `/models` before any work starts, so a wrong URL or key is one clear error and
    not a run of failed calls."""
    for endpoint in endpoints:
        url = endpoint.base_url.rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        try:
            answer = httpx.get(url, headers=headers, timeout=timeout)
        except httpx.HTTPError as error:
            raise BackendUnavailable(f"model {endpoint.name}: {url} is not reachable ({error})") from error
        if answer.status_code in (401, 403):
            raise BackendUnavailable(f"model {endpoint.name}: {url} refused the API key (HTTP {answer.status_code})")
        if answer.status_code >= 500:
            raise BackendUnavailable(f"model {endpoint.name}: {url} answered HTTP {answer.status_code}")


def reopen_failed_shards(out_dir: Path | Location) -> list[int]:
    """Shards that finished with nothing accepted and failed calls are run again on a rerun (a fixed URL
    must not resume into "already done"); a shard that accepted samples keeps its committed work."""
    reopened = []
    for shard in shards_root(out_dir).children("shard-*"):
        done_file = shard / "done.json"
        if not done_file.exists():
            continue
        counts = json.loads(done_file.read_text()).get("counts") or {}
        if int(counts.get("failed") or 0) > 0 and int(counts.get("accepted") or 0) == 0:
            shard.delete_tree()
            reopened.append(int(shard.name.removeprefix("shard-")))
    return reopened


@dataclass(frozen=True)
class LocalRun:
    manifest: dict[str, Any]
    out_dir: Location
    warnings: list[str]


def api_key_env(secret: str, key: str) -> str:
    """Local mode reads `apiKeySecretRef {name, key}` from env `QUORUM_SECRET_<NAME>_<KEY>` (upper-cased,
    non-alphanumerics as `_`): secrets stay out of the manifest on a laptop too."""
    return "QUORUM_SECRET_" + re.sub(r"[^A-Z0-9]+", "_", f"{secret}_{key}".upper())


@contextmanager
def local_endpoints(config: GraConfig) -> Iterator[list[ModelEndpoint]]:
    """Endpoints for every model, starting the packaged model server when some model has no endpoint."""
    spec = config.spec
    default_concurrency = spec.workers.concurrency_per_model
    endpoints: list[ModelEndpoint] = []
    served = [m for m in spec.models if m.endpoint is None]
    with ExitStack() as stack:
        for model in spec.models:
            if model.endpoint is None:
                continue
            key = None
            if model.endpoint.api_key_secret_ref is not None:
                ref = model.endpoint.api_key_secret_ref
                key = os.environ.get(api_key_env(ref.name, ref.key))
            endpoints.append(
                ModelEndpoint(
                    model.name,
                    model.endpoint.url,
                    model.endpoint.model,
                    key,
                    model.max_concurrency or default_concurrency,
                )
            )
        if served:
            from quorum.llm.local import LocalModelServer

            parallel = max(m.max_concurrency or default_concurrency for m in served)
            server = stack.enter_context(LocalModelServer(parallel=parallel, ctx_size=2048))
            endpoints.extend(server.endpoint(m.name, m.max_concurrency or default_concurrency) for m in served)
        yield endpoints


def pool_warnings(config: GraConfig) -> list[str]:
    spec = config.spec
    if len(spec.models) == 1 or spec.review.allow_same_model:
        return [
            "one model plays several roles (review.allowSameModel or a single-model pool): reviews are not "
            "independent and the manifest records independent: false"
        ]
    return []


def run_local(
    config: GraConfig,
    out_dir: Path | Location,
    *,
    on_bad_seed: OnBadSeed = OnBadSeed.FAIL,
    restart: bool = False,
    progress: ShardProgressCallback | None = None,
    endpoints: list[ModelEndpoint] | None = None,
) -> LocalRun:
    """Run every shard (resuming committed work), then merge. `endpoints` overrides model serving (tests)."""
    started = time.perf_counter()
    spec = config.spec
    out_dir = as_location(out_dir)
    claim_output(out_dir, config.fingerprint(), spec.to_wire(), restart=restart)
    seed_set = load_seed_set(config, on_bad_seed)
    warnings = pool_warnings(config)
    reopened = reopen_failed_shards(out_dir)
    if reopened:
        warnings.append(f"shards {reopened} accepted nothing because calls failed last time: running them again")
    for bad in seed_set.bad:
        warnings.append(f"skipped bad seed at line {bad.line}: {bad.reason}")
    config.prompt_book  # noqa: B018 - a broken prompt override stops the run before any model is started
    with local_endpoints(config) if endpoints is None else _given(endpoints) as resolved:
        check_backends(resolved)
        manifest = eventloop.run(_run_to_target(config, out_dir, resolved, seed_set, progress))
    manifest["timings"]["wallSeconds"] = round(time.perf_counter() - started, 3)
    write_manifest(out_dir, manifest)
    return LocalRun(manifest, out_dir, warnings)


@contextmanager
def _given(endpoints: list[ModelEndpoint]) -> Iterator[list[ModelEndpoint]]:
    yield endpoints


async def _run_to_target(
    config: GraConfig,
    out_dir: Location,
    endpoints: list[ModelEndpoint],
    seed_set: Any,
    progress: ShardProgressCallback | None,
) -> dict[str, Any]:
    """Shards, then the merge; while cross-shard dedup leaves fewer than `target` accepted and some shard has
    rounds left, raise every shard's share by the deficit and go on (the merge then trims to `target`)."""
    spec = config.spec
    shards = spec.workers.shards
    quota = math.ceil(spec.generation.target / shards)
    limit = asyncio.Semaphore(spec.workers.parallelism)
    async with ClientPool(endpoints, RetryPolicy.from_spec(spec.calls)) as pool:

        async def shard(index: int) -> ShardResult:
            report = None if progress is None else functools.partial(progress, index)
            async with limit:
                return await run_shard(
                    config, index, endpoints, out_dir, progress=report, pool=pool, seed_set=seed_set, quota=quota
                )

        while True:
            results = await asyncio.gather(*(shard(i) for i in range(shards)))
            usage = {name: used.as_dict() for name, used in pool.usage().items()}
            manifest = await asyncio.to_thread(merge_shards, config, out_dir, extra={"usage": usage})
            deficit = spec.generation.target - manifest["counts"]["accepted"]
            can_go_on = any("target share" in r.reason for r in results)
            if config.is_refine or deficit <= 0 or not can_go_on:
                return manifest
            log.info("cross-shard dedup left %d short of the target; topping up", deficit)
            quota += math.ceil(deficit / shards)
