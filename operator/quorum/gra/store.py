"""The on-disk layout of a run and its commit protocol.

    <out>/shards/run.json                        fingerprint of the output-relevant spec (guards resumes)
    <out>/shards/calibration.json                the run's reviewer calibration (the first shard to finish it)
    <out>/shards/shard-0003/digests.jsonl        seed digests, domain labels and calibration reviews, appended
    <out>/shards/shard-0003/domains.json         every seed's domain label (the same in every shard)
    <out>/shards/shard-0003/calibration.json     reviewer health measured on the calibration set
    <out>/shards/shard-0003/round-01.journal.jsonl  finished samples of an uncommitted round, one per line
    <out>/shards/shard-0003/round-01/            committed round: accepted.jsonl, rejected.jsonl,
                                                 embeddings.npy, commit.json (written last)
    <out>/shards/shard-0003/done.json            the shard stopped (target share reached or rounds spent)

A round directory is built under a temporary name and renamed into place; `commit.json` inside it is written
last, so a directory without it is an interrupted commit and is redone from the journal.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from quorum.gra.records import read_jsonl, write_atomic


class FingerprintMismatch(RuntimeError):
    """The output directory holds work from a spec that differs in parts that change the output."""


class ShardStore:
    def __init__(self, out_dir: Path, shard_index: int) -> None:
        self.root = shards_root(out_dir) / f"shard-{shard_index:04d}"
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def digests_path(self) -> Path:
        return self.root / "digests.jsonl"

    def journal_path(self, round_number: int) -> Path:
        return self.root / f"round-{round_number:02d}.journal.jsonl"

    def round_dir(self, round_number: int) -> Path:
        return self.root / f"round-{round_number:02d}"

    def committed(self, round_number: int) -> dict[str, Any] | None:
        marker = self.round_dir(round_number) / "commit.json"
        return json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else None

    def read_journal(self, round_number: int) -> dict[str, dict[str, Any]]:
        """Finished samples by id; a line cut short by a crash is ignored (that sample is redone)."""
        found: dict[str, dict[str, Any]] = {}
        for record in read_jsonl(self.journal_path(round_number)):
            found.setdefault(record["id"], record)
        return found

    def commit_round(self, round_number: int, files: dict[str, bytes], marker: dict[str, Any]) -> None:
        final = self.round_dir(round_number)
        temp = self.root / f".round-{round_number:02d}.tmp"
        for stale in (temp, final):
            if stale.exists():
                shutil.rmtree(stale)
        temp.mkdir()
        for name, data in files.items():
            write_atomic(temp / name, data)
        temp.rename(final)
        write_atomic(final / "commit.json", json.dumps(marker, indent=2).encode())
        self.journal_path(round_number).unlink(missing_ok=True)

    def write_domains(self, labels: dict[str, str]) -> None:
        write_atomic(self.root / "domains.json", json.dumps(labels, indent=1).encode())

    def domains(self) -> dict[str, str]:
        path = self.root / "domains.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    @property
    def shared_calibration_path(self) -> Path:
        return self.root.parent / "calibration.json"

    @property
    def calibration_path(self) -> Path:
        return self.root / "calibration.json"

    def write_calibration(self, health: dict[str, Any]) -> None:
        write_atomic(self.calibration_path, json.dumps(health, indent=2).encode())

    def calibration(self) -> dict[str, Any] | None:
        path = self.calibration_path
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    @property
    def done_path(self) -> Path:
        return self.root / "done.json"

    def done(self) -> dict[str, Any] | None:
        return json.loads(self.done_path.read_text(encoding="utf-8")) if self.done_path.exists() else None

    def mark_done(self, summary: dict[str, Any]) -> None:
        write_atomic(self.done_path, json.dumps(summary, indent=2).encode())

    def committed_rounds(self) -> list[tuple[int, dict[str, Any]]]:
        rounds = []
        for path in sorted(self.root.glob("round-??")):
            marker = self.committed(int(path.name[-2:]))
            if marker is not None:
                rounds.append((int(path.name[-2:]), marker))
        return rounds

    def round_records(self, round_number: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        folder = self.round_dir(round_number)
        return read_jsonl(folder / "accepted.jsonl"), read_jsonl(folder / "rejected.jsonl")


def shards_root(out_dir: Path) -> Path:
    return out_dir / "shards"


def claim_output(out_dir: Path, fingerprint: str, spec_wire: dict[str, Any], *, restart: bool = False) -> None:
    """Bind the output directory to one fingerprint. A different one is refused unless `restart`, which
    deletes all earlier work (shards and final files) first."""
    root = shards_root(out_dir)
    run_file = root / "run.json"
    if restart:
        reset_output(out_dir)
    if run_file.exists():
        existing = json.loads(run_file.read_text(encoding="utf-8"))
        if existing.get("fingerprint") != fingerprint:
            raise FingerprintMismatch(
                f"{out_dir} holds work of a different spec (fingerprint {existing.get('fingerprint')}, now "
                f"{fingerprint}); use another output directory or start over with --restart"
            )
        return
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(run_file, json.dumps({"fingerprint": fingerprint, "spec": spec_wire}, indent=2).encode())


def reset_output(out_dir: Path) -> None:
    shutil.rmtree(shards_root(out_dir), ignore_errors=True)
    shutil.rmtree(out_dir / "report", ignore_errors=True)
    for name in ("dataset.jsonl", "dataset.parquet", "rejected.jsonl", "manifest.json"):
        (out_dir / name).unlink(missing_ok=True)
