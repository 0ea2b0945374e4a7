"""EnsembleRouter calibration data in `s3://` (the real S3 server of the `s3_server` fixture): read through
`quorum.locations` like a SynthesisJob's seeds, JSONL and Parquet alike, with the bucket named when the
credentials are wrong."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from quorum.api.ensemble import CalibrationDataset
from quorum.cli.main import app
from quorum.llm.simulated import SimulatedBackend
from quorum.locations import as_location
from quorum.routing.dataset import DatasetError, load_dataset
from tests.routing.pool import responder_for, write_dataset


def upload(local: Path, uri: str, data_format: str) -> None:
    """Put the JSONL calibration file at `uri`, as JSONL or converted to Parquet."""
    data = local.read_bytes()
    if data_format == "parquet":
        records = [json.loads(line) for line in data.decode().splitlines()]
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(records), buffer)
        data = buffer.getvalue()
    as_location(uri).write_bytes(data)


@pytest.mark.parametrize("data_format", ["jsonl", "parquet"])
def test_calibration_data_in_s3_loads_as_the_same_local_file_does(s3_uri: str, tmp_path: Path, data_format: str):
    local = write_dataset(tmp_path / "calibration.jsonl")
    uri = f"{s3_uri}/calibration.{data_format}"
    upload(local, uri, data_format)
    from_s3 = load_dataset(CalibrationDataset(uri=uri, format=data_format), base_dir=tmp_path)
    from_disk = load_dataset(CalibrationDataset(uri="file://calibration.jsonl"), base_dir=tmp_path)
    assert len(from_s3) == 96 and from_s3 == from_disk  # every question of tests/routing/pool.py


def test_calibration_data_in_s3_with_wrong_credentials_names_the_bucket(
    s3_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    uri = f"{s3_uri}/calibration.jsonl"
    upload(write_dataset(tmp_path / "calibration.jsonl"), uri, "jsonl")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(DatasetError, match=r"bucket 'quorum'.*credentials"):
        load_dataset(CalibrationDataset(uri=uri), base_dir=tmp_path)


def test_a_missing_calibration_object_in_s3_is_named(s3_uri: str, tmp_path: Path):
    with pytest.raises(DatasetError, match=r"calibration dataset s3://quorum/.*/absent\.jsonl does not exist"):
        load_dataset(CalibrationDataset(uri=f"{s3_uri}/absent.jsonl"), base_dir=tmp_path)


def test_router_calibrate_reads_its_dataset_from_s3(s3_uri: str, tmp_path: Path):
    uri = f"{s3_uri}/calibration.parquet"
    upload(write_dataset(tmp_path / "calibration.jsonl"), uri, "parquet")
    (tmp_path / "calibration.jsonl").unlink()  # only the S3 copy is left
    sims = {m: SimulatedBackend(responder_for(m), models=[m]) for m in ("alpha", "beta")}
    urls = {m: s.start_in_thread() for m, s in sims.items()}
    spec = {
        "models": [{"name": m, "endpoint": {"url": u, "model": m}} for m, u in urls.items()],
        "calibration": {
            "dataset": {"uri": uri, "format": "parquet"},
            "tasks": [{"name": "arithmetic", "kind": "math"}, {"name": "trivia", "kind": "multiple-choice"}],
            "clusters": 8,
            "samples": 1,
        },
        "voting": {"samples": 2},
    }
    manifest = tmp_path / "router.yaml"
    document = {"apiVersion": "quorum.dev/v1alpha1", "kind": "EnsembleRouter", "metadata": {"name": "e"}}
    manifest.write_text(yaml.safe_dump({**document, "spec": spec}))
    try:
        result = CliRunner().invoke(app, ["router", "calibrate", str(manifest), "--out", str(tmp_path / "out")])
    finally:
        for sim in sims.values():
            sim.stop_thread()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["questions"] == 96
    assert (tmp_path / "out" / "artifact.json").is_file()
