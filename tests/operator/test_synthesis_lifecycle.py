"""On the real control plane, with worker pods whose fate the test decides (kwok leaves them alone):
success with counts, a failing shard retried then Failed, suspend and resume from completed shards."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from e2e.kube import eventually
from tests.operator.names import WORKER_ACCOUNT, WORKERS_JOB

pytestmark = pytest.mark.cluster


def synthesis_job(namespace: str, name: str = "sj", **overrides: Any) -> dict[str, Any]:
    spec = {
        "models": [{"name": "sim", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "sim"}}],
        "seeds": {"uri": "configmap://seeds/seeds.jsonl"},
        "generation": {"target": 8, "rounds": 1},
        "review": {"reviewers": 1, "allowSameModel": True},
        "output": {"uri": "pvc://results/run"},
        "workers": {"shards": 2, "parallelism": 2, "backoffLimitPerIndex": 1},
        **overrides,
    }
    return {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "SynthesisJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def pods(api, namespace: str, component: str, phase: str | None = None) -> list[dict[str, Any]]:
    found = api.list("v1", "Pod", namespace, {"app.kubernetes.io/component": component})
    return [p for p in found if phase is None or (p.get("status") or {}).get("phase", "Pending") == phase]


def index_of(pod: dict[str, Any]) -> str:
    return pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]


def finish(api, pod: dict[str, Any], *, succeeded: bool, message: str = "") -> None:
    """What a kubelet reports when the container exits: phase and a terminated state with its message."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    terminated = {"exitCode": 0 if succeeded else 1, "reason": "Completed" if succeeded else "Error"}
    terminated |= {"startedAt": now, "finishedAt": now, "message": message}
    status = {
        "phase": "Succeeded" if succeeded else "Failed",
        "containerStatuses": [
            {"name": "quorum", "image": "quorum:test", "imageID": "", "ready": False, "restartCount": 0,
             "state": {"terminated": terminated}}
        ],
    }  # fmt: skip
    api.patch_status("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], status)


def status_of(api, namespace: str, name: str = "sj") -> dict[str, Any]:
    return (api.get("quorum.dev/v1alpha1", "SynthesisJob", namespace, name) or {}).get("status") or {}


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def report_shard(kube, namespace: str, index: str, accepted: int, generated: int) -> None:
    """A worker's progress report, made with the worker's own ServiceAccount (what it may do, it can do)."""
    report = {
        "status": {
            "shards": {
                index: {
                    "state": "Succeeded",
                    "stage": "write",
                    "counts": {"generated": generated, "accepted": accepted},
                }
            }
        }
    }
    kube.impersonate(WORKER_ACCOUNT).kubectl(
        "patch", "sjob", "sj", "--subresource=status", "--type=merge", f"--patch={json.dumps(report)}"
    )


def test_workers_driven_to_completion_reach_succeeded_with_counts(kube, api, namespace, start_operator):
    with start_operator(manual_pods=True):
        kube.apply(synthesis_job(namespace))
        workers = eventually(lambda: len(p := pods(api, namespace, "synthesis-worker")) == 2 and p, what="2 workers")
        assert sorted(index_of(p) for p in workers) == ["0", "1"]
        running = eventually(
            lambda: (
                condition(status_of(api, namespace), "Progressing").get("status") == "True"
                and status_of(api, namespace)
            )
        )
        assert running["phase"] == "Running" and running["progress"] == "0/2 shards"
        for pod, accepted in zip(workers, (3, 4), strict=True):
            report_shard(kube, namespace, index_of(pod), accepted, generated=5)
            finish(api, pod, succeeded=True)
        merge = eventually(lambda: pods(api, namespace, "synthesis-merge"), what="merge pod")[0]
        merging = eventually(lambda: (s := status_of(api, namespace)).get("progress", "").endswith("merging") and s)
        assert condition(merging, "Progressing")["reason"] == "Merging"
        assert merging["counts"]["accepted"] == 7 and merging["counts"]["generated"] == 10
        result = {"records": 6, "manifest": "file:///data/pvc/results/run/manifest.json", "counts": {"duplicates": 1}}
        finish(api, merge, succeeded=True, message=json.dumps(result))
        done = eventually(lambda: condition(s := status_of(api, namespace), "Succeeded").get("status") == "True" and s)
    assert done["phase"] == "Succeeded"
    assert done["counts"]["accepted"] == 6 and done["counts"]["duplicates"] == 1 and done["counts"]["generated"] == 10
    assert done["output"]["records"] == 6 and done["output"]["uri"] == "pvc://results/run"
    assert {c["type"]: c["status"] for c in done["conditions"]} == {
        "Ready": "True", "BackendsReady": "True", "Progressing": "False",
        "Succeeded": "True", "Failed": "False", "Suspended": "False", "Reconciling": "False", "Stalled": "False",
    }  # fmt: skip
    table = kube.kubectl("get", "sjob", "sj").stdout.split("\n")
    assert table[0].split() == ["NAME", "READY", "STAGE", "PROGRESS", "ACCEPTED", "STARTED", "COMPLETED", "AGE"]
    assert table[1].split()[:7] == ["sj", "True", "Succeeded", "2/2", "shards,", "6", "records"]
    events = kube.get("events", None, "--field-selector=involvedObject.name=sj")["items"]
    assert any(e["reason"] == "Succeeded" for e in events)


def test_a_failing_shard_is_retried_then_the_job_fails_with_a_clear_error(kube, api, namespace, start_operator):
    with start_operator(manual_pods=True):
        kube.apply(synthesis_job(namespace, workers={"shards": 1, "parallelism": 1, "backoffLimitPerIndex": 1}))
        first = eventually(lambda: pods(api, namespace, "synthesis-worker", "Pending"), what="worker")[0]
        finish(
            api, first, succeeded=False, message="Traceback ...\nCallFailed: sim: connection refused after 3 retries"
        )
        retry = eventually(
            lambda: [
                p
                for p in pods(api, namespace, "synthesis-worker", "Pending")
                if p["metadata"]["uid"] != first["metadata"]["uid"]
            ],
            what="retried worker",
        )[0]
        assert index_of(retry) == "0"
        retrying = eventually(lambda: (s := status_of(api, namespace)).get("lastError") and s)
        assert retrying["lastError"]["message"].startswith("shard 0 attempt 1: CallFailed")
        finish(api, retry, succeeded=False, message="CallFailed: sim: connection refused after 3 retries")
        failed = eventually(lambda: condition(s := status_of(api, namespace), "Failed").get("status") == "True" and s)
    assert failed["phase"] == "Failed"
    assert condition(failed, "Ready")["status"] == "False"
    error = failed["lastError"]
    assert (
        error["stage"] == "shard-0"
        and error["message"] == "shard 0 attempt 2: CallFailed: sim: connection refused after 3 retries"
    )
    assert "connection refused" in condition(failed, "Failed")["message"]


def test_suspend_stops_workers_and_resume_continues_from_completed_shards(kube, api, namespace, start_operator):
    with start_operator(manual_pods=True):
        kube.apply(synthesis_job(namespace, workers={"shards": 2, "parallelism": 1, "backoffLimitPerIndex": 1}))
        shard0 = eventually(lambda: pods(api, namespace, "synthesis-worker", "Pending"), what="first worker")[0]
        finish(api, shard0, succeeded=True)
        shard1 = eventually(
            lambda: [p for p in pods(api, namespace, "synthesis-worker", "Pending") if index_of(p) != index_of(shard0)],
            what="second worker",
        )[0]
        kube.kubectl("patch", "sjob", "sj", "--type=merge", "--patch", '{"spec": {"suspend": true}}')
        eventually(lambda: not pods(api, namespace, "synthesis-worker", "Pending"), what="active worker removed")
        suspended = eventually(
            lambda: condition(s := status_of(api, namespace), "Suspended").get("status") == "True" and s
        )
        assert suspended["phase"] == "Suspended" and condition(suspended, "Progressing")["reason"] == "Suspended"
        assert api.get("batch/v1", "Job", namespace, WORKERS_JOB)["spec"]["suspend"] is True

        kube.kubectl("patch", "sjob", "sj", "--type=merge", "--patch", '{"spec": {"suspend": false}}')
        resumed = eventually(lambda: pods(api, namespace, "synthesis-worker", "Pending"), what="resumed worker")
        assert [index_of(p) for p in resumed] == [index_of(shard1)]  # the completed shard is not redone
        finish(api, resumed[0], succeeded=True)
        merge = eventually(lambda: pods(api, namespace, "synthesis-merge", "Pending"), what="merge pod")[0]
        finish(api, merge, succeeded=True, message=json.dumps({"records": 2}))
        done = eventually(lambda: condition(s := status_of(api, namespace), "Succeeded").get("status") == "True" and s)
    assert condition(done, "Suspended")["status"] == "False"
