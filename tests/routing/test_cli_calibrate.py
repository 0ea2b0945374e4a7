"""`quorum router calibrate FILE` end to end against simulated backends: artifact, report and summary."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from quorum.cli.main import app
from quorum.llm.simulated import SimulatedBackend
from tests.routing.pool import responder_for, write_dataset


def test_calibrate_takes_the_manifest_as_file_and_writes_the_artifact_and_its_report(tmp_path):
    write_dataset(tmp_path / "calibration.jsonl")
    sims = {m: SimulatedBackend(responder_for(m), models=[m]) for m in ("alpha", "beta")}
    urls = {m: s.start_in_thread() for m, s in sims.items()}
    document = {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "EnsembleRouter",
        "metadata": {"name": "e"},
        "spec": {
            "models": [{"name": m, "endpoint": {"url": u, "model": m}} for m, u in urls.items()],
            "calibration": {
                "dataset": {"uri": "file://calibration.jsonl"},
                "tasks": [{"name": "arithmetic", "kind": "math"}, {"name": "trivia", "kind": "multiple-choice"}],
                "clusters": 8,
                "samples": 1,
            },
            "voting": {"samples": 2},
        },
    }
    manifest = tmp_path / "router.yaml"
    manifest.write_text(yaml.safe_dump(document))
    try:
        result = CliRunner().invoke(app, ["router", "calibrate", str(manifest), "--out", str(tmp_path / "out")])
    finally:
        for sim in sims.values():
            sim.stop_thread()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["clusterSizes"]["min"] >= 10  # calibration.minClusterSize by default
    assert summary["evaluation"]["routed"] > max(summary["evaluation"]["models"].values())
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"artifact.json", "scores.json", "report.md", "report.png"}
    assert "## Held-out accuracy" in (tmp_path / "out" / "report.md").read_text()
