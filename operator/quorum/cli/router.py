"""`quorum router`: calibrate and serve an EnsembleRouter."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.api.resources import EnsembleRouter
from quorum.cli.common import ConfigAlias, ManifestFile, console, fail, manifest_path, read_resource

if TYPE_CHECKING:  # engine modules load inside the commands: `quorum operator run` never imports them
    from quorum.llm import ModelEndpoint
    from quorum.routing.artifact import Artifact
    from quorum.routing.config import TokenSource
    from quorum.routing.embedding import EmbeddingBatcher

app = typer.Typer(
    help="Calibrate, choose the pool of, and serve the Avengers router of an EnsembleRouter.", no_args_is_help=True
)

ARTIFACT_DIR_ENV = "QUORUM_ARTIFACT_DIR"


def _parse_backends(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            fail(f"--backend expects NAME=URL (with http:// or https://), got {pair!r}")
        overrides[name] = url
    return overrides


def _needs_local_model(spec: EnsembleRouterSpec, overrides: dict[str, str]) -> list[str]:
    """Models that local mode serves with the packaged tiny model: no endpoint, no URL override."""
    from quorum.routing.config import env_name

    return [
        m.name
        for m in spec.models
        if m.endpoint is None
        and m.name not in overrides
        and not os.environ.get(env_name("QUORUM_BACKEND_URL_", m.name))
    ]


@contextlib.contextmanager
def _endpoints(resource: EnsembleRouter, overrides: dict[str, str], local: bool) -> Iterator[list[ModelEndpoint]]:
    """Backend endpoints; in local mode one packaged-model server stands in for every model without one."""
    from quorum.routing.config import backend_endpoints

    spec = resource.spec
    missing = _needs_local_model(spec, overrides) if local else []
    if not missing:
        yield backend_endpoints(resource.metadata.name, spec, overrides=overrides)
        return
    from quorum.llm import ModelEndpoint
    from quorum.llm.local import LocalModelServer

    console.print(f"local mode: serving {', '.join(missing)} with the packaged tiny model on 127.0.0.1")
    with LocalModelServer() as server:
        local_overrides = {**overrides, **{name: server.base_url for name in missing}}
        endpoints = backend_endpoints(resource.metadata.name, spec, overrides=local_overrides)
        yield [
            ModelEndpoint(e.name, e.base_url, server.alias, e.api_key, server.parallel) if e.name in missing else e
            for e in endpoints
        ]


@app.command()
def calibrate(
    file: Path | None = ManifestFile,
    config: Path | None = ConfigAlias,
    out: Path = typer.Option(..., "--out", help="Directory for the calibration artifact bundle."),
    backend: list[str] = typer.Option([], "--backend", help="NAME=URL: base URL (with /v1) for a model."),
    pvc_root: Path | None = typer.Option(
        None, "--pvc-root", help="Where pvc://<claim>/ is mounted (default $QUORUM_PVC_ROOT or /data/pvc)."
    ),
    local: bool | None = typer.Option(
        None,
        "--local/--cluster",
        help="Serve models without an endpoint with the packaged tiny model (default: local outside a cluster).",
    ),
) -> None:
    """Embed, cluster and score every model on the calibration set; serve the held-out split through the
    router's own code to measure it; write the artifact and the calibration report (report.md, report.png)."""
    from quorum.locations import UnsupportedUri
    from quorum.routing.artifact import save_artifact
    from quorum.routing.calibrate import calibrate as run_calibration
    from quorum.routing.dataset import DatasetError, load_dataset
    from quorum.routing.embedding import EngineUnavailable, spec_embedder
    from quorum.routing.report import write_report

    config = manifest_path(file, config)
    resource = read_resource(config, EnsembleRouter)
    spec = resource.spec
    if local is None:
        local = "KUBERNETES_SERVICE_HOST" not in os.environ
    try:
        items = load_dataset(spec.calibration.dataset, base_dir=config.resolve().parent, pvc_root=pvc_root)
    except (DatasetError, UnsupportedUri) as error:
        fail(str(error))
    try:
        embedder = spec_embedder(spec)
    except EngineUnavailable as error:
        fail(str(error))
    with _endpoints(resource, _parse_backends(backend), local) as endpoints:
        console.print(f"calibrating {len(endpoints)} model(s) on {len(items)} questions")

        def progress(done: int, total: int) -> None:
            if done == total or done % max(1, total // 10) == 0:
                console.print(f"  answered {done}/{total}")

        artifact = asyncio.run(run_calibration(spec, endpoints, items, embedder, progress=progress))
    path = save_artifact(artifact, out)
    report = write_report(artifact, out)
    summary = {
        "artifact": str(path),
        "report": str(report),
        "checksum": artifact.checksum,
        "clusters": artifact.task_map.clusters,
        "clusterSizes": artifact.calibration.get("clusterSizes"),
        "questions": len(items),
        "failedCalls": artifact.calibration["failedCalls"],
        "evaluation": artifact.evaluation.get("overall", {}),
    }
    typer.echo(json.dumps(summary, indent=2))


@app.command("select-models")
def select_models(
    file: Path | None = ManifestFile,
    config: Path | None = ConfigAlias,
    artifact: Path = typer.Option(..., "--artifact", help="Calibration bundle directory."),
    keep: int = typer.Option(..., "--keep", min=1, help="Pool size |M| to keep."),
) -> None:
    """The paper's pool selection: s(m) = Σ_clusters 1/rank(m) over the artifact's task map; keep the top N."""
    from quorum.routing.artifact import ArtifactError, load_artifact
    from quorum.routing.taskmap import select_pool

    config = manifest_path(file, config)
    spec = read_resource(config, EnsembleRouter).spec
    try:
        task_map = load_artifact(artifact).task_map
    except ArtifactError as error:
        fail(str(error))
    unknown = sorted(set(task_map.models) - {m.name for m in spec.models})
    if unknown:
        fail(f"--artifact {artifact} scores models the manifest does not list: {', '.join(unknown)}")
    if keep > len(task_map.models):
        fail(f"--keep {keep} exceeds the {len(task_map.models)} calibrated models")
    scores, kept = select_pool(task_map, keep)
    width = max(len(m) for m in scores)
    typer.echo(f"{'model':<{width}}  {'s(m)':>8}  {'top-1 clusters':>14}  kept")
    firsts = [task_map.ranking(c)[0] for c in range(task_map.clusters)]
    for model, score in scores.items():
        mark = "yes" if model in kept else ""
        typer.echo(f"{model:<{width}}  {score:>8.3f}  {firsts.count(model):>14}  {mark}")
    typer.echo(f"kept pool ({keep} of {len(scores)}): {', '.join(kept)}")


@app.command()
def serve(
    file: Path | None = ManifestFile,
    config: Path | None = ConfigAlias,
    artifact: Path | None = typer.Option(
        None, "--artifact", help=f"Calibration bundle directory (default ${ARTIFACT_DIR_ENV} when set)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 in a pod)."),
    port: int | None = typer.Option(None, "--port", help="Port (default spec.router.port)."),
    backend: list[str] = typer.Option([], "--backend", help="NAME=URL: base URL (with /v1) for a model."),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="File with the bearer token clients must send (or $QUORUM_ROUTER_TOKEN[_FILE])."
    ),
    local: bool = typer.Option(
        False,
        "--local",
        help="Serve on this machine against the manifest's endpoints or the packaged tiny model.",
    ),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Serve without a token on a non-loopback --host (refused otherwise)."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Router processes sharing the port (SO_REUSEPORT); circuit breakers and concurrency caps are per "
        "worker, /metrics merges them all.",
    ),
) -> None:
    """Serve the OpenAI-compatible routing and voting API."""
    from quorum.routing.artifact import ArtifactError, load_artifact
    from quorum.routing.config import TokenSource

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per remote-embedder call otherwise
    config = manifest_path(file, config)
    resource = read_resource(config, EnsembleRouter)
    spec = resource.spec
    directory = artifact or (Path(os.environ[ARTIFACT_DIR_ENV]) if os.environ.get(ARTIFACT_DIR_ENV) else None)
    loaded = None
    if directory is not None:
        try:
            loaded = load_artifact(directory)
        except ArtifactError as error:
            fail(str(error))
    elif len(spec.models) > 1:
        console.print("[yellow]no --artifact: routing falls back to spec order and /readyz stays 503[/yellow]")
    try:
        token = TokenSource.from_environment(token_file)
        token.require_beyond_loopback(host, allow_none=no_auth)
    except ValueError as error:
        fail(str(error))
    listen = port or spec.router.port
    if workers > 1 and listen == 0:
        fail("--workers needs a fixed --port: each worker binds it with SO_REUSEPORT")
    with _endpoints(resource, _parse_backends(backend), local) as endpoints:
        auth = "bearer token required" if token.enabled else "no auth"
        shown = f" with {workers} workers" if workers > 1 else ""
        console.print(f"router {resource.metadata.name} on http://{host}:{listen}/v1 ({auth}){shown}")
        served = _Served(resource, endpoints, loaded, token, host, listen)
        if workers == 1:
            served.run(shared=None)
            return
        _serve_workers(served, workers)


def _serve_workers(served: _Served, workers: int) -> None:
    """Fork the workers over one fresh metrics directory (removed on the way out)."""
    import shutil
    import tempfile

    from quorum.routing.workers import run_workers

    metrics_dir = Path(tempfile.mkdtemp(prefix="quorum-router-metrics-"))

    def work() -> None:
        try:
            served.run(shared=metrics_dir)
        except typer.Exit as done:  # `fail` in a worker: its message is out, its status ends the worker
            raise SystemExit(done.exit_code) from None

    try:
        status = run_workers(workers, work)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if status:
        raise typer.Exit(status)


class _Served:
    """What one router process needs to serve; `run` builds the engine (and the embedder) in the process that
    serves, so each worker of several has its own event loop, connection pool and model session."""

    def __init__(
        self,
        resource: EnsembleRouter,
        endpoints: list[ModelEndpoint],
        loaded: Artifact | None,
        token: TokenSource,
        host: str,
        port: int,
    ) -> None:
        self.resource, self.endpoints, self.loaded = resource, endpoints, loaded
        self.token, self.host, self.port = token, host, port

    def run(self, shared: Path | None) -> None:
        """Serve until a signal; `shared` is the metrics directory of a worker among several."""
        from aiohttp import web

        from quorum.llm.eventloop import new_event_loop
        from quorum.llm.service import LISTEN_BACKLOG
        from quorum.routing.engine import RouterEngine
        from quorum.routing.metrics import RouterMetrics, share_across_processes
        from quorum.routing.server import build_app, freeze_after_start

        if shared is not None:
            share_across_processes(shared)
        spec = self.resource.spec
        engine = RouterEngine(
            self.resource.metadata.name,
            spec,
            self.endpoints,
            artifact=self.loaded,
            batcher=_batcher(self.loaded, spec),
            metrics=RouterMetrics(shared=shared is not None),
        )
        web.run_app(
            freeze_after_start(build_app(engine, self.token)),
            host=self.host,
            port=self.port,
            access_log=None,
            print=None,
            backlog=LISTEN_BACKLOG,
            reuse_port=shared is not None,
            loop=new_event_loop(),
        )


def _batcher(loaded: Artifact | None, spec: EnsembleRouterSpec) -> EmbeddingBatcher | None:
    """The query embedder when a task map routes several models (one ONNX/torch thread per process)."""
    if loaded is None or len(spec.models) <= 1:
        return None
    from quorum.embedding.onnx import THREADS_ENV as EMBED_THREADS_ENV
    from quorum.routing.embedding import (
        EmbedderMismatch,
        EmbeddingBatcher,
        EngineUnavailable,
        artifact_embedder,
        limit_torch_threads,
    )

    os.environ.setdefault(EMBED_THREADS_ENV, "1")  # ONNX Runtime reads it; one thread per replica
    try:
        embedder = artifact_embedder(loaded, spec)
    except (EmbedderMismatch, EngineUnavailable) as error:
        fail(str(error))
    if embedder.engine == "sentence-transformers":
        limit_torch_threads(int(os.environ[EMBED_THREADS_ENV]))
    return EmbeddingBatcher(embedder, max_batch=spec.embedding.batch_size)
