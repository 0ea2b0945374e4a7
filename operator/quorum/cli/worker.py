"""`quorum worker`: the entrypoints the operator runs in pods."""

from __future__ import annotations

from pathlib import Path

import typer

from quorum.cli.common import not_available

app = typer.Typer(help="Pod entrypoints run by the operator (synthesis shards, calibration).", no_args_is_help=True)


@app.command()
def synth(config: Path = typer.Option(..., "--config", help="Mounted engine config.")) -> None:
    """Run the GRA stages over one shard (the Indexed Job's completion index)."""
    not_available("worker synth")


@app.command()
def calibrate(config: Path = typer.Option(..., "--config", help="Mounted engine config.")) -> None:
    """Run Avengers calibration and publish the artifact."""
    not_available("worker calibrate")
