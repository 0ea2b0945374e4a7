"""One set of counts: the live board, the shards' status reports, the manifest, the final summary and the
SynthesisJob status agree, on a run with failed calls, duplicates, adjudications and a target trim. On the
same run, a rejected record carries the same provenance as an accepted one."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from quorum.api.synthesis import SynthesisCounts, count_keys
from quorum.cli.synth import StageBoard, summary_line
from quorum.gra import GraConfig, prompts, run_local
from quorum.gra.output import PROVENANCE
from quorum.gra.records import read_jsonl
from quorum.gra.store import ShardStore
from quorum.gra.testing import GraScript
from quorum.handlers.synthesis import COUNT_KEYS, _counts
from quorum.llm.simulated import SimReply, SimRequest, SimulatedBackend
from quorum.worker.synth import PodJob, run_worker_merge
from tests.gra.conftest import SEEDS, endpoints_for, make_spec

POOL = ["a", "b", "c", "d"]


def split_scores(request: SimRequest, round_name: str) -> int:
    """Mostly agreed high scores; one review in seven disagrees hard, so some samples are adjudicated."""
    key = sum(map(ord, request.prompt + request.model))
    return 2 if key % 7 == 0 else 9 - key % 2


def failures(request: SimRequest) -> SimReply | None:
    """Every digest of seed `code-1` fails (a failed per-seed call); one generation in seven fails (a failed
    candidate) whatever the retries."""
    if request.schema_name == prompts.DIGEST and "code seed task number 1" in request.prompt:
        return SimReply(status=500, text="digest down")
    if request.schema_name == prompts.GENERATE and (request.body.get("seed") or 0) % 7 == 0:
        return SimReply(status=500, text="generator down")
    return None


@dataclass
class FailingRun:
    manifest: dict[str, Any]
    out: Path
    board: StageBoard
    config: GraConfig


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> FailingRun:
    seed_dir = tmp_path_factory.mktemp("counts")
    (seed_dir / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    script = GraScript(score=split_scores, duplicate_every=3, fail=failures, adjudicate=lambda request: "accept")
    sim = SimulatedBackend(script, models=POOL)
    url = sim.start_in_thread()
    board = StageBoard(target=9, terminal=False)
    try:
        spec = make_spec(
            url,
            POOL,
            review={"reviewers": 2, "greyZone": "adjudicate"},
            generation={"target": 9, "rounds": 2, "samplesPerRound": 16},
            postprocess={"dedup": {"enabled": True, "threshold": 0.9}},
            workers={"shards": 2, "parallelism": 2},
            calls={"maxRetries": 1},
        )
        config = GraConfig.from_spec(spec, base_dir=seed_dir)
        run = run_local(config, seed_dir / "out", endpoints=endpoints_for(spec), progress=board)
    finally:
        sim.stop_thread()
    return FailingRun(run.manifest, seed_dir / "out", board, config)


def test_manifest_summary_board_and_status_agree(failing_run: FailingRun) -> None:
    manifest, out, board, config = failing_run.manifest, failing_run.out, failing_run.board, failing_run.config
    counts = manifest["counts"]

    # the run exercised what it should
    assert counts["failed"] > 0 and counts["failedCalls"] > 0 and counts["duplicates"] > 0
    assert counts["adjudicated"] > 0 and counts["accepted"] == 9

    # the counts mean what their definitions say, against the files
    candidates = [r for r in read_jsonl(out / "rejected.jsonl") if r.get("kind") != "call"]
    calls = [r for r in read_jsonl(out / "rejected.jsonl") if r.get("kind") == "call"]
    assert len(read_jsonl(out / "dataset.jsonl")) == counts["accepted"]
    assert len(candidates) == counts["rejected"] and len(calls) == counts["failedCalls"]
    for status, key in (("failed", "failed"), ("duplicate", "duplicates"), ("surplus", "surplus")):
        assert sum(r["status"] == status for r in candidates) == counts[key]
    by_domain = manifest["byDomain"].values()
    for key in ("seeds", "generated", "accepted", "rejected", "adjudicated", "failed"):
        assert sum(d[key] for d in by_domain) == counts[key], key
    assert counts["seeds"] == 6

    # the live board before the merge: the shards' own counts, the same ones their status reports carry
    live = board.funnel()
    status = {"shards": {str(i): {"counts": ShardStore(out, i).done()["counts"], "fingerprint": "f"} for i in range(2)}}
    summed = _counts(status, "f")  # what the operator puts in status.counts while the shards run
    assert live == {name: summed[field.alias or name] for name, field in SynthesisCounts.model_fields.items()}
    assert live["failed"] == counts["failed"] and live["failed_calls"] == counts["failedCalls"]

    # after the merge: the board, the summary line and the status all show the manifest's counts
    board.final(SynthesisCounts.model_validate(counts))
    assert {SynthesisCounts.model_fields[k].alias or k: v for k, v in board.funnel().items()} == counts
    line = summary_line(manifest)
    shown = {
        "accepted": r"(\d+) accepted",
        "generated": r"of (\d+) generated",
        "round1Passed": r"round 1 pass (\d+)",
        "round2Passed": r"round 2 pass (\d+)",
        "adjudicated": r"adjudicated (\d+)",
        "rejected": r"rejected (\d+)",
        "duplicates": r"duplicates (\d+)",
        "failed": r"failed (\d+),",
        "surplus": r"surplus (\d+)",
        "failedCalls": r"failed per-seed calls (\d+)",
    }
    assert {k: int(re.search(p, line).group(1)) for k, p in shown.items()} == {k: counts[k] for k in shown}
    job = PodJob(name="t", namespace="default", fingerprint="", output_uri="file://out", config=config)
    merged = run_worker_merge(job)
    assert set(COUNT_KEYS) == set(count_keys()) == set(counts)
    assert {k: merged["counts"][k] for k in COUNT_KEYS} == counts and merged["records"] == counts["accepted"]


def test_a_rejected_record_carries_the_provenance_of_an_accepted_one(failing_run: FailingRun) -> None:
    kept = read_jsonl(failing_run.out / "dataset.jsonl")
    rejected = [r for r in read_jsonl(failing_run.out / "rejected.jsonl") if r["kind"] == "sample"]
    assert {"failed", "duplicate", "surplus"} <= {r["status"] for r in rejected}
    assert any(r["provenance"]["review"]["instruction"] is None for r in rejected)  # failed before any review

    def published(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows' provenance as the dataset's Arrow schema reads it: a key it lacks, a key it does not
        have or a value of another type makes this differ from the rows themselves."""
        provenance = [r["provenance"] for r in rows]
        table = pa.Table.from_pylist([{"p": p} for p in provenance], schema=pa.schema([("p", PROVENANCE)]))
        assert [row["p"] for row in table.to_pylist()] == provenance
        return provenance

    accepted_keys = {key for p in published(kept) for key in p}
    for provenance, row in zip(published(rejected), rejected, strict=True):
        assert set(provenance) == accepted_keys, row["id"]
        assert provenance["status"] == row["status"] and provenance["gatePath"]
        assert (row["error"] is not None) == (row["status"] == "failed"), row["id"]
    for row in rejected:
        if row["status"] == "failed":
            assert row["error"]["stage"] == "generate" and row["error"]["reason"] == "HTTP500"
            assert row["provenance"]["gatePath"].endswith("failed:generate") and row["instruction"] is None
        else:
            assert row["instruction"] and row["output"], row["id"]
