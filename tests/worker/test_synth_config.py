"""The worker reads exactly what the operator mounts: the builder's ConfigMap round-trips into the engine's
config, endpoints and keys come from the pod, and bad pod settings fail with a clear termination message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from quorum.api.synthesis import SynthesisJobSpec, output_fingerprint
from quorum.builders.meta import Owner
from quorum.builders.synthesis import CONFIG_KEY, worker_config_map
from quorum.cli.main import app
from quorum.worker.podfs import FS_ROOT_ENV
from quorum.worker.synth import PodJob, WorkerConfigError, pod_endpoints

SPEC = {
    "models": [
        {"name": "gen-a", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "a"}, "maxConcurrency": 3},
        {
            "name": "judge",
            "endpoint": {"url": "https://llm.example/v1", "model": "j", "apiKeySecretRef": {"name": "k", "key": "v"}},
        },
    ],
    "seeds": {"uri": "configmap://seeds/seeds.jsonl"},
    "output": {"uri": "pvc://results/run-1"},
    "review": {"reviewers": 1},
    "workers": {"shards": 4},
}


def mounted_config(root: Path) -> tuple[SynthesisJobSpec, Path]:
    """Write the operator's worker ConfigMap where the pod runner would mount it under `root`."""
    spec = SynthesisJobSpec.model_validate(SPEC)
    owner = Owner(kind="SynthesisJob", name="sj", namespace="team", uid="u-1")
    config_map = worker_config_map(owner, spec)
    path = root / "etc/quorum" / CONFIG_KEY
    path.parent.mkdir(parents=True)
    path.write_text(config_map["data"][CONFIG_KEY])
    return spec, path


def test_the_mounted_config_becomes_the_engine_config_with_paths_under_the_pod_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    spec, path = mounted_config(tmp_path)
    monkeypatch.setenv(FS_ROOT_ENV, str(tmp_path))
    job = PodJob.load(path)
    assert (job.name, job.namespace, job.fingerprint) == ("sj", "team", output_fingerprint(spec))
    assert job.output_uri == "pvc://results/run-1"
    assert job.out_dir.local_path() == tmp_path / "data/pvc/results/run-1"
    assert job.config.resolve_uri(job.config.spec.seeds.uri) == tmp_path / "data/configmap/seeds/seeds.jsonl"
    # Another pod's stand-in root gives the same engine fingerprint: shards and the merge agree.
    other = tmp_path / "other"
    _, other_path = mounted_config(other)
    monkeypatch.setenv(FS_ROOT_ENV, str(other))
    assert PodJob.load(other_path).config.fingerprint() == job.config.fingerprint()


def test_endpoints_take_keys_from_the_pod_environment_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    _, path = mounted_config(tmp_path)
    spec = PodJob.load(path).config.spec
    monkeypatch.delenv("QUORUM_API_KEY_JUDGE", raising=False)
    with pytest.raises(WorkerConfigError, match=r"\$QUORUM_API_KEY_JUDGE is not set"):
        pod_endpoints(spec)
    monkeypatch.setenv("QUORUM_API_KEY_JUDGE", "sk-test")
    by_name = {e.name: e for e in pod_endpoints(spec)}
    assert by_name["judge"].api_key == "sk-test" and by_name["judge"].base_url == "https://llm.example/v1"
    assert by_name["gen-a"].api_key is None and by_name["gen-a"].max_concurrency == 3
    assert "sk-test" not in path.read_text()


def test_a_worker_without_its_shard_index_fails_with_a_one_line_termination_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    _, path = mounted_config(tmp_path)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/termination-log").write_text("")
    monkeypatch.setenv(FS_ROOT_ENV, str(tmp_path))
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    result = CliRunner().invoke(app, ["worker", "synth", "--config", "/etc/quorum/" + CONFIG_KEY])
    assert result.exit_code == 1
    message = (tmp_path / "dev/termination-log").read_text()
    assert message == "WorkerConfigError: $JOB_COMPLETION_INDEX must be the shard index (got None)"
    assert yaml.safe_load(path.read_text())["kind"] == "SynthesisJob"
