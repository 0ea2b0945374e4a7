"""Router overhead: Quorum's router next to vLLM production-stack's Rust router (vllm-router), same run.

A compiled backend and load generator (`bench/loadgen`, Go, built by `make setup` into
`.cache/bin/loadgen`) take Python out of the direct path: the backend answers after a fixed latency and the
load generator keeps one keep-alive connection per client. Targets, each in front of the same backend:

- direct (no router), the reference every "added" figure subtracts;
- Quorum pass-through: one model, strategy single (one sample, no vote: the body is forwarded);
- vllm-router: round robin over a static worker list, retries off;
- Quorum embedding-routed (unless --skip-routed): two models and a real task map, strategy single, so the
  difference to pass-through is the embed + route step;
- Quorum embedding-routed with the remote embedder (unless --skip-routed): the same task map, embedded by a
  separate `quorum embedder serve` process (one thread, same model and engine) over /v1/embeddings, as a pod
  would use `spec.embedding.endpoint`.

Quorum's pass-through router runs with `--workers` = the machine's CPU count (`--quorum-workers`), as
vllm-router spreads its work over a thread per core; its CPU and peak memory are summed over the worker
processes. The embedding-routed targets run one process.

Figures: added p50 at c=1 (sequential requests), throughput at c=256, and p99/errors with 1,000 concurrent
connections, plus the kernel's listen-queue overflows during that run. The load average is printed beside
every figure: on a shared machine only the ratios measured in one run mean anything.

    python bench/router_overhead.py [--latency 0.02] [--requests 400] [--seconds 5] [--quorum-src DIR]
        [--quorum-workers N]

`--quorum-src` runs Quorum's router from another source tree (e.g. `git archive` of main) for before/after
(with `--quorum-workers 1` for a tree older than `--workers`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
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

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstat import cpu_seconds, peak_rss_mb, process_tree

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT / ".cache" / "bin" / "loadgen"
ROUTED_REMOTE = "quorum routed, remote emb."
RSS_LIMIT_MB = 400.0
"""Issue 17's goal for the embedding-routed router's resident memory; every router's peak is shown against it."""
QUESTIONS = [
    *(f"Compute {a} + {a * 3 % 97}. Put the final number in \\boxed{{}}." for a in range(20)),
    *(f"Which city is the capital of country number {a}? A) X B) Y C) Z D) W" for a in range(20)),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 180.0) -> None:
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


def ensure_loadgen() -> Path:
    """`make setup` builds it; a checkout without it builds it here with the machine's Go toolchain."""
    if not LOADGEN.exists():
        go = shutil.which("go") or "/usr/local/go/bin/go"
        LOADGEN.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([go, "build", "-o", str(LOADGEN), "."], cwd=ROOT / "bench" / "loadgen", check=True)
    return LOADGEN


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


def remote_copy(directory: Path, artifact_dir: Path, manifest_path: Path, url: str) -> tuple[Path, Path]:
    """The same task map recorded as calibrated through an embeddings server (same model and engine)."""
    from quorum.routing.artifact import load_artifact, save_artifact

    artifact = dataclasses.replace(load_artifact(artifact_dir), embedder_engine="remote", embedder_url=url)
    save_artifact(artifact, directory / "artifact-remote")
    document = yaml.safe_load(manifest_path.read_text())
    document["spec"]["embedding"] = {"endpoint": {"url": url, "model": artifact.embedder}}
    remote = directory / "router-remote.yaml"
    remote.write_text(yaml.safe_dump(document))
    return remote, directory / "artifact-remote"


def listen_overflows() -> int:
    """TcpExt ListenOverflows: connections the kernel dropped because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            return int(dict(zip(header.split()[1:], values.split()[1:], strict=True)).get("ListenOverflows", 0))
    return 0


def load(url: str, body: Path, concurrency: int, *, seconds: float = 0, requests: int = 0) -> dict[str, float]:
    command = [str(LOADGEN), "load", "--url", url, "--body", str(body), "--concurrency", str(concurrency)]
    command += ["--requests", str(requests)] if requests else ["--duration", f"{seconds}s"]
    command += ["--warmup", "3" if concurrency > 1 else "20"]
    result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    return {**result, "load": os.getloadavg()[0]}


def measure(
    url: str, body: Path, args: argparse.Namespace, pid: int | None = None, helper: int | None = None
) -> dict[str, float]:
    """Every figure of one target; `pid` is its router process (None for the direct path), `helper` a process
    the path needs besides it (the remote embedder), whose peak memory is reported with the router's."""
    sequential = load(url, body, 1, requests=args.requests)
    processes = process_tree(pid)  # the router and its workers, if it has any
    cpu = sum(cpu_seconds(p) for p in processes)
    busy = load(url, body, args.concurrency, seconds=args.seconds)
    cpu_per_request = (sum(cpu_seconds(p) for p in processes) - cpu) / max(busy["requests"], 1)
    overflows = listen_overflows()
    crowd = load(url, body, args.connections, seconds=args.seconds)
    return {
        "p50": sequential["p50"],
        "load_c1": sequential["load"],
        "rps": busy["rps"],
        "cpu_ms": cpu_per_request * 1000,
        "errors_busy": busy["errors"],
        "load_busy": busy["load"],
        "crowd_p99": crowd["p99"],
        "crowd_rps": crowd["rps"],
        "crowd_errors": crowd["errors"],
        "overflows": listen_overflows() - overflows,
        "load_crowd": crowd["load"],
        # after all three runs: VmHWM keeps the highest mark (summed over workers: an upper bound)
        "peak_mb": sum(peak_rss_mb(p) for p in processes) if processes else math.nan,
        "helper_peak_mb": peak_rss_mb(helper),
    }


def quorum_target(quorum: str, config: Path, port: int, artifact: Path | None = None, workers: int = 1) -> list[str]:
    command = [quorum, "router", "serve", str(config), "--port", str(port)]
    command += ["--workers", str(workers)] if workers > 1 else []  # a tree before `--workers` runs one process
    return command + (["--artifact", str(artifact)] if artifact is not None else [])


def memory(results: dict[str, dict[str, float]]) -> None:
    """Each router's peak RSS (VmHWM over all its runs) against the routed-path goal; for the remote-embedder
    path the embedder process's peak is added, since that path needs both."""
    print(f"\npeak RSS (VmHWM) of the router process (summed over its workers), ÷ the {RSS_LIMIT_MB:.0f} MB goal")
    for name, r in results.items():
        if math.isnan(r["peak_mb"]):
            continue
        line = f"  {name:26} {r['peak_mb']:6.0f} MB  ×{r['peak_mb'] / RSS_LIMIT_MB:.2f}"
        if not math.isnan(r["helper_peak_mb"]):
            total = r["peak_mb"] + r["helper_peak_mb"]
            line += (
                f"   (+ embedder process {r['helper_peak_mb']:.0f} MB = {total:.0f} MB, ×{total / RSS_LIMIT_MB:.2f})"
            )
        print(line)


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    base = results["direct (no router)"]
    columns = [
        ("c=1 +p50 ms", lambda r: f"{(r['p50'] - base['p50']) * 1000:.2f}"),
        ("load", lambda r: f"{r['load_c1']:.1f}"),
        (f"c={args.concurrency} req/s", lambda r: f"{r['rps']:.0f}"),
        ("CPU ms/req", lambda r: f"{r['cpu_ms']:.3f}"),
        ("err", lambda r: f"{r['errors_busy']:.0f}"),
        ("load", lambda r: f"{r['load_busy']:.1f}"),
        (f"c={args.connections} p99 ms", lambda r: f"{r['crowd_p99'] * 1000:.1f}"),
        ("req/s", lambda r: f"{r['crowd_rps']:.0f}"),
        ("err", lambda r: f"{r['crowd_errors']:.0f}"),
        ("overflows", lambda r: f"{r['overflows']:.0f}"),
        ("load", lambda r: f"{r['load_crowd']:.1f}"),
        ("peak RSS MB", lambda r: "-" if math.isnan(r["peak_mb"]) else f"{r['peak_mb']:.0f}"),
    ]
    print("\n" + f"{'path':26}" + "".join(f" {title:>{len(title) + 1}}" for title, _ in columns))
    for name, r in results.items():
        print(f"{name:26}" + "".join(f" {cell(r):>{len(title) + 1}}" for title, cell in columns))
    memory(results)
    peer = results.get("vllm-router")
    if peer is None:
        return
    if "quorum embedding-routed" in results and ROUTED_REMOTE in results:
        local, remote = results["quorum embedding-routed"], results[ROUTED_REMOTE]
        print(
            f"\nremote embedder vs in-process: c={args.concurrency} throughput ×{remote['rps'] / local['rps']:.2f} "
            f"({remote['rps']:.0f} vs {local['rps']:.0f} req/s), "
            f"router CPU/req ×{remote['cpu_ms'] / local['cpu_ms']:.2f}"
        )
    print("\nratios against vllm-router in this run (added p50: lower is better; throughput: higher is better)")
    for name in ("quorum pass-through", "quorum embedding-routed", ROUTED_REMOTE):
        if name in results:
            r = results[name]
            added, peer_added = r["p50"] - base["p50"], peer["p50"] - base["p50"]
            print(
                f"  {name:26} added p50 {added * 1000:.2f} ms vs {peer_added * 1000:.2f} ms, "
                f"throughput ×{r['rps'] / max(peer['rps'], 1e-6):.2f}, "
                f"{args.connections}-connection p99 ×{r['crowd_p99'] / max(peer['crowd_p99'], 1e-9):.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02, help="backend latency in seconds")
    parser.add_argument("--requests", type=int, default=400, help="sequential requests for the c=1 latency")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each concurrent run")
    parser.add_argument("--concurrency", type=int, default=256, help="clients in the throughput run")
    parser.add_argument("--connections", type=int, default=1000, help="clients in the many-connections run")
    parser.add_argument("--skip-routed", action="store_true", help="leave out the embedding-routed target")
    parser.add_argument("--quorum-src", type=Path, help="run Quorum's router from this source tree (PYTHONPATH)")
    parser.add_argument(
        "--quorum-workers", type=int, default=os.cpu_count() or 1, help="worker processes of the pass-through router"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.stdout.reconfigure(line_buffering=True)
    ensure_loadgen()
    quorum = str(Path(sys.executable).with_name("quorum"))
    vllm_router = shutil.which("vllm-router") or str(Path(sys.executable).with_name("vllm-router"))
    quorum_env = {"PYTHONPATH": str(args.quorum_src.resolve())} if args.quorum_src else None
    print(
        f"conditions: {os.cpu_count()} CPUs (shared; load average {os.getloadavg()[0]:.1f} at start), backend "
        f"latency {args.latency * 1000:.0f} ms (Go), {args.requests} sequential requests, {args.seconds:.0f} s at "
        f"c={args.concurrency} and c={args.connections}; quorum from {args.quorum_src or 'this checkout'}, "
        f"pass-through with {args.quorum_workers} worker process(es) (vllm-router: its thread pool), "
        "embedding-routed with one"
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        port = free_port()
        backend = f"http://127.0.0.1:{port}"
        bodies = {}
        for model in ("sim", "bench"):
            bodies[model] = directory / f"{model}.json"
            message = {"role": "user", "content": QUESTIONS[0]}
            bodies[model].write_text(json.dumps({"model": model, "messages": [message], "max_tokens": 16}))
        serve = [str(LOADGEN), "serve", "--port", str(port), "--latency", f"{args.latency * 1000:.3f}ms"]
        results: dict[str, dict[str, float]] = {}
        with process(serve, backend + "/health"), contextlib.ExitStack() as stack:
            results["direct (no router)"] = measure(backend + "/v1/chat/completions", bodies["sim"], args)
            print("  measured direct", flush=True)
            targets: dict[str, tuple[list[str], str, str, dict[str, str] | None]] = {}
            helpers: dict[str, int | None] = {}
            single_port, routed_port, vllm_port, remote_port = free_port(), free_port(), free_port(), free_port()
            single = manifest(directory, {"solo": backend + "/v1"})
            targets["quorum pass-through"] = (
                quorum_target(quorum, single, single_port, workers=args.quorum_workers),
                "readyz",
                "bench",
                quorum_env,
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
                "health",
                "sim",
                None,
            )
            if not args.skip_routed:
                two = manifest(directory, {"left": backend + "/v1", "right": backend + "/v1"})
                artifact = build_artifact(directory, ["left", "right"])
                targets["quorum embedding-routed"] = (
                    quorum_target(quorum, two, routed_port, artifact),
                    "readyz",
                    "bench",
                    quorum_env,
                )
                from quorum.embedding.server import EmbeddingServerProcess

                server = stack.enter_context(EmbeddingServerProcess())
                helpers[ROUTED_REMOTE] = server.pid
                remote_manifest, remote_artifact = remote_copy(directory, artifact, two, server.base_url)
                targets[ROUTED_REMOTE] = (
                    quorum_target(quorum, remote_manifest, remote_port, remote_artifact),
                    "readyz",
                    "bench",
                    quorum_env,
                )
            ports = {
                "quorum pass-through": single_port,
                "vllm-router": vllm_port,
                "quorum embedding-routed": routed_port,
                ROUTED_REMOTE: remote_port,
            }
            for name, (command, ready, model, env) in targets.items():
                base = f"http://127.0.0.1:{ports[name]}"
                try:
                    with process(command, f"{base}/{ready}", env) as proc:
                        url = base + "/v1/chat/completions"
                        results[name] = measure(url, bodies[model], args, proc.pid, helpers.get(name))
                except (RuntimeError, FileNotFoundError) as error:
                    print(f"{name}: could not run: {error}")
                    continue
                print(f"  measured {name}", flush=True)
    report(results, args)
    figures = {k: {m: None if math.isnan(x) else round(x, 5) for m, x in r.items()} for k, r in results.items()}
    print(json.dumps(figures))  # strict JSON: a figure a path does not have (no router, no helper) is null


if __name__ == "__main__":
    main()
