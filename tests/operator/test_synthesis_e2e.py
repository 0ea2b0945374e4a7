"""A SynthesisJob doing real work on the control plane: the operator creates the worker Indexed Job and the
merge Job, the pod runner executes those pods as `quorum worker synth` processes (with the worker's own
ServiceAccount token), the workers call a simulated model over HTTP on 127.0.0.1 and write a real dataset,
and the status ends Succeeded with the manifest's counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from e2e.kube import eventually
from quorum.api.synthesis import SynthesisJobSpec
from quorum.gra import GraConfig, run_local
from quorum.gra.testing import GraScript, varied_high
from quorum.handlers.synthesis import COUNT_KEYS
from quorum.llm import ModelEndpoint
from quorum.llm.simulated import SimulatedBackend
from quorum.locations import as_location
from tests.operator.names import MERGE_JOB
from tests.operator.test_synthesis_lifecycle import condition, status_of

pytestmark = pytest.mark.cluster

SEEDS = [
    {"id": f"{domain}-{i}", "domain": domain, "instruction": f"{domain} seed task number {i}", "output": "ok"}
    for domain in ("math", "code")
    for i in range(4)
]


def job_spec(url: str, seeds_uri: str, output_uri: str) -> dict[str, Any]:
    return {
        "models": [{"name": "sim", "endpoint": {"url": url, "model": "sim"}}],
        "seeds": {"uri": seeds_uri},
        "generation": {"target": 12, "rounds": 2},
        "review": {"reviewers": 1, "allowSameModel": True},
        "postprocess": {"dedup": {"enabled": False}},
        "calls": {"timeoutSeconds": 5, "maxRetries": 2, "backoffSeconds": 0.01, "maxBackoffSeconds": 0.05},
        "output": {"uri": output_uri},
        "workers": {"shards": 2, "parallelism": 2, "backoffLimitPerIndex": 0},
    }


def run_to_the_end(kube: Any, api: Any, namespace: str, start_operator: Any, spec: dict, timeout: float) -> dict:
    """Apply SynthesisJob `sj` with the operator running and return its status once it succeeded or failed."""
    with start_operator(manual_pods=True):
        kube.apply(
            {"apiVersion": "quorum.dev/v1alpha1", "kind": "SynthesisJob", "metadata": {"name": "sj"}, "spec": spec}
        )
        return eventually(
            lambda: (s := status_of(api, namespace)).get("phase") in ("Succeeded", "Failed") and s,
            timeout=timeout,
            what="the job to finish",
        )


@pytest.fixture
def simulated_model() -> Any:
    sim = SimulatedBackend(GraScript())
    url = sim.start_in_thread()
    yield url
    sim.stop_thread()


def test_synthesis_job_pods_write_a_real_dataset_and_status_has_the_manifest_counts(
    kube, api, namespace, start_operator, pod_runner, host_claim, simulated_model, tmp_path: Path
):
    results = host_claim("results")
    seeds = "".join(json.dumps(s) + "\n" for s in SEEDS)
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seeds"}, "data": {"seeds.jsonl": seeds}})
    spec = job_spec(simulated_model, "configmap://seeds/seeds.jsonl", "pvc://results/run")
    done = run_to_the_end(kube, api, namespace, start_operator, spec, timeout=120)
    assert done["phase"] == "Succeeded", done.get("lastError")

    out = results / "run"
    manifest = json.loads((out / "manifest.json").read_text())
    records = (out / manifest["files"]["dataset"]).read_text().splitlines()
    assert manifest["counts"]["accepted"] == len(records) > 0
    assert {k: done["counts"][k] for k in COUNT_KEYS} == {k: manifest["counts"][k] for k in COUNT_KEYS}
    assert done["output"] == {
        "uri": "pvc://results/run",
        "records": len(records),
        "manifest": "pvc://results/run/manifest.json",
    }
    # Each worker reported its shard with its own ServiceAccount (nothing else may write status.shards).
    assert sorted(done["shards"]) == ["0", "1"]
    assert all(s["state"] == "Succeeded" and s["fingerprint"] == done["fingerprint"] for s in done["shards"].values())
    assert sum(s["counts"]["generated"] for s in done["shards"].values()) == manifest["counts"]["generated"]

    runs = sorted(pod_runner.runs.values(), key=lambda r: r.name)
    assert [r.exit_code for r in runs] == [0, 0, 0]
    merge = pod_runner.find(MERGE_JOB)
    assert json.loads(merge.message)["records"] == len(records)

    # Sharded in pods or all in one process, the same spec gives the same funnel.
    (tmp_path / "seeds.jsonl").write_text(seeds)
    local_spec = SynthesisJobSpec.model_validate(job_spec(simulated_model, "file://seeds.jsonl", "file://local"))
    local = run_local(
        GraConfig.from_spec(local_spec, name="sj", base_dir=tmp_path),
        tmp_path / "local",
        endpoints=[ModelEndpoint("sim", simulated_model, "sim", None, 32)],
    )
    assert local.manifest["counts"] == manifest["counts"]

    assert condition(done, "Ready")["status"] == "True"
    table = kube.kubectl("get", "sjob", "sj").stdout.split("\n")
    assert table[1].split()[:7] == ["sj", "True", "Succeeded", "2/2", "shards,", str(len(records)), "records"]


def test_synthesis_job_reads_s3_seeds_and_writes_every_output_to_s3_with_the_secrets_credentials(
    kube, api, namespace, start_operator, pod_runner, s3_server, s3_uri, simulated_model
):
    """Seeds and output in a real S3 server; the worker and merge pods get the credentials only from the
    Secret named by `output.credentialsSecretRef` (the pod runner passes no host environment)."""
    root = as_location(s3_uri)
    (root / "seeds.jsonl").write_bytes("".join(json.dumps(s) + "\n" for s in SEEDS).encode())
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-credentials"}}
    kube.apply({**secret, "stringData": s3_server.env()})
    spec = job_spec(simulated_model, f"{s3_uri}/seeds.jsonl", f"{s3_uri}/run")
    spec["output"]["credentialsSecretRef"] = {"name": "s3-credentials"}
    done = run_to_the_end(kube, api, namespace, start_operator, spec, timeout=180)
    assert done["phase"] == "Succeeded", done.get("lastError")

    out = root / "run"
    manifest = json.loads((out / "manifest.json").read_text())
    records = (out / manifest["files"]["dataset"]).read_text().splitlines()
    assert manifest["counts"]["accepted"] == len(records) > 0
    assert done["output"] == {
        "uri": f"{s3_uri}/run",
        "records": len(records),
        "manifest": f"{s3_uri}/run/manifest.json",
    }
    for name in ("rejected.jsonl", "README.md", "dataset_info.json", "report/index.md", "report/funnel.png"):
        assert (out / name).exists(), name
    for shard in ("shard-0000", "shard-0001"):
        assert (out / "shards" / shard / "done.json").exists()
        assert (out / "shards" / shard / "round-01" / "commit.json").exists()
    assert [r.exit_code for r in pod_runner.runs.values()] == [0, 0, 0]

    # status.stages: the operator's own steps, then the GRA stages the workers reported, summed over shards.
    stages = {s["name"]: s for s in done["stages"]}
    assert {"backends", "workers", "merge", "round", "generate", "review-instruction"} <= set(stages)
    assert stages["generate"]["done"] == stages["generate"]["total"] == manifest["counts"]["generated"]
    assert stages["generate"]["rate"] > 0
    header = kube.kubectl("get", "sjob", "sj").stdout.split("\n")[0].split()
    assert header[-3:] == ["STARTED", "COMPLETED", "AGE"]


def constant_flat(request: Any, round_name: str) -> int:
    """Model `flat` scores 9 whatever it reads (a degenerate reviewer); `sim` reviews honestly."""
    return 9 if request.model == "flat" else varied_high(request, round_name)


def test_a_constant_reviewer_is_flagged_in_the_job_status_and_by_one_warning_event(
    kube, api, namespace, start_operator, pod_runner, host_claim
):
    """The worker's calibration flags `flat`; the operator lists it in `status.degenerateReviewers` and says so
    once in a `DegenerateReviewer` Warning event (what `kubectl describe sjob` shows)."""
    host_claim("results")
    sim = SimulatedBackend(GraScript(score=constant_flat), models=["sim", "flat"])
    url = sim.start_in_thread()
    try:
        seeds = "".join(json.dumps(s) + "\n" for s in SEEDS)
        kube.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seeds"}, "data": {"seeds.jsonl": seeds}}
        )
        spec = job_spec(url, "configmap://seeds/seeds.jsonl", "pvc://results/run")
        spec["models"] = [
            {"name": "sim", "endpoint": {"url": url, "model": "sim"}},
            {"name": "flat", "endpoint": {"url": url, "model": "flat"}, "roles": ["reviewer"]},
        ]
        spec["generation"] = {"target": 4, "rounds": 1}
        spec["review"] = {"reviewers": 2, "allowSameModel": True}
        spec["workers"] = {"shards": 1, "parallelism": 1, "backoffLimitPerIndex": 0}
        done = run_to_the_end(kube, api, namespace, start_operator, spec, timeout=120)
    finally:
        sim.stop_thread()
    assert done["phase"] == "Succeeded", done.get("lastError")
    assert done["shards"]["0"]["degenerateReviewers"] == ["flat"] == done["degenerateReviewers"]
    events = kube.get("events", None, "--field-selector=involvedObject.name=sj")["items"]
    [warning] = [e for e in events if e["reason"] == "DegenerateReviewer"]
    assert (
        warning["type"] == "Warning" and "flat" in warning["message"] and "excluded from the gate" in warning["message"]
    )
    assert "model(s) flat (" in warning["message"]  # only the degenerate one is named


@pytest.fixture
def tiny_model() -> Any:
    from quorum.llm.local import LocalModelServer

    with LocalModelServer(parallel=2, ctx_size=2048) as server:
        yield server


@pytest.mark.model
def test_synthesis_job_pods_run_the_gra_stages_against_the_real_tiny_model(
    kube, api, namespace, start_operator, pod_runner, host_claim, tiny_model, tmp_path: Path
):
    """The same path with a real model server: the packaged SmolLM2 on 127.0.0.1 as an external endpoint."""
    results = host_claim("results")
    seeds = "".join(json.dumps(s) + "\n" for s in SEEDS[:2] + SEEDS[4:6])
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seeds"}, "data": {"seeds.jsonl": seeds}})
    spec = job_spec(tiny_model.base_url, "configmap://seeds/seeds.jsonl", "pvc://results/run")
    spec["models"] = [{"name": "smollm", "endpoint": {"url": tiny_model.base_url, "model": tiny_model.alias}}]
    spec["generation"] = {"target": 2, "rounds": 1, "samplesPerRound": 2, "fewShot": 1, "maxTokens": 160}
    spec["review"] = {"reviewers": 1, "allowSameModel": True, "maxTokens": 120}
    spec["adjudication"] = {"maxTokens": 120}
    spec["calls"] = {"timeoutSeconds": 120, "maxRetries": 1}
    spec["workers"] = {"shards": 1, "parallelism": 1, "backoffLimitPerIndex": 0}
    done = run_to_the_end(kube, api, namespace, start_operator, spec, timeout=420)
    assert done["phase"] == "Succeeded", done.get("lastError")
    out = results / "run"
    manifest = json.loads((out / "manifest.json").read_text())
    kept = (out / manifest["files"]["dataset"]).read_text().splitlines()
    rejected = (out / "rejected.jsonl").read_text().splitlines()
    counts = manifest["counts"]
    assert counts["generated"] >= 1
    assert {k: done["counts"][k] for k in COUNT_KEYS} == {k: counts[k] for k in COUNT_KEYS}
    assert len(kept) == counts["accepted"] == done["output"]["records"]
    # Every generated candidate ends up somewhere: kept, or in rejected.jsonl with its reason.
    generated_ids = {
        json.loads(line)["id"] for line in kept + rejected if json.loads(line).get("id", "").startswith("r")
    }
    assert len(generated_ids) >= counts["accepted"] + counts["rejected"] - counts["failed"]
    for line in kept:
        provenance = json.loads(line)["provenance"]
        assert provenance["generator"] == "smollm" and provenance["reviewers"] == ["smollm"]
