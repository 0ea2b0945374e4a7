"""GRA synthesis throughput, each figure against a baseline measured in the same run.

1. Simulated backends of fixed latency (a separate process): achieved request rate ÷ (models × concurrency ÷
   latency), in the steady middle of the run, and the pipeline's CPU time per sample.
2. The real tiny model (xllamacpp): whether the pipeline keeps the model busy, i.e. its completion tokens/s ÷ a
   replay of its own calls at the same concurrency without their dependencies (what is left is the cost of the
   dependent chain and its scheduling), and its slot occupancy; then ÷ a plain load generator of short
   free-text prompts at that concurrency (which also leaves out the pipeline's prefill and JSON-schema
   decoding); then the pipeline's timeline with its idle slot-time by cause (`synth_timeline.py`).
Dedup at scale is measured by `bench/dedup.py`.

Usage: python bench/synth_throughput.py [--quick] [--skip-model] [--model-only] [--samples N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from synth_timeline import Timeline, labelled

from quorum.api.synthesis import SynthesisCounts, SynthesisJobSpec
from quorum.gra import GraConfig, run_shard
from quorum.llm import ClientPool, ModelEndpoint, RetryPolicy, eventloop

SEEDS = "\n".join(
    f'{{"id": "s{i}", "domain": "{d}", "instruction": "Seed task {i} in {d}", "output": "answer {i}"}}'
    for i, d in enumerate(["math", "code", "reasoning", "knowledge", "writing"] * 8)
)


def spec_for(endpoints: list[ModelEndpoint], samples: int, concurrency: int, **review: object) -> SynthesisJobSpec:
    return SynthesisJobSpec.model_validate(
        {
            "models": [{"name": e.name, "endpoint": {"url": e.base_url, "model": e.model}} for e in endpoints],
            "seeds": {"uri": "file://seeds.jsonl"},
            "output": {"uri": "file://out"},
            "generation": {"target": samples, "rounds": 1, "maxTokens": 200},
            "review": {"reviewers": 2, "greyZone": "adjudicate", "maxTokens": 96, **review},
            "adjudication": {"maxTokens": 96},
            "postprocess": {"dedup": {"enabled": False}, "fillDigests": False},
            "workers": {"shards": 1, "parallelism": 1, "concurrencyPerModel": concurrency},
            "calls": {"timeoutSeconds": 600, "maxRetries": 1},
        }
    )


SAMPLE_STAGES = frozenset({"generate", "review-instruction", "review-response", "adjudicate"})
"""The per-sample chain. Calibration and seed digests run before it with fewer calls than the slots hold, and
`round`, `dedup` and `write` are not model calls: none of them belongs in the request rate."""


async def run_pipeline(
    spec: SynthesisJobSpec, endpoints: list[ModelEndpoint], folder: Path
) -> tuple[list[float], SynthesisCounts, int]:
    """Run one shard; returns the time of every finished call of the sample chain (from the progress callback),
    the shard's counts and the HTTP requests sent (repairs and retries included)."""
    done: list[float] = []
    last: dict[str, int] = {}

    def progress(stage: str, finished: int, total: int, counts: object) -> None:
        if stage in SAMPLE_STAGES and finished > last.get(stage, 0):
            done.extend([time.perf_counter()] * (finished - last.get(stage, 0)))
            last[stage] = finished

    config = GraConfig.from_spec(spec, base_dir=folder)
    async with ClientPool(endpoints, RetryPolicy.from_spec(spec.calls)) as pool:
        result = await run_shard(config, 0, endpoints, folder / "out", progress=progress, pool=pool)
        requests = sum(usage.requests + usage.retries for usage in pool.usage().values())
    return done, result.counts, requests


def steady_rate(times: list[float]) -> float:
    """Calls per second between the 10th and 90th percentile of the chain's completions (ramp-up and tail left
    out)."""
    times = sorted(times)
    low, high = times[len(times) // 10], times[(len(times) * 9) // 10]
    return (len(times) * 0.8) / (high - low)


def simulated(models: int, concurrency: int, latency: float, samples: int) -> None:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quorum.llm.simulated",
            "--responder",
            "quorum.gra.testing:default_responder",
            "--latency",
            str(latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        endpoints = [ModelEndpoint(f"m{i}", url, f"m{i}", None, concurrency) for i in range(models)]
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "seeds.jsonl").write_text(SEEDS)
            spec = spec_for(endpoints, samples, concurrency)
            cpu, wall = time.process_time(), time.perf_counter()
            times, counts, requests = eventloop.run(run_pipeline(spec, endpoints, Path(folder)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        server.terminate()
        server.wait()
    ideal = models * concurrency / latency
    rate = steady_rate(times)
    print(f"simulated: {models} models x {concurrency} concurrent, latency {latency * 1000:.0f} ms, {samples} samples")
    print(
        f"  chain calls {len(times)} in {wall:.1f}s; steady rate {rate:.0f}/s vs ideal {ideal:.0f}/s -> "
        f"saturation ratio {rate / ideal:.3f}"
    )
    print(f"  pipeline CPU {cpu * 1000 / samples:.2f} ms per sample ({cpu * 1000 / requests:.2f} ms per request)")
    print(
        f"  {requests} HTTP requests; samples failed {counts.failed}, failed calls {counts.failed_calls}, "
        f"accepted {counts.accepted}"
    )
    if counts.failed or counts.failed_calls:
        print("  WARNING: failed samples or calls: the rate above counts repairs and failures, not a healthy run")


T = TypeVar("T")
Call = tuple[list[dict[str, Any]], dict[str, Any]]
"""(messages, sampling) of one `ChatClient.chat`."""


async def load(
    endpoint: ModelEndpoint, concurrency: int, calls: list[Call], stages: list[str] | None = None
) -> Timeline:
    """`calls` sent by `concurrency` workers with no dependency between them, timed like the pipeline's (each
    labelled with `stages`, where given)."""
    timeline = Timeline(concurrency)
    async with ClientPool([endpoint], RetryPolicy(timeout_seconds=600)) as pool:
        timeline.attach(pool)
        client = pool[endpoint.name]
        queue = list(reversed(list(zip(calls, stages or ["free"] * len(calls), strict=True))))

        async def worker() -> None:
            while queue:
                (messages, sampling), stage = queue.pop()
                with labelled(stage):
                    await client.chat(messages, **sampling)

        timeline.started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        timeline.finished = time.perf_counter()
    return timeline


def plain_calls(requests: int, max_tokens: int) -> list[Call]:
    prompt = "Write a short paragraph about topic number {}."
    return [
        ([{"role": "user", "content": prompt.format(i)}], {"max_tokens": max_tokens, "temperature": 0.8})
        for i in range(requests)
    ]


def plain_rate(endpoint: ModelEndpoint, concurrency: int) -> float:
    """Tokens/s of short free-text prompts, four rounds of the slots (measured before and after the pipeline:
    on a shared machine one short measurement moves with the neighbours' load)."""
    return eventloop.run(load(endpoint, concurrency, plain_calls(4 * concurrency, 128))).token_rate()


def recorded(pool: ClientPool, calls: list[Call]) -> None:
    """Every `chat` of the pool's clients (structured calls and their repairs included) is appended to `calls`."""
    for client in pool:
        chat = client.chat

        async def recording(messages: Any, *, chat: Any = chat, **sampling: Any) -> Any:
            calls.append((list(messages), sampling))
            return await chat(messages, **sampling)

        client.chat = recording  # type: ignore[method-assign]


DEMO_SEEDS = Path(__file__).resolve().parent.parent / "examples" / "local" / "seeds.jsonl"


def model_seeds(per_domain: int = 2) -> str:
    """Part 2's seeds: the demo's real tasks, two per domain. A long run digests each seed once and calibrates
    once, so its steady state is the sample chain; with 40 seeds a short run would spend most of its calls on
    digests and calibration. Real tasks, not part 1's placeholders, so the tiny model's samples pass round 1 and
    the chain reaches its later stages (with the placeholders every sample was rejected after one review)."""
    taken: dict[str, int] = {}
    lines = []
    for line in DEMO_SEEDS.read_text().splitlines():
        domain = json.loads(line)["domain"]
        if taken.get(domain, 0) < per_domain:
            taken[domain] = taken.get(domain, 0) + 1
            lines.append(line)
    return "\n".join(lines)


def run_real_pipeline(endpoint: ModelEndpoint, concurrency: int, samples: int, calls: list[Call]) -> Timeline:
    """One shard of `samples` on the model, every call recorded into `calls` and timed."""
    timeline = Timeline(concurrency)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "seeds.jsonl").write_text(model_seeds())
        spec = spec_for([endpoint], samples, concurrency, allowSameModel=True, calibrationItems=3)

        async def run() -> None:
            config = GraConfig.from_spec(spec, base_dir=folder)
            async with ClientPool([endpoint], RetryPolicy.from_spec(spec.calls)) as pool:
                timeline.attach(pool)
                recorded(pool, calls)
                with timeline.watching():
                    await run_shard(config, 0, [endpoint], Path(folder) / "out", pool=pool)

        eventloop.run(run())
    return timeline


def on_fresh_server(concurrency: int, measure: Callable[[ModelEndpoint], T]) -> T:
    """`measure` against a warmed-up server of its own: llama.cpp keeps every prompt it has seen in its prompt
    cache (in the slots and in host memory), so a replay on the pipeline's server would skip the prefill the
    pipeline paid for."""
    from quorum.llm.local import LocalModelServer

    with LocalModelServer(parallel=concurrency, ctx_size=2048) as server:
        endpoint = server.endpoint("smollm", concurrency)
        eventloop.run(load(endpoint, concurrency, plain_calls(concurrency, 16)))  # warm-up: first calls run slow
        return measure(endpoint)


def real_model(concurrency: int, samples: int) -> None:
    """The pipeline against two loads at its concurrency, each on a fresh server: a replay of the pipeline's own
    calls without their dependencies (same prompts, same schemas, same seeds), which leaves only what the
    dependent chain and its scheduling cost, and short free-text prompts (the issue's first baseline, which
    also leaves out the pipeline's prefill of long prompts and its JSON-schema decoding)."""
    plain = [on_fresh_server(concurrency, lambda endpoint: plain_rate(endpoint, concurrency))]
    calls: list[Call] = []
    pipeline = on_fresh_server(concurrency, lambda endpoint: run_real_pipeline(endpoint, concurrency, samples, calls))
    stages = [call.stage for call in pipeline.calls]
    replay = on_fresh_server(concurrency, lambda endpoint: eventloop.run(load(endpoint, concurrency, calls, stages)))
    plain.append(on_fresh_server(concurrency, lambda endpoint: plain_rate(endpoint, concurrency)))
    raw = sum(plain) / len(plain)
    rate, middle = pipeline.token_rate(), pipeline.token_rate(steady=True)
    replay_rate, replay_middle = replay.token_rate(), replay.token_rate(steady=True)
    print(f"real model (SmolLM2-135M, xllamacpp, {concurrency} parallel), load average {os.getloadavg()[0]:.1f}:")
    print(
        f"  pipeline {samples} samples, {len(calls)} calls, {pipeline.tokens()} completion tokens in "
        f"{pipeline.wall:.1f}s: {rate:.1f} tokens/s over the run, {middle:.1f} in its steady middle"
    )
    print(
        f"  KEEPS THE MODEL BUSY: pipeline / replay of its own {len(calls)} calls at {concurrency} concurrent "
        f"without dependencies ({replay_rate:.1f} tokens/s, {replay_middle:.1f} in its middle, {replay.tokens()} "
        f"tokens): {rate / replay_rate:.3f} over the run, {middle / replay_middle:.3f} steady; slot occupancy "
        f"{pipeline.occupancy():.3f}, the replay's {replay.occupancy():.3f}: "
        f"{pipeline.occupancy() / replay.occupancy():.3f}"
    )
    print(
        f"  pipeline / plain load of short free-text prompts at {concurrency} concurrent ({plain[0]:.1f} tokens/s "
        f"before the pipeline, {plain[1]:.1f} after): {rate / raw:.3f} over the run, {middle / raw:.3f} steady; "
        f"the replay / plain {replay_rate / raw:.3f} is what long prompts (prefill) and JSON-schema decoding cost"
    )
    if abs(plain[0] - plain[1]) > 0.2 * max(plain):
        print(
            "  WARNING: the plain load's rate moved by more than a fifth during the run (the neighbours' load "
            "changed): the tokens/s ratios are unreliable, slot occupancy is not"
        )
    unreached = sorted(SAMPLE_STAGES - set(stages))
    if unreached:
        print(f"  WARNING: no sample reached {', '.join(unreached)}: the chain measured is shorter than GRA's")
    print("  the pipeline's timeline:")
    print("\n".join(pipeline.report()))
    print("  the replay's timeline (stages as the pipeline's calls had them):")
    print("\n".join(replay.report()[: -1 - len(replay.idle())]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--skip-model", action="store_true", help="leave out part 2 (the real model)")
    parser.add_argument("--model-only", action="store_true", help="leave out part 1 (the simulated backends)")
    parser.add_argument("--samples", type=int, help="samples of the real-model run (default 12, quick 4)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if not args.model_only:
        simulated(models=3, concurrency=64, latency=2.0, samples=300 if args.quick else 900)
    if not args.skip_model:
        real_model(concurrency=4, samples=args.samples or (4 if args.quick else 12))


if __name__ == "__main__":
    main()
