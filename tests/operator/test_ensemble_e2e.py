"""An EnsembleRouter doing real work on the control plane: the calibration Job's pod runs `quorum worker
calibrate` against two simulated models of known per-topic accuracy and fills the artifact ConfigMap with its
own ServiceAccount; the router Deployment's pod runs `quorum router serve` on the mounted artifact and
answers the official `openai` client; the status ends Calibrated, RouterReady and Ready."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from e2e.kube import eventually
from quorum.llm.simulated import SimulatedBackend
from tests.operator.test_synthesis_lifecycle import condition
from tests.routing.pool import ACCURACY, BY_QUESTION, questions, responder_for

pytestmark = pytest.mark.cluster

MODELS = ("alpha", "beta")
TOKEN = "router-e2e-token"


@pytest.fixture
def simulated_pool() -> Iterator[dict[str, str]]:
    sims = {m: SimulatedBackend(responder_for(m), models=[m]) for m in MODELS}
    urls = {m: sim.start_in_thread() for m, sim in sims.items()}
    yield urls
    for sim in sims.values():
        sim.stop_thread()


def ensemble_router(urls: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "EnsembleRouter",
        "metadata": {"name": "ens"},
        "spec": {
            "models": [{"name": m, "endpoint": {"url": u, "model": m}} for m, u in urls.items()],
            "calibration": {
                "dataset": {"uri": "configmap://calibration/calibration.jsonl"},
                "tasks": [
                    {"name": "arithmetic", "kind": "math"},
                    {"name": "trivia", "kind": "multiple-choice", "choices": "ABCD"},
                ],
                "clusters": 4,
                "samples": 1,
                "maxTokens": 64,
            },
            "routing": {"clustersBlended": 1, "modelsSelected": 1},
            "voting": {"strategy": "self-consistency", "samples": 1},
            "router": {"replicas": 1, "port": 8000, "authSecretRef": {"name": "router-auth", "key": "token"}},
        },
    }


def router_status(api, namespace: str) -> dict[str, Any]:
    return (api.get("quorum.dev/v1alpha1", "EnsembleRouter", namespace, "ens") or {}).get("status") or {}


def test_ensemble_router_calibrates_in_a_pod_and_its_router_pod_answers_the_openai_client(
    kube, api, namespace, start_operator, pod_runner, simulated_pool
):
    dataset = "".join(json.dumps({k: q[k] for k in ("question", "answer", "task")}) + "\n" for q in questions())
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "calibration"},
            "data": {"calibration.jsonl": dataset},
        }
    )
    kube.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "router-auth"}, "stringData": {"token": TOKEN}}
    )
    with start_operator(manual_pods=True):
        kube.apply(ensemble_router(simulated_pool))
        ready = eventually(
            lambda: condition(s := router_status(api, namespace), "Ready").get("status") == "True" and s,
            timeout=150,
            what="the router to be Ready",
        )
        calibration = ready["calibration"]
        artifact = api.get("v1", "ConfigMap", namespace, calibration["artifact"].removeprefix("configmap://"))
        summary = json.loads(artifact["data"]["summary.json"])
        router = pod_runner.find("ens-router")
        client = openai.OpenAI(base_url=f"{router.url(8000)}/v1", api_key=TOKEN, max_retries=0)
        arithmetic = next(q for q in questions() if q["topic"] == "arithmetic")
        reply = client.chat.completions.create(
            model="ens", messages=[{"role": "user", "content": arithmetic["question"]}]
        )
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{router.url(8000)}/v1", api_key="wrong", max_retries=0).models.list()

    assert {c["type"]: c["status"] for c in ready["conditions"]} == {
        "Ready": "True", "BackendsReady": "True", "Calibrated": "True", "RouterReady": "True", "Degraded": "False",
        "Reconciling": "False", "Stalled": "False",
    }  # fmt: skip
    assert ready["backendsReady"] == "2/2"
    assert calibration["checksum"] == json.loads(artifact["data"]["artifact.json"])["checksum"] == summary["checksum"]
    assert calibration["questions"] == len(BY_QUESTION) and calibration["clusters"] >= 2
    sizes = calibration["clusterSizes"]  # calibration.minClusterSize (10) merged the small k-means clusters
    assert 10 <= sizes["min"] <= sizes["median"] <= sizes["max"] and sizes == summary["clusterSizes"]
    # alpha is strong on arithmetic and weak on trivia, beta the reverse: routing per cluster beats either.
    assert summary["modelAccuracy"]["alpha"] == pytest.approx(sum(ACCURACY["alpha"].values()) / 4, abs=0.15)
    assert calibration["routedAccuracy"] > calibration["bestSingleAccuracy"]
    answer = reply.choices[0].message.content
    assert "[alpha]" in answer  # the arithmetic cluster routes to the arithmetic model
    calibrator = pod_runner.find("ens-calibrate")
    assert calibrator.exit_code == 0 and json.loads(calibrator.message)["checksum"] == summary["checksum"]
