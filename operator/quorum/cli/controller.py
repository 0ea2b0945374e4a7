"""`quorum operator`: the kopf controller."""

from __future__ import annotations

import asyncio
import logging

import typer

from quorum.builders.meta import DEFAULT_IMAGE
from quorum.cli.common import fail

app = typer.Typer(help="The Kubernetes operator for SynthesisJob and EnsembleRouter.", no_args_is_help=True)


@app.command()
def run(
    namespace: list[str] = typer.Option(
        [], "--namespace", "-n", help="Namespace to watch; repeat for several (default: all)."
    ),
    liveness: str | None = typer.Option(
        None, "--liveness", help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz."
    ),
    kubeconfig: str | None = typer.Option(
        None, "--kubeconfig", help="Kubeconfig (default: in-cluster, then KUBECONFIG)."
    ),
    image: str = typer.Option(
        DEFAULT_IMAGE, "--image", envvar="QUORUM_IMAGE", help="Default image of workers and routers."
    ),
    pod_annotation: list[str] = typer.Option(
        [], "--pod-annotation", help="KEY=VALUE added to every pod template; repeatable."
    ),
    peering: str | None = typer.Option(
        None, "--peering", help="kopf peering name for several replicas (default: standalone)."
    ),
    priority: int = typer.Option(0, "--priority", help="Peering priority of this replica."),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=1, max=65535, help="Serve Prometheus metrics at :PORT/metrics (the chart's)."
    ),
    metrics_address: str = typer.Option("0.0.0.0", "--metrics-address", help="Address the metrics server binds."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the operator against the current kubeconfig or in-cluster config."""
    from quorum.handlers.runner import OperatorOptions, run_operator

    annotations = {}
    for item in pod_annotation:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--pod-annotation {item!r}: expected KEY=VALUE")
        annotations[key] = value
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_address)
    options = OperatorOptions(
        namespaces=list(namespace),
        kubeconfig=kubeconfig,
        image=image,
        pod_annotations=annotations,
        liveness=liveness,
        peering=peering,
        priority=priority,
    )
    asyncio.run(run_operator(options))
