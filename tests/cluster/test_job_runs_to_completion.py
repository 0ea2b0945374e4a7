"""Jobs are driven to an outcome: kwok completes their pods, or a test decides each pod's fate itself."""

from __future__ import annotations

import pytest

from e2e.kube import Kube, eventually
from e2e.pods import MANUAL_STATUS, finish_pod
from tests.cluster.manifests import indexed_job

pytestmark = pytest.mark.cluster


def test_indexed_job_completes_when_kwok_finishes_its_pods(kube: Kube) -> None:
    kube.apply(indexed_job("shards", completions=3))

    kube.wait("job/shards", "condition=Complete", timeout=60)

    status = kube.get("job", "shards")["status"]
    assert status["succeeded"] == 3
    assert status["completedIndexes"] == "0-2"
    pods = kube.get("pods", None, "--selector=job=shards")["items"]
    assert sorted(p["status"]["phase"] for p in pods) == ["Succeeded"] * 3


@pytest.mark.usefixtures("fake_kubelets")
def test_job_fails_when_the_test_fails_its_pod(kube: Kube) -> None:
    kube.apply(indexed_job("doomed", completions=1, backoff_limit=0, pod_annotations=MANUAL_STATUS))
    pod = eventually(lambda: _scheduled_pod(kube, "doomed"), timeout=30, what="the job's pod to be scheduled")
    assert pod["status"]["phase"] == "Pending"  # kwok leaves pods with MANUAL_STATUS alone

    finish_pod(kube, pod, succeeded=False, exit_code=3)

    kube.wait("job/doomed", "condition=Failed", timeout=60)
    failed = [c for c in kube.get("job", "doomed")["status"]["conditions"] if c["type"] == "Failed"]
    assert failed[0]["reason"] == "BackoffLimitExceeded"


def _scheduled_pod(kube: Kube, job: str) -> dict | None:
    pods = kube.get("pods", None, f"--selector=job={job}")["items"]
    return next((p for p in pods if p["spec"].get("nodeName")), None)
