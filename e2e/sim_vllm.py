"""`vllm serve` for the pod runner: the simulated OpenAI-compatible server (quorum.llm.simulated) behind the
command line a Quorum model Deployment runs, so a GPU Deployment's pod really serves on the plane.

    python -m e2e.sim_vllm --responder package.module:factory -- serve MODEL --host=0.0.0.0 --port=8000 ...

`factory(served_model_name)` returns the responder, so one script serves every Model as itself (a router
may forward a client's body whose `model` is not the served name).

The vLLM flags that only concern GPUs (tensor parallelism, memory, context length) are accepted and ignored;
`--served-model-name` names the model the server answers for, as vLLM's does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quorum.llm.simulated import SimulatedBackend, load_responder, serve_forever


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, argparse.Namespace]:
    own = argparse.ArgumentParser(prog="sim_vllm")
    own.add_argument("--responder", required=True)
    own.add_argument("--max-running", type=int, default=0, help="requests served at once; more wait (queue)")
    own_args, rest = own.parse_known_args(argv)
    vllm = argparse.ArgumentParser(prog="vllm")
    vllm.add_argument("command", choices=["serve"])
    vllm.add_argument("model")
    vllm.add_argument("--host", default="127.0.0.1")
    vllm.add_argument("--port", type=int, default=8000)
    vllm.add_argument("--served-model-name", default=None)
    vllm_args, _ignored = vllm.parse_known_args([a for a in rest if a != "--"])
    return own_args, vllm_args


def main(argv: Sequence[str] | None = None) -> None:
    own, vllm = parse(sys.argv[1:] if argv is None else argv)
    served = vllm.served_model_name or vllm.model
    backend = SimulatedBackend(
        load_responder(own.responder)(served),
        models=[served],
        host=vllm.host,
        port=vllm.port,
        record=False,
        max_running=own.max_running,
    )
    serve_forever(backend)


if __name__ == "__main__":
    main()
