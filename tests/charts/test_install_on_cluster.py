"""Both charts install into the real local control plane with `helm install`; upgrading the CRD chart changes
the installed CRDs; uninstalling either chart leaves the CRDs and the users' resources in place."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e.kube import Kube, eventually

from quorum.api.crd import crd_filename, crd_for, render_chart_template
from quorum.api.resources import SynthesisJob
from tests.charts.helm import CRDS_CHART, OPERATOR_CHART, Helm
from tests.operator.test_synthesis_lifecycle import synthesis_job

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SJOB_CRD = f"{SynthesisJob.plural}.quorum.dev"


def _columns(kube: Kube) -> list[str]:
    crd = kube.get("customresourcedefinition", SJOB_CRD)
    return [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]


def previous_crd_chart(tmp_path: Path) -> Path:
    """The CRD chart as an earlier release would have shipped it: version 0.0.1, no `Accepted` column."""
    chart = tmp_path / "quorum-crds"
    shutil.copytree(CRDS_CHART, chart)
    metadata = yaml.safe_load((chart / "Chart.yaml").read_text())
    (chart / "Chart.yaml").write_text(yaml.safe_dump({**metadata, "version": "0.0.1"}))
    crd: dict[str, Any] = crd_for(SynthesisJob)
    version = crd["spec"]["versions"][0]
    version["additionalPrinterColumns"] = [c for c in version["additionalPrinterColumns"] if c["name"] != "Accepted"]
    (chart / "templates" / crd_filename(SynthesisJob)).write_text(render_chart_template(crd))
    return chart


@pytest.fixture
def helm_on_plane(helm: Helm, kubeconfig: Path) -> Helm:
    return helm.with_kubeconfig(kubeconfig)


def test_crd_chart_installs_upgrades_the_crds_and_keeps_them_on_uninstall(
    helm_on_plane: Helm, namespace: str, kube: Kube, tmp_path: Path
) -> None:
    # The session's plane applied crds/ server-side under its own field manager; this is how a cluster whose
    # CRDs came from `kubectl apply --server-side -f crds/` moves to the chart (helm 4 applies server-side too).
    release = ["quorum-crds", "--namespace", namespace]
    adopt = ["--take-ownership", "--force-conflicts"]
    helm_on_plane.run("install", *release, str(previous_crd_chart(tmp_path)), *adopt, "--wait")
    assert "Accepted" not in _columns(kube)
    installed = kube.get("customresourcedefinition", SJOB_CRD)["metadata"]
    assert installed["annotations"]["helm.sh/resource-policy"] == "keep"
    assert installed["labels"]["helm.sh/chart"] == "quorum-crds-0.0.1"

    helm_on_plane.run("upgrade", *release, str(CRDS_CHART), "--wait")
    eventually(lambda: "Accepted" in _columns(kube), timeout=30, what="the upgraded printer columns")
    assert kube.get("customresourcedefinition", SJOB_CRD)["metadata"]["labels"]["helm.sh/chart"] == "quorum-crds-0.1.0"
    kube.wait(f"customresourcedefinition/{SJOB_CRD}", "condition=Established")

    kube.apply(synthesis_job(namespace, "kept"))
    helm_on_plane.run("uninstall", *release, "--wait")
    assert kube.exists("customresourcedefinition", SJOB_CRD)
    assert kube.exists("customresourcedefinition", "ensemblerouters.quorum.dev")
    assert kube.exists("synthesisjob", "kept")


def test_operator_chart_installs_grants_its_rules_and_uninstalls_without_touching_user_resources(
    helm_on_plane: Helm, namespace: str, kube: Kube, control_plane: Any
) -> None:
    release = ["quorum", "--namespace", namespace]
    helm_on_plane.run("install", *release, str(OPERATOR_CHART), "--wait", "--timeout", "120s")
    for kind, name in [
        ("deployment", "quorum"),
        ("serviceaccount", "quorum"),
        ("role", "quorum"),
        ("rolebinding", "quorum"),
        ("service", "quorum-metrics"),
        ("poddisruptionbudget", "quorum"),
        ("networkpolicy", "quorum"),
    ]:
        assert kube.exists(kind, name), f"{kind}/{name}"
    deployment = kube.get("deployment", "quorum")
    assert deployment["status"].get("availableReplicas") == 1  # kwok's kubelets ran the pod; --wait saw it

    operator = kube.impersonate("quorum")
    assert operator.can_i("watch", "synthesisjobs.quorum.dev")
    assert operator.can_i("patch", "ensemblerouters.quorum.dev", "--subresource=status")
    assert operator.can_i("create", "jobs.batch")
    assert not operator.can_i("get", "secrets")
    assert not operator.can_i("watch", "synthesisjobs.quorum.dev", "--all-namespaces")
    assert not operator.can_i("create", "clusterroles.rbac.authorization.k8s.io")

    kube.apply(synthesis_job(namespace, "users-job"))
    helm_on_plane.run("uninstall", *release, "--wait")
    eventually(lambda: not kube.exists("deployment", "quorum"), timeout=60, what="the operator Deployment gone")
    assert not kube.exists("role", "quorum")
    assert kube.exists("synthesisjob", "users-job")
    assert control_plane.kube.exists("customresourcedefinition", SJOB_CRD)
