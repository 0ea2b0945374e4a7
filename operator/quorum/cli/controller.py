"""`quorum operator`: the kopf controller."""

from __future__ import annotations

import typer

from quorum.cli.common import not_available

app = typer.Typer(help="The Kubernetes operator for SynthesisJob and EnsembleRouter.", no_args_is_help=True)


@app.command()
def run(
    namespace: list[str] = typer.Option([], "--namespace", "-n", help="Namespaces to watch (default: all)."),
) -> None:
    """Run the operator against the current kubeconfig or in-cluster config."""
    not_available("operator run")
