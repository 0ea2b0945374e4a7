"""`quorum crds`: write and check the CRDs generated from the pydantic models (crds/ and the CRD chart)."""

from __future__ import annotations

from pathlib import Path

import typer

from quorum.api.crd import generated_files, stale_files, write_files
from quorum.cli.common import console

app = typer.Typer(
    help="Generate and check the CustomResourceDefinitions in crds/ and the quorum-crds Helm chart.",
    no_args_is_help=True,
)

DirOption = typer.Option(Path("crds"), "--dir", help="Directory holding the CRD YAML files.")
ChartOption = typer.Option(
    Path("charts/quorum-crds"),
    "--chart",
    help="The quorum-crds Helm chart whose templates/ carry the same CRDs; skipped when it does not exist.",
)


def _files(directory: Path, chart: Path) -> dict[Path, str]:
    return generated_files(directory, chart if (chart / "Chart.yaml").is_file() else None)


@app.command()
def generate(directory: Path = DirOption, chart: Path = ChartOption) -> None:
    """Rewrite the CRD YAML files and the CRD chart's templates from the pydantic models."""
    for path in write_files(_files(directory, chart)):
        console.print(f"wrote {path}")


@app.command()
def check(directory: Path = DirOption, chart: Path = ChartOption) -> None:
    """Exit 1 when the CRD files or the CRD chart's templates differ from what the models generate."""
    stale = stale_files(_files(directory, chart))
    if stale:
        console.print(f"[red]stale:[/red] {', '.join(map(str, stale))}; run `quorum crds generate`")
        raise typer.Exit(1)
    console.print("CRDs are up to date")
