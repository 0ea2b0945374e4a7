"""The CRD chart carries exactly the CRDs generated from the models, kept on uninstall, and stays in sync."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from quorum.api import reference
from quorum.api.crd import crd_for
from quorum.api.resources import RESOURCES
from quorum.cli import main
from tests.charts.helm import CRDS_CHART, Helm
from tests.charts.validation import validate_strictly
from tests.conftest import REPO


@pytest.fixture(scope="module")
def rendered(helm: Helm) -> list[dict[str, Any]]:
    return helm.template(CRDS_CHART, {"annotations": {"example.com/owner": "platform"}})


def test_lint_strict_passes(helm: Helm) -> None:
    assert "0 chart(s) failed" in helm.run("lint", "--strict", str(CRDS_CHART))


def test_rendered_crds_validate_strictly(rendered: list[dict[str, Any]]) -> None:
    assert validate_strictly(rendered) == []


def test_chart_carries_the_generated_crds(rendered: list[dict[str, Any]]) -> None:
    by_name = {crd["metadata"]["name"]: crd for crd in rendered}
    for resource in RESOURCES:
        expected = crd_for(resource)
        assert by_name[expected["metadata"]["name"]]["spec"] == expected["spec"]
    assert len(by_name) == len(RESOURCES)


def test_crds_are_kept_on_uninstall_and_labelled(rendered: list[dict[str, Any]]) -> None:
    for crd in rendered:
        assert crd["metadata"]["annotations"] == {
            "helm.sh/resource-policy": "keep",
            "example.com/owner": "platform",
        }
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "quorum"


def _copy_generated(tmp_path: Path) -> tuple[Path, Path, Path]:
    crds, chart, operator_chart = tmp_path / "crds", tmp_path / "quorum-crds", tmp_path / "quorum"
    shutil.copytree(REPO / "crds", crds)
    shutil.copytree(CRDS_CHART, chart)
    shutil.copytree(REPO / "charts" / "quorum", operator_chart)
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    return crds, chart, operator_chart


def _crds(command: str, crds: Path, chart: Path, operator_chart: Path) -> Any:
    args = ["crds", command, "--dir", str(crds), "--chart", str(chart), "--operator-chart", str(operator_chart)]
    args += ["--readme", str(crds.parent / "README.md")]
    return CliRunner().invoke(main.app, args)


@pytest.mark.parametrize(
    "edited",
    ["quorum-crds/templates/quorum.dev_synthesisjobs.yaml", "quorum/files/operator-rules.yaml", "README.md"],
)
def test_crds_check_catches_a_stale_chart_file_and_generate_repairs_it(tmp_path: Path, edited: str) -> None:
    crds, chart, operator_chart = _copy_generated(tmp_path)
    assert _crds("check", crds, chart, operator_chart).exit_code == 0
    stale = tmp_path / edited
    stale.write_text(stale.read_text().replace(reference.END, "| hand edit |\n" + reference.END) + "\n# hand edit\n")
    result = _crds("check", crds, chart, operator_chart)
    assert result.exit_code == 1 and stale.name in "".join(result.output.split())  # rich wraps long paths
    assert _crds("generate", crds, chart, operator_chart).exit_code == 0
    assert _crds("check", crds, chart, operator_chart).exit_code == 0
