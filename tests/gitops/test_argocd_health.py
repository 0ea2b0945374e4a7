"""The Argo CD health checks judge SynthesisJob, EnsembleRouter and Model by their conditions, as Argo CD's own
health_test.yaml files say, run with a real Lua interpreter; the samples are statuses our API accepts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum.api.ensemble import EnsembleRouterStatus
from quorum.api.model import ModelStatus
from quorum.api.synthesis import SynthesisJobStatus
from tests.charts.helm import Helm
from tests.conftest import REPO
from tests.gitops.lua import run_health_check, run_lua, to_lua

ARGOCD = REPO / "gitops" / "argocd"
CHECKS = ARGOCD / "resource_customizations" / "quorum.dev"
STATUS_MODELS = {"SynthesisJob": SynthesisJobStatus, "EnsembleRouter": EnsembleRouterStatus, "Model": ModelStatus}
ARGO_HEALTH_STATES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def _cases() -> list[tuple[str, Path, dict[str, str]]]:
    cases = []
    for kind in STATUS_MODELS:
        tests = yaml.safe_load((CHECKS / kind / "health_test.yaml").read_text())["tests"]
        cases += [(kind, CHECKS / kind / t["inputPath"], t["healthStatus"]) for t in tests]
    return cases


@pytest.mark.parametrize(("kind", "sample", "expected"), _cases(), ids=lambda v: getattr(v, "stem", ""))
def test_health_check_judges_the_sample(kind: str, sample: Path, expected: dict[str, str]) -> None:
    obj = yaml.safe_load(sample.read_text())
    assert obj["kind"] == kind
    assert expected["status"] in ARGO_HEALTH_STATES
    assert run_health_check(CHECKS / kind / "health.lua", obj) == expected


@pytest.mark.parametrize(("kind", "sample", "expected"), _cases(), ids=lambda v: getattr(v, "stem", ""))
def test_samples_are_statuses_the_api_accepts(kind: str, sample: Path, expected: dict[str, str]) -> None:
    status: dict[str, Any] | None = yaml.safe_load(sample.read_text()).get("status")
    if status is not None:
        STATUS_MODELS[kind].model_validate(status)


def test_every_sample_is_covered_by_a_test() -> None:
    covered = {sample for _, sample, _ in _cases()}
    assert covered == set(CHECKS.glob("*/testdata/*.yaml"))


def test_lua_literals_round_trip_strings_with_quotes_and_newlines() -> None:
    text = 'say "hi"\n\tand \\ leave'
    assert run_lua(f"return {to_lua(text)}") == text


def test_kustomize_component_puts_the_scripts_into_argocd_cm(helm: Helm, tmp_path: Path) -> None:
    kubectl = helm.binary.with_name("kubectl")
    base = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"}, "data": {"url": "x"}}
    (tmp_path / "argocd-cm.yaml").write_text(yaml.safe_dump(base))
    kustomization = {"resources": ["argocd-cm.yaml"], "components": [os.path.relpath(ARGOCD, tmp_path)]}
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(tmp_path), "--load-restrictor=LoadRestrictionsNone"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = yaml.safe_load(rendered)["data"]
    assert data["url"] == "x"
    for kind in STATUS_MODELS:
        assert data[f"resource.customizations.health.quorum.dev_{kind}"] == (CHECKS / kind / "health.lua").read_text()
