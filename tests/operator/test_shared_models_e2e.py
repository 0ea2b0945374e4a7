"""Shared Models on the control plane: two SynthesisJobs and one EnsembleRouter reference the same three
Models, so three GPU Deployments serve all of them (inline models would make nine). The pod runner runs the
Models' vLLM pods as simulated model servers (e2e/sim_vllm.py) reached through their Services, and the
workers, the calibration and the router as `quorum` processes. Deleting a consumer leaves the Models;
deleting all of them scales the Models to zero after `idleSeconds`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from e2e.kube import eventually
from e2e.pod_runner import PodRunner, default_executables, dump_runs
from tests.operator.conftest import QUORUM_PODS
from tests.operator.test_ensemble_e2e import TOKEN, ensemble_router, router_status
from tests.operator.test_synthesis_e2e import SEEDS, job_spec
from tests.operator.test_synthesis_lifecycle import condition, status_of
from tests.routing.pool import questions

pytestmark = pytest.mark.cluster

MODELS = ("alpha", "beta", "gamma")
IDLE_SECONDS = 3
REPO = Path(__file__).resolve().parents[2]


def model(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "model": name,
            "vllm": {"startupBudgetSeconds": 120},
            "resources": {"gpus": 1},
            "replicas": {"min": 0, "max": 2, "idleSeconds": IDLE_SECONDS},
            "maxConcurrency": 48,
        },
    }


def references() -> list[dict[str, Any]]:
    return [{"name": m, "modelRef": {"name": m}} for m in MODELS]


def synthesis_job(name: str) -> dict[str, Any]:
    spec = job_spec("http://unused", "configmap://seeds/seeds.jsonl", f"pvc://results/{name}")
    spec["models"] = references()
    spec["generation"] = {"target": 6, "rounds": 1}
    spec["workers"] = {"shards": 1, "parallelism": 1, "backoffLimitPerIndex": 0}
    return {"apiVersion": "quorum.dev/v1alpha1", "kind": "SynthesisJob", "metadata": {"name": name}, "spec": spec}


def router() -> dict[str, Any]:
    manifest = ensemble_router({})
    manifest["spec"]["models"] = references()
    return manifest


@pytest.fixture
def vllm_runner(
    kubeconfig: Path, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[PodRunner]:
    """The pod runner with `vllm` as the simulated server: a Model's GPU pod serves for real on loopback."""
    wrapper = tmp_path / "vllm"
    wrapper.write_text(
        f'#!/bin/sh\nPYTHONPATH="{REPO}:$PYTHONPATH" exec {sys.executable} -m e2e.sim_vllm '
        '--responder tests.operator.shared_pool:responder "$@"\n'
    )
    wrapper.chmod(0o755)
    runner = PodRunner(
        kubeconfig, namespace, tmp_path / "node", executables={**default_executables(), "vllm": str(wrapper)}
    )
    with runner.serving(QUORUM_PODS):
        yield runner
    report = getattr(request.node, "rep_call", None)
    if runner.errors or (report is not None and report.failed):
        print(dump_runs(runner))


def gpu_deployments(api: Any, namespace: str) -> list[dict[str, Any]]:
    return api.list("apps/v1", "Deployment", namespace, {"app.kubernetes.io/component": "model-server"})


def model_status(api: Any, namespace: str, name: str) -> dict[str, Any]:
    return (api.get("quorum.dev/v1alpha1", "Model", namespace, name) or {}).get("status") or {}


def test_two_synthesis_jobs_and_a_router_share_three_model_deployments_which_scale_to_zero_when_unused(
    kube, api, namespace, start_operator, vllm_runner, host_claim
):
    results = host_claim("results")
    seeds = "".join(json.dumps(s) + "\n" for s in SEEDS)
    dataset = "".join(json.dumps({k: q[k] for k in ("question", "answer", "task")}) + "\n" for q in questions())
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seeds"}, "data": {"seeds.jsonl": seeds}})
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
        for name in MODELS:
            kube.apply(model(name))
        for consumer in (synthesis_job("sj-a"), synthesis_job("sj-b"), router()):
            kube.apply(consumer)

        def all_done() -> Any:
            jobs = [status_of(api, namespace, n) for n in ("sj-a", "sj-b")]
            ens = router_status(api, namespace)
            finished = all(j.get("phase") in ("Succeeded", "Failed") for j in jobs)
            return finished and condition(ens, "Ready").get("status") == "True" and (jobs, ens)

        jobs, ens = eventually(all_done, timeout=480, what="both jobs to finish and the router to be Ready")
        assert [j["phase"] for j in jobs] == ["Succeeded", "Succeeded"], [j.get("lastError") for j in jobs]

        # Three GPU Deployments, each the Model's own; none of the consumers deployed a model.
        deployments = gpu_deployments(api, namespace)
        assert len(deployments) == 3
        owners = sorted(
            d["metadata"]["ownerReferences"][0]["kind"] + "/" + d["metadata"]["ownerReferences"][0]["name"]
            for d in deployments
        )
        assert owners == ["Model/alpha", "Model/beta", "Model/gamma"]
        urls = {m: model_status(api, namespace, m)["url"] for m in MODELS}
        assert all(
            d["metadata"]["name"] in urls[d["metadata"]["labels"]["quorum.dev/shared-model"]] for d in deployments
        )
        for job in jobs:
            assert {b["name"]: b["url"] for b in job["backends"]} == urls
        # Every consumer's work was done by the Models' servers: datasets from all three, a routed answer.
        for name in ("sj-a", "sj-b"):
            manifest = json.loads((results / name / "manifest.json").read_text())
            assert manifest["counts"]["accepted"] > 0
        arithmetic = next(q for q in questions() if q["topic"] == "arithmetic")

        def routed_answer() -> Any:
            """The router rolls to its new share of the Models as the jobs finish; ask a pod that serves."""
            serving = [r for r in vllm_runner.runs.values() if r.name.startswith("ens-router") and r.ready]
            live = [r for r in serving if r.exit_code is None]
            if not live:
                return None
            client = openai.OpenAI(base_url=f"{live[-1].url(8000)}/v1", api_key=TOKEN, max_retries=0)
            try:
                messages = [{"role": "user", "content": arithmetic["question"]}]
                return client.chat.completions.create(model="ens", messages=messages)
            except (openai.APIConnectionError, openai.InternalServerError):  # a pod rolling out, or warming up
                return None

        reply = eventually(routed_answer, timeout=120, what="a router pod to answer")
        assert reply.choices[0].message.content.startswith("[")
        assert all(condition(ens, t)["status"] == "True" for t in ("BackendsReady", "Calibrated", "RouterReady"))
        model_pods = [r for r in vllm_runner.runs.values() if "-vllm-" in r.name]
        assert len(model_pods) == 3

        # The finished jobs no longer count; the router still does. Deleting a job leaves the Models.
        kube.kubectl("delete", "synthesisjob", "sj-a", "--wait=true")
        for name in MODELS:
            status = eventually(
                lambda n=name: (s := model_status(api, namespace, n)).get("consumerCount") == 1 and s,
                timeout=60,
                what=f"Model {name} to count only the router",
            )
            assert status["consumers"][0]["kind"] == "EnsembleRouter" and status["replicas"] == 1
        assert len(gpu_deployments(api, namespace)) == 3

        # No consumer left: after idleSeconds the Models scale to zero, and stay.
        kube.kubectl("delete", "synthesisjob", "sj-b", "--wait=true")
        kube.kubectl("delete", "ensemblerouter", "ens", "--wait=true")
        for name in MODELS:
            status = eventually(
                lambda n=name: (s := model_status(api, namespace, n)).get("replicas") == 0 and s,
                timeout=60 + IDLE_SECONDS,
                what=f"Model {name} to scale to zero",
            )
            assert condition(status, "Ready")["reason"] == "ScaledToZero" and status["consumers"] == []
        deployments = gpu_deployments(api, namespace)
        assert len(deployments) == 3 and all(d["spec"]["replicas"] == 0 for d in deployments)
        table = kube.kubectl("get", "models.quorum.dev", "alpha").stdout.split("\n")
        assert table[0].split() == ["NAME", "READY", "REPLICAS", "CONSUMERS", "AGE"]
        assert table[1].split()[:4] == ["alpha", "False", "0", "0"]
