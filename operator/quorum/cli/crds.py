"""`quorum crds`: write and check what is generated from the Python sources: the CRDs (crds/ and the
quorum-crds chart's templates) and the operator chart's RBAC rules."""

from __future__ import annotations

from pathlib import Path

import typer

from quorum.api.crd import generated_files, stale_files, write_files
from quorum.builders.chart import generated_chart_files
from quorum.cli.common import console

app = typer.Typer(
    help="Generate and check the CRDs (crds/, the quorum-crds chart) and the operator chart's RBAC rules.",
    no_args_is_help=True,
)

DirOption = typer.Option(Path("crds"), "--dir", help="Directory holding the CRD YAML files.")
ChartOption = typer.Option(
    Path("charts/quorum-crds"),
    "--chart",
    help="The quorum-crds Helm chart whose templates/ carry the same CRDs; skipped when it does not exist.",
)
OperatorChartOption = typer.Option(
    Path("charts/quorum"),
    "--operator-chart",
    help="The operator's Helm chart, whose RBAC rules are generated; skipped when it does not exist.",
)


def _files(directory: Path, chart: Path, operator_chart: Path) -> dict[Path, str]:
    files = generated_files(directory, chart if (chart / "Chart.yaml").is_file() else None)
    if (operator_chart / "Chart.yaml").is_file():
        files.update(generated_chart_files(operator_chart))
    return files


@app.command()
def generate(
    directory: Path = DirOption, chart: Path = ChartOption, operator_chart: Path = OperatorChartOption
) -> None:
    """Rewrite the CRD YAML files, the CRD chart's templates and the operator chart's RBAC rules."""
    for path in write_files(_files(directory, chart, operator_chart)):
        console.print(f"wrote {path}")


@app.command()
def check(directory: Path = DirOption, chart: Path = ChartOption, operator_chart: Path = OperatorChartOption) -> None:
    """Exit 1 when any generated file differs from what the Python sources generate."""
    stale = stale_files(_files(directory, chart, operator_chart))
    if stale:
        console.print(f"[red]stale:[/red] {', '.join(map(str, stale))}; run `quorum crds generate`")
        raise typer.Exit(1)
    console.print("CRDs and chart files are up to date")
