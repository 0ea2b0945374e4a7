"""The run report: PNG plots (matplotlib Agg, no display needed) and a short Markdown summary."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from quorum.gra.reliability import gate_note
from quorum.gra.sample import SampleRecord

FUNNEL = (
    ("generated", "generated"),
    ("round1Passed", "round-1 pass"),
    ("round2Passed", "round-2 pass"),
    ("adjudicated", "adjudicated"),
    ("accepted", "after dedup"),
)


def write_report(
    report_dir: Path,
    manifest: dict[str, Any],
    records: list[SampleRecord],
    seed_vectors: np.ndarray | None,
    kept_vectors: np.ndarray | None,
    seed_domains: list[str] | None = None,
) -> list[str]:
    """Write the plots and `index.md` into a local folder (the merge publishes it to the output location);
    returns the files written (relative to `report_dir`). Also sets `manifest["diversity"]` (the figures the
    diversity plot shows)."""
    import matplotlib

    matplotlib.use("Agg")
    report_dir.mkdir(parents=True, exist_ok=True)
    written = [_funnel_plot(report_dir, manifest), _score_histograms(report_dir, records, manifest)]
    if seed_vectors is not None and kept_vectors is not None and len(seed_vectors) + len(kept_vectors) >= 3:
        kept_domains = [r.domain for r in records if r.is_kept]
        written.append(_embedding_map(report_dir, seed_vectors, kept_vectors, seed_domains, kept_domains))
        manifest["diversity"] = diversity(seed_vectors, kept_vectors)
        written.append(_diversity_plot(report_dir, manifest["diversity"]))
    (report_dir / "index.md").write_text(_summary(manifest, written), encoding="utf-8")
    return [*written, "index.md"]


def diversity(seed_vectors: np.ndarray, kept_vectors: np.ndarray) -> dict[str, Any]:
    """Spread of the embeddings: mean pairwise cosine distance within seeds and within accepted samples, and
    each accepted sample's distance to its nearest seed (how far synthesis moved beyond the seeds)."""

    def mean_pairwise(vectors: np.ndarray) -> float | None:
        if len(vectors) < 2:
            return None
        similarity = vectors @ vectors.T
        n = len(vectors)
        return float(1 - (similarity.sum() - np.trace(similarity)) / (n * (n - 1)))

    nearest = (1 - (kept_vectors @ seed_vectors.T).max(axis=1)) if len(kept_vectors) and len(seed_vectors) else []
    return {
        "seedPairwiseDistance": mean_pairwise(seed_vectors),
        "acceptedPairwiseDistance": mean_pairwise(kept_vectors),
        "nearestSeedDistance": [round(float(d), 4) for d in nearest],
    }


def _funnel_plot(report_dir: Path, manifest: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    counts = manifest["counts"]
    labels = [label for _, label in FUNNEL]
    values = [counts.get(key, 0) for key, _ in FUNNEL]
    figure, axis = plt.subplots(figsize=(6, 3.2))
    bars = axis.barh(labels[::-1], values[::-1], color="#4c72b0")
    axis.bar_label(bars, padding=3)
    axis.set_title("GRA funnel (candidates per stage)")
    axis.set_xlabel("samples")
    axis.set_ylabel("stage")
    return _save(figure, report_dir, "funnel.png")


def review_scores(records: list[SampleRecord]) -> dict[str, dict[str, list[float]]]:
    """Every review's score by reviewer model and round: what the histograms draw, so they show the run's
    reviews and nothing else."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"instruction": [], "response": []})
    for record in records:
        for round_name, outcome in record.review.items():
            for entry in outcome.reviews:
                scores[entry.model][round_name].append(entry.score)
    return dict(scores)


def _score_histograms(report_dir: Path, records: list[SampleRecord], manifest: dict[str, Any]) -> str:
    """Per reviewer model and round: the distribution of its scores, with the gate's thresholds drawn in."""
    import matplotlib.pyplot as plt

    review = manifest["spec"].get("review", {})
    scale = review.get("scale", 10)
    scores = review_scores(records)
    models = sorted(scores) or ["(no reviews)"]
    figure, axes = plt.subplots(len(models), 2, figsize=(8, 2.6 * len(models)), squeeze=False)
    bins = np.linspace(0.5, scale + 0.5, scale + 1)
    for row, model in enumerate(models):
        for column, round_name in enumerate(("instruction", "response")):
            axis = axes[row][column]
            axis.hist(scores.get(model, {}).get(round_name, []), bins=bins, color="#55a868" if column else "#c44e52")
            axis.axvline(review.get("rejectBelow", 5.0), color="black", linestyle="--", label="rejectBelow")
            axis.axvline(review.get("acceptAtLeast", 7.0), color="black", linestyle="-", label="acceptAtLeast")
            axis.set_title(f"{model}: {round_name} scores", fontsize=9)
            axis.set_xlabel(f"reviewer score (1-{scale})")
            axis.set_ylabel("reviews")
            axis.set_xlim(0.5, scale + 0.5)
    axes[0][0].legend(fontsize=7)
    return _save(figure, report_dir, "scores.png")


def _embedding_map(
    report_dir: Path,
    seed_vectors: np.ndarray,
    kept_vectors: np.ndarray,
    seed_domains: list[str] | None,
    kept_domains: list[str],
) -> str:
    """PCA to 2-D of seeds (dots) and accepted samples (crosses), one colour per domain: shows whether
    synthesis spread beyond the seeds within each domain."""
    import matplotlib.pyplot as plt

    stacked = np.vstack([seed_vectors, kept_vectors]).astype(np.float64)
    centred = stacked - stacked.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    points = centred @ components[:2].T
    seed_domains = seed_domains or ["seeds"] * len(seed_vectors)
    names = sorted({*seed_domains, *kept_domains})
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    figure, axis = plt.subplots(figsize=(6, 4.8))
    seeds, kept = points[: len(seed_vectors)], points[len(seed_vectors) :]
    for name in names:
        mine = [i for i, d in enumerate(seed_domains) if d == name]
        theirs = [i for i, d in enumerate(kept_domains) if d == name]
        if mine:
            axis.scatter(*seeds[mine].T, s=16, alpha=0.6, color=colours[name], label=f"{name} seeds ({len(mine)})")
        if theirs:
            axis.scatter(
                *kept[theirs].T, s=30, marker="x", color=colours[name], label=f"{name} accepted ({len(theirs)})"
            )
    axis.set_title("Embedding map: seeds (dots) and accepted samples (crosses)")
    axis.set_xlabel("principal component 1")
    axis.set_ylabel("principal component 2")
    axis.legend(fontsize=7, loc="best")
    return _save(figure, report_dir, "embedding-map.png")


def _diversity_plot(report_dir: Path, figures: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    labels = ["seeds", "accepted"]
    values = [figures["seedPairwiseDistance"] or 0.0, figures["acceptedPairwiseDistance"] or 0.0]
    bars = left.bar(labels, values, color=["#8172b2", "#4c72b0"])
    left.bar_label(bars, fmt="%.3f")
    left.set_title("Mean pairwise cosine distance")
    left.set_ylabel("1 - cosine similarity")
    right.hist(figures["nearestSeedDistance"], bins=10, color="#4c72b0")
    right.set_title("Accepted sample to its nearest seed")
    right.set_xlabel("cosine distance")
    right.set_ylabel("accepted samples")
    return _save(figure, report_dir, "diversity.png")


def _save(figure: Any, report_dir: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(report_dir / name, dpi=100)
    plt.close(figure)
    return name


def reliability_lines(manifest: dict[str, Any]) -> list[str]:
    """The per-reviewer reliability table (Markdown) of the report and the dataset card."""
    reviewers = manifest.get("reviewers") or {}
    calibration = (reviewers.get("calibration") or {}).get("reviewers", {})
    run = (reviewers.get("run") or {}).get("reviewers", {})
    if not calibration and not run:
        return []
    alpha_calibration = _fmt((reviewers.get("calibration") or {}).get("alpha"))
    alpha_run = _fmt((reviewers.get("run") or {}).get("alpha"))
    lines = [
        "## Reviewer reliability",
        "",
        f"Krippendorff's α (interval) of the panel: calibration {alpha_calibration}, run {alpha_run}; "
        f"{gate_note(reviewers)}.",
        "",
        "| reviewer | measured on | reviews | copy rate | score mean ± std | modal share | r vs others | "
        "α without | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for where, table in (("calibration", calibration), ("run", run)):
        for model, health in sorted(table.items()):
            verdict = "; ".join(health["flags"]) or "ok"
            if where == "calibration" and model in reviewers.get("excluded", []):
                verdict = f"**DEGENERATE, excluded**: {verdict}"
            elif health["degenerate"]:
                verdict = f"**DEGENERATE**: {verdict}"
            lines.append(
                f"| {model} | {where} | {health['reviews']} | {health['copyRate']:.0%} | "
                f"{health['scoreMean']:.2f} ± {health['scoreStd']:.2f} | {health['modalShare']:.0%} | "
                f"{_fmt(health['correlationWithOthers'])} | {_fmt(health['alphaWithout'])} | {verdict} |"
            )
    lines.append("")
    return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _summary(manifest: dict[str, Any], images: list[str]) -> str:
    counts = manifest["counts"]
    rates = manifest["rates"]
    lines = [
        f"# Synthesis report: {manifest['name']}",
        "",
        f"Fingerprint `{manifest['fingerprint']}` · mode `{manifest['mode']}` · independent review: "
        f"**{str(manifest['independent']).lower()}**",
        "",
        "| stage | count |",
        "|---|---|",
        *(f"| {label} | {counts.get(key, 0)} |" for key, label in FUNNEL),
        f"| rejected (all candidates not kept) | {counts['rejected']} |",
        f"| of which duplicates | {counts['duplicates']} |",
        f"| of which failed candidates | {counts['failed']} |",
        f"| of which surplus beyond target | {counts['surplus']} |",
        f"| failed per-seed calls (not candidates) | {counts['failedCalls']} |",
        "",
        f"Acceptance rate {rates['acceptance']:.1%}, adjudication rate {rates['adjudication']:.1%} (per generated "
        f"candidate); samples with high reviewer agreement (σ ≤ maxStd in every gated round) "
        f"{rates['reviewerAgreement']:.1%}.",
        "",
        *reliability_lines(manifest),
        "| domain | seeds | generated | accepted |",
        "|---|---|---|---|",
        *(
            f"| {d} | {c['seeds']} | {c['generated']} | {c['accepted']} |"
            for d, c in sorted(manifest["byDomain"].items())
        ),
        "",
        *(f"![{name}]({name})" for name in images),
        "",
    ]
    if not manifest["independent"]:
        lines.insert(4, "> One model played several roles (review.allowSameModel): reviews are not independent.\n")
    return "\n".join(lines)
