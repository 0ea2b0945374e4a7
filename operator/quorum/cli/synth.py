"""`quorum synth`: run a SynthesisJob manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from quorum.cli.common import ManifestArg, not_available

app = typer.Typer(help="Run GRA data synthesis from a SynthesisJob manifest.", no_args_is_help=True)


@app.command()
def run(
    manifest: Path = ManifestArg,
    local: bool = typer.Option(False, "--local", help="Run on this machine instead of a cluster."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (local mode); default out/<name>."),
) -> None:
    """Run a SynthesisJob locally: models with an endpoint are used as they are, others are served by the
    packaged tiny model."""
    not_available("synth run")
