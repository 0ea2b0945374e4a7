"""`quorum crds`: write and check what is generated from the Python sources: the CRDs (crds/ and the
quorum-crds chart's templates) and the operator chart's RBAC rules."""

from __future__ import annotations

from pathlib import Path

import typer

from quorum.api import reference
from quorum.api.crd import generated_files, stale_files, write_files
from quorum.builders.chart import generated_chart_files
from quorum.cli.common import console

app = typer.Typer(
    help="Generate and check the CRDs (crds/, the quorum-crds chart), the operator chart's RBAC rules and the "
    "README's field reference.",
    no_args_is_help=True,
)

DirOption = typer.Option(Path("crds"), "--dir", help="Directory holding the CRD YAML files.")
ChartOption = typer.Option(
    Path("charts/quorum-crds"),
    "--chart",
    help="The quorum-crds Helm chart whose templates/ carry the same CRDs; skipped when it does not exist.",
)
ReadmeOption = typer.Option(
    Path("README.md"),
    "--readme",
    help="README whose field reference (between the api-reference markers) is generated; skipped when absent.",
)
OperatorChartOption = typer.Option(
    Path("charts/quorum"),
    "--operator-chart",
    help="The operator's Helm chart, whose RBAC rules are generated; skipped when it does not exist.",
)


def _files(directory: Path, chart: Path, operator_chart: Path, readme: Path) -> dict[Path, str]:
    files = generated_files(directory, chart if (chart / "Chart.yaml").is_file() else None)
    if (operator_chart / "Chart.yaml").is_file():
        files.update(generated_chart_files(operator_chart))
    if readme.is_file():
        files[readme] = reference.spliced(readme.read_text(encoding="utf-8"))
    return files


@app.command()
def generate(
    directory: Path = DirOption,
    chart: Path = ChartOption,
    operator_chart: Path = OperatorChartOption,
    readme: Path = ReadmeOption,
) -> None:
    """Rewrite the CRD YAML files, the CRD chart's templates, the operator chart's RBAC rules and the README's
    field reference."""
    for path in write_files(_files(directory, chart, operator_chart, readme)):
        console.print(f"wrote {path}")


@app.command()
def check(
    directory: Path = DirOption,
    chart: Path = ChartOption,
    operator_chart: Path = OperatorChartOption,
    readme: Path = ReadmeOption,
) -> None:
    """Exit 1 when any generated file differs from what the Python sources generate."""
    stale = stale_files(_files(directory, chart, operator_chart, readme))
    if stale:
        console.print(f"[red]stale:[/red] {', '.join(map(str, stale))}; run `quorum crds generate`")
        raise typer.Exit(1)
    console.print("CRDs and chart files are up to date")
