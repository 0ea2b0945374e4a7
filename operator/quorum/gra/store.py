"""The layout of a run's output location and its commit protocol, the same on a disk and in an object store.

    <out>/shards/run.json                          fingerprint of the output-relevant spec (guards resumes)
    <out>/shards/calibration.json                  the run's reviewer calibration (the first shard to finish it)
    <out>/shards/shard-0003/digests.journal/       seed digests, domain labels and calibration reviews, parts
    <out>/shards/shard-0003/domains.json           every seed's domain label (the same in every shard)
    <out>/shards/shard-0003/calibration.json       reviewer health measured on the calibration set
    <out>/shards/shard-0003/round-01.journal/      finished samples of an uncommitted round, journal parts
    <out>/shards/shard-0003/round-01/              committed round: accepted.jsonl, rejected.jsonl,
                                                   embeddings.npy, commit.json (written last)
    <out>/shards/shard-0003/done.json              the shard stopped (target share reached or rounds spent)

Object stores have no rename and no append, so the protocol uses neither: a round's files are written in place
and `commit.json` last (a round directory without it is an interrupted commit, redone from the journal), and a
journal is a folder of part files that readers concatenate, deduplicating by sample id. Samples go in and
come out of these files as `SampleRecord`s (`to_json` / `from_json` lines); the engine never sees their JSON.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from quorum.gra.records import parse_jsonl, read_jsonl, run_jsonl_bytes
from quorum.gra.sample import SampleRecord
from quorum.locations import Location, as_location

JOURNAL_FLUSH_SECONDS = 1.0
"""Object stores: how often buffered journal lines become a new part (the most finished work a kill loses)."""


class FingerprintMismatch(RuntimeError):
    """The output location holds work from a spec that differs in parts that change the output."""


class JournalWriter:
    """Appends finished work so a killed run can resume it.

    On a local disk each process writes one part file and flushes every line: a SIGKILL loses nothing that
    finished. An object store cannot append, so lines are buffered and written as a new part object every
    `flush_seconds` and on close; a kill loses at most that much finished work, which the resume asks again.
    """

    def __init__(self, folder: Location, flush_seconds: float = JOURNAL_FLUSH_SECONDS) -> None:
        self.folder = folder
        self.flush_seconds = flush_seconds
        self._prefix = f"{time.time_ns():020d}-{os.getpid()}"
        self._parts = 0
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._handle: BinaryIO | None = None
        if folder.is_local:
            path = folder.local_path() / f"{self._prefix}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("ab")

    def write(self, record: dict[str, Any]) -> None:
        if self._handle is not None:
            self._handle.write(run_jsonl_bytes((record,)))
            self._handle.flush()
            return
        self._buffer.append(record)
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        part = self.folder / f"{self._prefix}-{self._parts:05d}.jsonl"
        part.write_bytes(run_jsonl_bytes(self._buffer))
        self._parts += 1
        self._buffer = []

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        else:
            self.flush()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class SampleJournal:
    """A round's journal of finished samples: each `SampleRecord` as one `to_json` line."""

    def __init__(self, folder: Location) -> None:
        self._writer = JournalWriter(folder)

    def write(self, record: SampleRecord) -> None:
        self._writer.write(record.to_json())

    def close(self) -> None:
        self._writer.close()


def read_journal(folder: Location) -> list[dict[str, Any]]:
    """Every entry of every part, in write order; a line cut short by a crash is skipped (its work is redone)."""
    return [entry for part in folder.children("*.jsonl") for entry in parse_jsonl(part.read_text())]


class ShardStore:
    def __init__(self, out_dir: Path | Location, shard_index: int) -> None:
        self.root = shards_root(out_dir) / f"shard-{shard_index:04d}"

    @property
    def digests_journal(self) -> Location:
        return self.root / "digests.journal"

    def read_digests(self) -> list[dict[str, Any]]:
        return read_journal(self.digests_journal)

    def journal(self, round_number: int) -> Location:
        return self.root / f"round-{round_number:02d}.journal"

    def round_dir(self, round_number: int) -> Location:
        return self.root / f"round-{round_number:02d}"

    def committed(self, round_number: int) -> dict[str, Any] | None:
        marker = self.round_dir(round_number) / "commit.json"
        return json.loads(marker.read_text()) if marker.exists() else None

    def open_journal(self, round_number: int) -> SampleJournal:
        return SampleJournal(self.journal(round_number))

    def read_journal(self, round_number: int) -> dict[str, SampleRecord]:
        """Finished samples by id (the first entry wins: a sample journaled twice is one sample)."""
        found: dict[str, SampleRecord] = {}
        for entry in read_journal(self.journal(round_number)):
            if entry["id"] not in found:
                found[entry["id"]] = SampleRecord.from_json(entry)
        return found

    def commit_round(
        self, round_number: int, records: list[SampleRecord], vectors: np.ndarray | None, marker: dict[str, Any]
    ) -> None:
        """The round's records (kept ones in accepted.jsonl, the others in rejected.jsonl), the embeddings of
        the kept ones (row `i` is the `i`-th kept record) and, last, the marker that makes it committed."""
        final = self.round_dir(round_number)
        final.delete_tree()  # an interrupted commit: redone from the journal
        (final / "accepted.jsonl").write_bytes(run_jsonl_bytes(r.to_json() for r in records if r.is_kept))
        (final / "rejected.jsonl").write_bytes(run_jsonl_bytes(r.to_json() for r in records if not r.is_kept))
        if vectors is not None:
            buffer = io.BytesIO()
            np.save(buffer, vectors)
            (final / "embeddings.npy").write_bytes(buffer.getvalue())
        (final / "commit.json").write_bytes(json.dumps(marker, indent=2).encode())
        self.journal(round_number).delete_tree()

    def write_domains(self, labels: dict[str, str]) -> None:
        (self.root / "domains.json").write_bytes(json.dumps(labels, indent=1).encode())

    def domains(self) -> dict[str, str]:
        path = self.root / "domains.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def shared_calibration_path(self) -> Location:
        return self.root.parent / "calibration.json"

    @property
    def calibration_path(self) -> Location:
        return self.root / "calibration.json"

    def write_calibration(self, health: dict[str, Any]) -> None:
        self.calibration_path.write_bytes(json.dumps(health, indent=2).encode())

    def calibration(self) -> dict[str, Any] | None:
        path = self.calibration_path
        return json.loads(path.read_text()) if path.exists() else None

    @property
    def done_path(self) -> Location:
        return self.root / "done.json"

    def done(self) -> dict[str, Any] | None:
        return json.loads(self.done_path.read_text()) if self.done_path.exists() else None

    def mark_done(self, summary: dict[str, Any]) -> None:
        self.done_path.write_bytes(json.dumps(summary, indent=2).encode())

    def committed_rounds(self) -> list[tuple[int, dict[str, Any]]]:
        rounds = []
        for folder in self.root.children("round-??"):
            marker = self.committed(int(folder.name[-2:]))
            if marker is not None:
                rounds.append((int(folder.name[-2:]), marker))
        return rounds

    def round_records(self, round_number: int) -> tuple[list[SampleRecord], list[SampleRecord]]:
        """A committed round's (kept, other) records."""
        folder = self.round_dir(round_number)
        kept, other = (
            [SampleRecord.from_json(entry) for entry in read_jsonl(folder / name)]
            for name in ("accepted.jsonl", "rejected.jsonl")
        )
        return kept, other

    def round_vectors(self, round_number: int) -> np.ndarray | None:
        """Embeddings of a committed round's kept records, in their order (None when dedup was off)."""
        path = self.round_dir(round_number) / "embeddings.npy"
        return np.load(io.BytesIO(path.read_bytes())) if path.exists() else None


def shards_root(out_dir: Path | Location) -> Location:
    return as_location(out_dir) / "shards"


def run_fingerprint(out_dir: Path | Location) -> str | None:
    run_file = shards_root(out_dir) / "run.json"
    return json.loads(run_file.read_text()).get("fingerprint") if run_file.exists() else None


def claim_output(
    out_dir: Path | Location, fingerprint: str, spec_wire: dict[str, Any], *, restart: bool = False
) -> None:
    """Bind the output location to one fingerprint. A different one is refused unless `restart`, which
    deletes all earlier work (shards and final files) first."""
    out = as_location(out_dir)
    out.check_access()
    if restart:
        reset_output(out)
    existing = run_fingerprint(out)
    if existing is not None:
        if existing != fingerprint:
            raise FingerprintMismatch(
                f"{out} holds work of a different spec (fingerprint {existing}, now "
                f"{fingerprint}); use another output directory or start over with --restart"
            )
        return
    (shards_root(out) / "run.json").write_bytes(
        json.dumps({"fingerprint": fingerprint, "spec": spec_wire}, indent=2).encode()
    )


def reset_output(out_dir: Path | Location) -> None:
    out = as_location(out_dir)
    shards_root(out).delete_tree()
    (out / "report").delete_tree()
    for name in (
        "dataset.jsonl",
        "dataset.parquet",
        "rejected.jsonl",
        "manifest.json",
        "README.md",
        "dataset_info.json",
    ):
        (out / name).delete()
