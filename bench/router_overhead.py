"""Router overhead: added latency (p50/p99) and max throughput of Quorum's router next to vLLM's router.

Everything runs on 127.0.0.1 in separate processes: one simulated backend with a fixed latency
(`quorum.llm.simulated`), Quorum's router in pass-through mode (one model, strategy single), Quorum's router
with embedding routing (two models, a real task map, strategy single: one backend call per request, so the
difference is the embed + route step), and `vllm-router` (vLLM production-stack's Rust router, round robin
over a static worker list) in front of the same backend. Added latency = latency through a router minus
latency straight to the backend, measured in the same run. Bounded: a fixed number of sequential requests
and a fixed duration per throughput run.

    python bench/router_overhead.py [--latency 0.02] [--requests 300] [--seconds 5] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import numpy as np
import yaml

QUESTIONS = [
    *(f"Compute {a} + {a * 3 % 97}. Put the final number in \\boxed{{}}." for a in range(20)),
    *(f"Which city is the capital of country number {a}? A) X B) Y C) Z D) W" for a in range(20)),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {timeout:.0f}s")


@contextmanager
def process(command: list[str], ready_url: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    # stderr goes to a file: an unread pipe fills up and blocks a chatty child mid-benchmark
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log)
        try:
            try:
                wait_http(ready_url)
            except RuntimeError:
                proc.kill()
                log.seek(0)
                raise RuntimeError(f"{command[0]} failed: {log.read()[-2000:]}") from None
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def manifest(directory: Path, models: dict[str, str]) -> Path:
    document = {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "EnsembleRouter",
        "metadata": {"name": "bench"},
        "spec": {
            "models": [{"name": n, "endpoint": {"url": u, "model": "sim"}} for n, u in models.items()],
            "calibration": {"dataset": {"uri": "file://unused.jsonl"}, "clusters": 8},
            "voting": {"strategy": "single", "samples": 1},
            "router": {"maxConcurrency": 4096, "backendTimeoutSeconds": 30},
        },
    }
    path = directory / f"router-{len(models)}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def build_artifact(directory: Path, models: list[str]) -> Path:
    """A real task map over the benchmark questions (the scores only decide which model wins where)."""
    from quorum.routing.artifact import Artifact, save_artifact
    from quorum.routing.embedding import shared_embedder
    from quorum.routing.taskmap import build_task_map

    embedder = shared_embedder("packaged")
    vectors = embedder.encode(QUESTIONS)
    scores = np.array([[1.0, 0.0] if i < 20 else [0.0, 1.0] for i in range(len(QUESTIONS))])
    tasks = ["math" if i < 20 else "trivia" for i in range(len(QUESTIONS))]
    task_map, _ = build_task_map(vectors, scores, models, tasks, clusters=8, seed=42, shrinkage=5.0)
    artifact = Artifact(task_map, embedder.model_id, embedder.dimension, 42, 8, 5.0, "bench", "bench")
    artifact.embedder_engine = embedder.engine
    out = directory / "artifact"
    save_artifact(artifact, out)
    return out


def routing_decision_times(samples: int = 200) -> tuple[float, float]:
    """Embed one query and route it, in-process, one at a time (what a lone request pays)."""
    from quorum.routing.embedding import limit_torch_threads, shared_embedder
    from quorum.routing.taskmap import build_task_map

    limit_torch_threads(1)  # as the router does
    embedder = shared_embedder("packaged")
    vectors = embedder.encode(QUESTIONS)
    scores = np.random.default_rng(0).random((len(QUESTIONS), 4))
    task_map, _ = build_task_map(
        vectors, scores, ["a", "b", "c", "d"], ["t"] * len(QUESTIONS), clusters=8, seed=1, shrinkage=5
    )
    timings = []
    for i in range(samples):
        started = time.perf_counter()
        vector = embedder.encode([QUESTIONS[i % len(QUESTIONS)] + f" #{i}"])[0]
        task_map.route(vector, blended=1, beta=6.0, select=1, available=task_map.models)
        timings.append(time.perf_counter() - started)
    return percentile(timings, 50), percentile(timings, 99)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def body(i: int) -> dict:
    return {"model": "sim", "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], "max_tokens": 16}


async def latencies(url: str, count: int) -> list[float]:
    async with aiohttp.ClientSession() as http:
        for i in range(10):  # warm-up: connections, caches
            async with http.post(url, json=body(i)) as r:
                await r.read()
        timings = []
        for i in range(count):
            started = time.perf_counter()
            async with http.post(url, json=body(i)) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{url}: HTTP {r.status}: {await r.text()}")
            timings.append(time.perf_counter() - started)
        return timings


async def throughput(url: str, seconds: float, concurrency: int) -> tuple[float, int]:
    done = errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker(offset: int) -> None:
            nonlocal done, errors
            i = offset
            while time.perf_counter() < deadline:
                try:
                    async with http.post(url, json=body(i), timeout=aiohttp.ClientTimeout(total=30)) as r:
                        await r.read()
                        done += r.status == 200
                        errors += r.status != 200
                except (TimeoutError, aiohttp.ClientError):
                    errors += 1
                i += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return done / (time.perf_counter() - started), errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02, help="backend latency in seconds")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per latency run")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--concurrency", type=int, default=64, help="clients in the throughput runs")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quorum = str(Path(sys.executable).with_name("quorum"))
    vllm_router = shutil.which("vllm-router") or str(Path(sys.executable).with_name("vllm-router"))

    sys.stdout.reconfigure(line_buffering=True)
    p50, p99 = routing_decision_times()
    print(
        f"conditions: {os.cpu_count()} CPUs (shared with other work; load average {os.getloadavg()[0]:.1f}), "
        f"backend latency {args.latency * 1000:.0f} ms, {args.requests} sequential requests, "
        f"{args.seconds:.0f} s × {args.concurrency} clients for throughput"
    )
    print(
        "routing decision (embed + route, in-process, one query at a time): "
        f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"
    )

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        backend_port = free_port()
        backend = f"http://127.0.0.1:{backend_port}"
        sim = [
            sys.executable,
            "-m",
            "quorum.llm.simulated",
            "--latency",
            str(args.latency),
            "--port",
            str(backend_port),
        ]
        results: dict[str, dict[str, float]] = {}
        with process(sim, backend + "/health"):
            targets: dict[str, tuple[list[str], str]] = {}
            single_port, routed_port, vllm_port = free_port(), free_port(), free_port()
            targets["quorum pass-through"] = (
                [
                    quorum,
                    "router",
                    "serve",
                    "--config",
                    str(manifest(directory, {"solo": backend + "/v1"})),
                    "--port",
                    str(single_port),
                ],
                f"http://127.0.0.1:{single_port}",
            )
            two = manifest(directory, {"left": backend + "/v1", "right": backend + "/v1"})
            targets["quorum embedding-routed"] = (
                [
                    quorum,
                    "router",
                    "serve",
                    "--config",
                    str(two),
                    "--artifact",
                    str(build_artifact(directory, ["left", "right"])),
                    "--port",
                    str(routed_port),
                ],
                f"http://127.0.0.1:{routed_port}",
            )
            targets["vllm-router"] = (
                [
                    vllm_router,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(vllm_port),
                    "--worker-urls",
                    backend,
                    "--policy",
                    "round_robin",
                    "--log-level",
                    "warning",
                    "--disable-retries",
                ],
                f"http://127.0.0.1:{vllm_port}",
            )
            direct = asyncio.run(latencies(backend + "/v1/chat/completions", args.requests))
            direct_rps, _ = asyncio.run(throughput(backend + "/v1/chat/completions", args.seconds, args.concurrency))
            results["direct (no router)"] = {
                "p50": percentile(direct, 50),
                "p99": percentile(direct, 99),
                "rps": direct_rps,
                "errors": 0,
            }
            for name, (command, base) in targets.items():
                ready = base + ("/readyz" if name.startswith("quorum") else "/health")
                try:
                    with process(command, ready):
                        timings = asyncio.run(latencies(base + "/v1/chat/completions", args.requests))
                        rps, errors = asyncio.run(
                            throughput(base + "/v1/chat/completions", args.seconds, args.concurrency)
                        )
                except (RuntimeError, FileNotFoundError) as error:
                    print(f"{name}: could not run: {error}")
                    continue
                print(f"  measured {name}", flush=True)
                results[name] = {
                    "p50": percentile(timings, 50),
                    "p99": percentile(timings, 99),
                    "rps": rps,
                    "errors": errors,
                }

    base_p50, base_p99 = results["direct (no router)"]["p50"], results["direct (no router)"]["p99"]
    print(f"\n{'path':28} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8} {'req/s':>8} {'errors':>6}")
    for name, r in results.items():
        added50, added99 = (r["p50"] - base_p50) * 1000, (r["p99"] - base_p99) * 1000
        print(
            f"{name:28} {r['p50'] * 1000:8.2f} {r['p99'] * 1000:8.2f} {added50:8.2f} {added99:8.2f} "
            f"{r['rps']:8.0f} {r['errors']:6d}"
        )
    if "vllm-router" in results:
        v = results["vllm-router"]
        v50, v99 = v["p50"] - base_p50, v["p99"] - base_p99
        print("\nratios against vllm-router (added latency: lower is better; throughput: higher is better)")
        for name in ("quorum pass-through", "quorum embedding-routed"):
            if name in results:
                r = results[name]
                print(
                    f"  {name:26} added p50 ×{(r['p50'] - base_p50) / max(v50, 1e-6):.2f}, "
                    f"added p99 ×{(r['p99'] - base_p99) / max(v99, 1e-6):.2f}, "
                    f"throughput ×{r['rps'] / max(v['rps'], 1e-6):.2f}"
                )
    print(json.dumps({k: {m: round(x, 5) for m, x in r.items()} for k, r in results.items()}))


if __name__ == "__main__":
    main()
