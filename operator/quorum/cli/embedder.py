"""`quorum embedder`: export the packaged MiniLM to ONNX once, or serve a local embedder as `/v1/embeddings`."""

from __future__ import annotations

import asyncio

import typer

from quorum.cli.common import console

app = typer.Typer(help="The shared embedder: ONNX export and an OpenAI-compatible embeddings server.")


@app.command()
def export(
    model: str = typer.Option("packaged", "--model", help="Local model id or path (default: the packaged MiniLM)."),
) -> None:
    """Export the model's transformer to ONNX under $QUORUM_EMBEDDER_CACHE (idempotent; needs torch)."""
    from pathlib import Path

    from quorum.embedding import model_path
    from quorum.embedding.onnx import export as export_graph

    path = export_graph(Path(model_path(model)))
    typer.echo(str(path))


@app.command()
def serve(
    model: str = typer.Option("packaged", "--model", help="Local model id or path (default: the packaged MiniLM)."),
    engine: str = typer.Option("onnxruntime", "--engine", help="onnxruntime or sentence-transformers."),
    served_name: str = typer.Option(
        "sentence-transformers/all-MiniLM-L6-v2", "--served-name", help="Model name reported by the server."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 in a pod)."),
    port: int = typer.Option(8080, "--port", help="Port (0 picks a free one)."),
) -> None:
    """Serve POST /v1/embeddings (OpenAI shape) from a local embedder, batching concurrent requests."""
    from quorum.embedding import load_embedder
    from quorum.embedding.server import EmbeddingService

    service = EmbeddingService(load_embedder(model, engine), served_name, host, port)

    async def run() -> None:
        async with service:
            console.print(
                f"embeddings ({engine}, {service.embedder.dimension}-d) on {service.base_url}", soft_wrap=True
            )
            await asyncio.Event().wait()

    asyncio.run(run())
