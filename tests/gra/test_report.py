"""The run report draws the run it belongs to: every plot is a readable image of the size its data asks for, the
score histograms hold exactly the run's reviews, the tables repeat the manifest's counts, and the diversity
figures are the cosine distances they claim to be."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from quorum.gra import GraConfig, run_local
from quorum.gra.report import FUNNEL, diversity, review_scores, write_report
from quorum.gra.sample import SampleRecord
from quorum.gra.store import ShardStore
from quorum.gra.testing import GraScript
from quorum.llm.simulated import SimulatedBackend
from tests.gra.conftest import SEEDS, endpoints_for, make_spec

PANEL = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-model run with dedup on (so the embedding map and diversity plot are drawn)."""
    folder = tmp_path_factory.mktemp("report")
    (folder / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    sim = SimulatedBackend(GraScript(duplicate_every=4), models=list(PANEL))
    url = sim.start_in_thread()
    try:
        spec = make_spec(
            url,
            list(PANEL),
            review={"reviewers": 2},
            generation={"target": 8, "rounds": 1, "samplesPerRound": 10},
            postprocess={"dedup": {"enabled": True}},
        )
        run_local(GraConfig.from_spec(spec, base_dir=folder), folder / "out", endpoints=endpoints_for(spec))
    finally:
        sim.stop_thread()
    return folder / "out"


def records_of(out: Path) -> list[SampleRecord]:
    store = ShardStore(out, 0)
    records: list[SampleRecord] = []
    for round_number, _ in store.committed_rounds():
        accepted, rejected = store.round_records(round_number)
        records.extend([*accepted, *rejected])
    return records


def pixels(path: Path) -> tuple[int, int]:
    image = imread(path)
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 2, f"{path.name} is blank"
    return image.shape[1], image.shape[0]


def test_every_plot_is_a_readable_image_sized_for_its_data(run_dir: Path) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    report = run_dir / "report"
    drawn = sorted(p.name for p in report.glob("*.png"))
    assert drawn == ["diversity.png", "embedding-map.png", "funnel.png", "scores.png"]
    assert sorted(manifest["report"]) == sorted([*drawn, "index.md"])
    assert pixels(report / "funnel.png") == (600, 320)  # 6 x 3.2 in at 100 dpi
    reviewers = review_scores(records_of(run_dir))
    assert pixels(report / "scores.png") == (800, round(260 * len(reviewers)))  # one row per reviewer model
    assert pixels(report / "embedding-map.png") == (600, 480)
    assert pixels(report / "diversity.png") == (800, 320)
    index = (report / "index.md").read_text()
    assert all(f"![{name}]({name})" in index for name in drawn)


def test_the_histograms_hold_every_review_of_the_run_and_nothing_else(run_dir: Path) -> None:
    records = records_of(run_dir)
    scores = review_scores(records)
    reviews = [(e.model, name, e.score) for r in records for name, o in r.review.items() for e in o.reviews]
    assert reviews, "the run reviewed nothing"
    assert set(scores) <= set(PANEL)
    assert sum(len(v) for per_model in scores.values() for v in per_model.values()) == len(reviews)
    for model, round_name, score in reviews:
        assert score in scores[model][round_name]


def test_the_summary_tables_repeat_the_manifests_counts(run_dir: Path) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    index = (run_dir / "report" / "index.md").read_text()
    for key, label in FUNNEL:
        assert f"| {label} | {manifest['counts'].get(key, 0)} |" in index
    assert f"| of which duplicates | {manifest['counts']['duplicates']} |" in index
    for domain, counts in manifest["byDomain"].items():
        assert f"| {domain} | {counts['seeds']} | {counts['generated']} | {counts['accepted']} |" in index


def test_diversity_is_the_mean_pairwise_and_nearest_seed_cosine_distance() -> None:
    e = np.eye(4, dtype=np.float32)
    seeds = np.stack([e[0], e[1]])
    kept = np.stack([e[0], (e[0] + e[2]) / np.sqrt(2), e[3]])
    figures = diversity(seeds, kept)
    assert figures["seedPairwiseDistance"] == pytest.approx(1.0)  # orthogonal seeds
    # kept pairs: e0·(e0+e2)/√2 = 0.7071, the others 0 -> mean similarity 0.2357
    assert figures["acceptedPairwiseDistance"] == pytest.approx(1 - np.sqrt(0.5) / 3, abs=1e-6)
    assert figures["nearestSeedDistance"] == pytest.approx([0.0, 1 - np.sqrt(0.5), 1.0], abs=1e-4)


def test_without_vectors_the_report_has_no_map_and_the_manifest_no_diversity(run_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest.pop("diversity", None)
    written = write_report(tmp_path, manifest, records_of(run_dir), None, None)
    assert written == ["funnel.png", "scores.png", "index.md"]
    assert "diversity" not in manifest
    assert "embedding-map" not in (tmp_path / "index.md").read_text()
