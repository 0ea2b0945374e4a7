"""`quorum router`: calibrate and serve an EnsembleRouter."""

from __future__ import annotations

from pathlib import Path

import typer

from quorum.cli.common import not_available

app = typer.Typer(help="Calibrate and serve the Avengers router of an EnsembleRouter.", no_args_is_help=True)


@app.command()
def calibrate(
    config: Path = typer.Option(..., "--config", exists=True, help="EnsembleRouter manifest."),
    out: Path = typer.Option(..., "--out", help="Directory for the calibration artifact bundle."),
) -> None:
    """Embed, cluster and score every model on the calibration set; evaluate on the held-out split."""
    not_available("router calibrate")


@app.command()
def serve(
    config: Path = typer.Option(..., "--config", exists=True, help="EnsembleRouter manifest."),
    local: bool = typer.Option(
        False,
        "--local",
        help="Serve on this machine against the manifest's endpoints or the packaged tiny model.",
    ),
) -> None:
    """Serve the OpenAI-compatible routing and voting API."""
    not_available("router serve")
