"""Both charts install into the real local control plane with `helm install`; upgrading the CRD chart changes
the installed CRDs; uninstalling either chart leaves the CRDs and the users' resources in place."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from e2e.kube import Kube, eventually
from quorum.api.crd import crd_filename, crd_for, render_chart_template
from quorum.api.resources import SynthesisJob
from quorum.llm.local import free_port
from tests.charts.helm import CRDS_CHART, OPERATOR_CHART, Helm, one
from tests.operator.test_synthesis_lifecycle import synthesis_job

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SJOB_CRD = f"{SynthesisJob.plural}.quorum.dev"
QUORUM = Path(sys.executable).with_name("quorum")


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


def service_account_kubeconfig(admin_kubeconfig: Path, kube: Kube, account: str, target: Path) -> Path:
    """A kubeconfig that authenticates as `account` with a short-lived token, like the pod's mounted one."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    token = kube.kubectl("create", "token", account, "--duration=10m").stdout.strip()
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
        "current-context": account,
    }
    target.write_text(yaml.safe_dump(config))
    return target


def test_operator_runs_as_the_chart_deploys_it_and_never_writes_spec_or_copies_labels(
    helm_on_plane: Helm, namespace: str, kube: Kube, kubeconfig: Path, tmp_path: Path
) -> None:
    """The chart's command line and RBAC, run for real: `quorum operator run` with the rendered arguments and
    the chart's ServiceAccount token reconciles a SynthesisJob applied the GitOps way, serves liveness and
    metrics, writes only status and metadata, and labels children with its own labels only."""
    helm_on_plane.run("install", "quorum", str(OPERATOR_CHART), "--namespace", namespace)
    rendered = helm_on_plane.template(OPERATOR_CHART, release="quorum", namespace=namespace)
    args = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    health, metrics = free_port(), free_port()
    # Same arguments; only the listeners move from the pod's 0.0.0.0 to this machine's loopback.
    local = [
        f"--liveness=http://127.0.0.1:{health}/healthz",
        f"--metrics-port={metrics}",
        "--metrics-address=127.0.0.1",
    ]
    credentials = service_account_kubeconfig(kubeconfig, kube, "quorum", tmp_path / "kubeconfig")
    command = [str(QUORUM), *args, *local, f"--kubeconfig={credentials}"]
    job = synthesis_job(namespace, "gitops-job")
    job["metadata"]["labels"] = {"argocd.argoproj.io/instance": "research-app"}
    kube.apply(job)  # server-side, field manager of the e2e harness: the "GitOps tool"
    gitops_manager = _spec_manager(kube, "gitops-job")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as operator:
        try:
            eventually(
                lambda: _status(kube, "gitops-job").get("observedGeneration") == 1,
                timeout=90,
                what="status written by the operator",
            )
            assert httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=5).status_code == 200
            assert "process_cpu_seconds_total" in httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
            conditions = {c["type"] for c in _status(kube, "gitops-job")["conditions"]}
            assert {"Ready", "Progressing"} <= conditions
            children = _children(kube, "gitops-job")
            assert children, "the operator created no children"
        finally:
            operator.terminate()
            output = operator.communicate(timeout=30)[0]
    helm_on_plane.run("uninstall", "quorum", "--namespace", namespace, "--wait")  # its ClusterRoles too
    assert "Forbidden" not in output and "Not enough permissions" not in output, output[-3000:]
    for entry in _managed_fields(kube, "gitops-job"):
        if entry["manager"] != gitops_manager:
            assert "f:spec" not in entry.get("fieldsV1", {}), f"{entry['manager']} wrote spec"
    for child in children:
        assert "argocd.argoproj.io/instance" not in child["metadata"].get("labels", {}), child["metadata"]["name"]
        assert child["metadata"]["labels"]["quorum.dev/synthesisjob"] == "gitops-job"


def _status(kube: Kube, name: str) -> dict[str, Any]:
    return kube.get("synthesisjob", name).get("status") or {}


def _managed_fields(kube: Kube, name: str) -> list[dict[str, Any]]:
    return kube.json("get", "synthesisjob", name, "--show-managed-fields")["metadata"]["managedFields"]


def _spec_manager(kube: Kube, name: str) -> str:
    return next(e["manager"] for e in _managed_fields(kube, name) if "f:spec" in e.get("fieldsV1", {}))


def _children(kube: Kube, name: str) -> list[dict[str, Any]]:
    kinds = "jobs,configmaps,serviceaccounts,roles,rolebindings,deployments,services"
    return kube.get(kinds, None, f"--selector=quorum.dev/synthesisjob={name}")["items"]
