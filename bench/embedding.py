"""The shared embedder: ONNX Runtime against sentence-transformers, and embedding-routed throughput with the
in-process embedder against a remote one (`quorum embedder serve`), each next to its limit in the same run.

1. The packaged MiniLM through both engines, one thread each (as the router runs): sentences/s at batch 64 on
   1,000 texts, and the cosine between the two engines' vectors of every text.
2. The router with embedding routing (two models, strategy single) over one simulated backend, with the
   in-process embedder and with the remote one: requests/s at `--concurrency`, divided by the ONNX embedder's
   own batch-64 throughput on the very question the load sends (the limit a routed request cannot beat on
   one embedder thread; the mixed corpus of step 1 is longer on average, so it is no limit for this load).

Usage: python bench/embedding.py [--seconds 10] [--concurrency 64] [--skip-routing]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("QUORUM_EMBED_THREADS", "1")

import router_overhead as peers

from quorum.embedding import ONNXRUNTIME, SENTENCE_TRANSFORMERS, limit_torch_threads, load_embedder

WORDS = [
    "model",
    "router",
    "vote",
    "cluster",
    "question",
    "answer",
    "seed",
    "sample",
    "review",
    "score",
    "kernel",
    "pod",
    "batch",
    "token",
]


def texts(count: int = 1000) -> list[str]:
    """Short questions and longer paragraphs, deterministic."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        words = rng.choice(WORDS, size=int(rng.integers(4, 120)))
        out.append(f"Question {i}: " + " ".join(words) + ("?" if i % 2 else "."))
    return out


def throughput(embedder, corpus: list[str]) -> float:
    embedder.encode(corpus[:64])  # warm-up
    started = time.perf_counter()
    embedder.encode(corpus, batch_size=64)
    return len(corpus) / (time.perf_counter() - started)


def engines() -> None:
    """Prints both engines' throughput and their agreement on the mixed corpus."""
    corpus = texts()
    limit_torch_threads(1)
    reference = load_embedder("packaged", SENTENCE_TRANSFORMERS)
    onnx = load_embedder("packaged", ONNXRUNTIME)
    st_rate, onnx_rate = throughput(reference, corpus), throughput(onnx, corpus)
    cosine = (reference.encode(corpus) * onnx.encode(corpus)).sum(axis=1)
    print(
        f"embedder, 1 thread, batch 64, {len(corpus)} texts: sentence-transformers {st_rate:.0f}/s, onnxruntime "
        f"{onnx_rate:.0f}/s -> ratio {onnx_rate / st_rate:.2f}; cosine between engines min {cosine.min():.6f}, "
        f"mean {cosine.mean():.6f}; load average {os.getloadavg()[0]:.1f}"
    )


def question_limit() -> float:
    """ONNX batch-64 sentences/s on the routed load's own question, one thread: the routed path's limit."""
    rate = throughput(load_embedder("packaged", ONNXRUNTIME), [peers.QUESTIONS[0]] * 1000)
    print(f"limit: onnxruntime, 1 thread, batch 64, the routed question: {rate:.0f}/s")
    return rate


def routed(limit: float, seconds: float, concurrency: int) -> None:
    from quorum.embedding.server import EmbeddingServerProcess

    quorum = str(Path(sys.executable).with_name("quorum"))
    loadgen = str(peers.ensure_loadgen())
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        port = peers.free_port()
        backend = f"http://127.0.0.1:{port}"
        body = directory / "body.json"
        body.write_text(json.dumps({"model": "bench", "messages": [{"role": "user", "content": peers.QUESTIONS[0]}]}))
        serve = [loadgen, "serve", "--port", str(port), "--latency", "20ms"]
        with peers.process(serve, backend + "/health"), EmbeddingServerProcess() as server:
            two = peers.manifest(directory, {"left": backend + "/v1", "right": backend + "/v1"})
            artifact = peers.build_artifact(directory, ["left", "right"])
            remote_manifest, remote_artifact = peers.remote_copy(directory, artifact, two, server.base_url)
            for name, (manifest, bundle) in {
                "in-process": (two, artifact),
                "remote": (remote_manifest, remote_artifact),
            }.items():
                router_port = peers.free_port()
                command = peers.quorum_target(quorum, manifest, router_port, bundle)
                with peers.process(command, f"http://127.0.0.1:{router_port}/readyz"):
                    url = f"http://127.0.0.1:{router_port}/v1/chat/completions"
                    result = peers.load(url, body, concurrency, seconds=seconds)
                print(
                    f"embedding-routed, {name} embedder, c={concurrency}: {result['rps']:.0f} req/s "
                    f"({result['errors']:.0f} errors) -> {result['rps'] / limit:.2f} x the embedder's own batch "
                    f"throughput; load average {result['load']:.1f}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--skip-routing", action="store_true")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    engines()
    if not args.skip_routing:
        routed(question_limit(), args.seconds, args.concurrency)


if __name__ == "__main__":
    main()
