"""`s3://` locations against a real S3 server (SeaweedFS on 127.0.0.1, started by the `s3_server` fixture):
whole-object writes, listing, journals without append, and a clear error naming the bucket when the
credentials are wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from quorum.gra.store import JournalWriter, read_journal
from quorum.locations import StorageAccessError, as_location
from tests.gra.conftest import SEEDS, make_spec


def test_an_s3_location_reads_lists_and_deletes_like_a_directory(s3_uri: str) -> None:
    root = as_location(s3_uri)
    (root / "a" / "one.json").write_bytes(b'{"n": 1}')
    (root / "a" / "two.json").write_bytes(b'{"n": 2}')
    (root / "b.txt").write_bytes("héllo".encode())
    assert json.loads((root / "a" / "two.json").read_text()) == {"n": 2}
    assert [c.name for c in (root / "a").children("*.json")] == ["one.json", "two.json"]
    assert (root / "b.txt").read_text() == "héllo"
    (root / "a").delete_tree()
    assert not (root / "a" / "one.json").exists()
    assert (root / "b.txt").exists()
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        (root / "missing.json").read_bytes()


def test_an_s3_journal_is_parts_that_read_back_in_order_without_duplicates(s3_uri: str) -> None:
    folder = as_location(s3_uri) / "round-01.journal"
    with JournalWriter(folder, flush_seconds=0.0) as journal:
        for i in range(3):
            journal.write({"id": f"s{i}"})
    with JournalWriter(folder, flush_seconds=3600) as resumed:  # a second process, buffered until close
        resumed.write({"id": "s3"})
        assert [e["id"] for e in read_journal(folder)] == ["s0", "s1", "s2"]
    assert [e["id"] for e in read_journal(folder)] == ["s0", "s1", "s2", "s3"]
    assert len(folder.children("*.jsonl")) == 4


def test_wrong_credentials_fail_with_the_bucket_named(s3_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StorageAccessError, match=r"bucket 'quorum'.*credentials"):
        (as_location(s3_uri) / "x.json").write_bytes(b"{}")
    with pytest.raises(StorageAccessError, match="bucket 'quorum'"):
        as_location(s3_uri).check_access()


def test_synth_run_with_wrong_credentials_exits_non_zero_naming_the_bucket(
    s3_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    spec = make_spec("http://127.0.0.1:9/v1", ["a", "b", "c"], review={"reviewers": 2})
    job = {"apiVersion": "quorum.dev/v1alpha1", "kind": "SynthesisJob", "metadata": {"name": "w"}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump({**job, "spec": spec.to_wire()}))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    command = [sys.executable, "-m", "quorum.cli.main", "synth", "run", "job.yaml", "--local", "--out", s3_uri]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "bucket 'quorum'" in message and "AWS_ACCESS_KEY_ID" in message
    assert "Traceback" not in result.stderr
