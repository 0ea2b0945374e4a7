"""The `quorum` entrypoint: assembles the sub-applications."""

from __future__ import annotations

import typer

from quorum import __version__
from quorum.cli import controller, crds, embedder, router, synth, worker
from quorum.cli.validate import validate

app = typer.Typer(
    name="quorum",
    help="Quorum: many small open language models working together on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(crds.app, name="crds")
app.add_typer(synth.app, name="synth")
app.add_typer(router.app, name="router")
app.add_typer(embedder.app, name="embedder")
app.add_typer(worker.app, name="worker")
app.add_typer(controller.app, name="operator")
app.command()(validate)


@app.command()
def version() -> None:
    """Print the Quorum version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
