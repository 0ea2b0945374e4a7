"""`quorum crds`: write and check the CRDs generated from the pydantic models."""

from __future__ import annotations

from pathlib import Path

import typer

from quorum.api.crd import stale_crds, write_crds
from quorum.cli.common import console

app = typer.Typer(help="Generate and check the CustomResourceDefinitions in crds/.", no_args_is_help=True)

DirOption = typer.Option(Path("crds"), "--dir", help="Directory holding the CRD YAML files.")


@app.command()
def generate(directory: Path = DirOption) -> None:
    """Rewrite the CRD YAML files from the pydantic models."""
    for path in write_crds(directory):
        console.print(f"wrote {path}")


@app.command()
def check(directory: Path = DirOption) -> None:
    """Exit 1 when the CRD files differ from what the models generate."""
    stale = stale_crds(directory)
    if stale:
        console.print(f"[red]stale:[/red] {', '.join(stale)}; run `quorum crds generate`")
        raise typer.Exit(1)
    console.print("CRDs are up to date")
