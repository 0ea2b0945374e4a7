"""The run report: PNG plots (matplotlib Agg, no display needed) and a short Markdown summary."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

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
    records: list[dict[str, Any]],
    seed_vectors: np.ndarray | None,
    kept_vectors: np.ndarray | None,
) -> list[str]:
    """Write the plots and `index.md` into a local folder (the merge publishes it to the output location);
    returns the files written (relative to `report_dir`)."""
    import matplotlib

    matplotlib.use("Agg")
    report_dir.mkdir(parents=True, exist_ok=True)
    written = [_funnel_plot(report_dir, manifest), _score_histograms(report_dir, records, manifest)]
    if seed_vectors is not None and kept_vectors is not None and len(seed_vectors) + len(kept_vectors) >= 3:
        written.append(_embedding_map(report_dir, seed_vectors, kept_vectors))
    (report_dir / "index.md").write_text(_summary(manifest, written), encoding="utf-8")
    return [*written, "index.md"]


def _funnel_plot(report_dir: Path, manifest: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    counts = manifest["counts"]
    labels = [label for _, label in FUNNEL]
    values = [counts.get(key, 0) for key, _ in FUNNEL]
    figure, axis = plt.subplots(figsize=(6, 3.2))
    bars = axis.barh(labels[::-1], values[::-1], color="#4c72b0")
    axis.bar_label(bars, padding=3)
    axis.set_title("GRA funnel")
    axis.set_xlabel("samples")
    figure.tight_layout()
    figure.savefig(report_dir / "funnel.png", dpi=100)
    plt.close(figure)
    return "funnel.png"


def _score_histograms(report_dir: Path, records: list[dict[str, Any]], manifest: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    scale = manifest["spec"].get("review", {}).get("scale", 10)
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"instruction": [], "response": []})
    for record in records:
        for round_name, outcome in record.get("review", {}).items():
            for review in outcome.get("reviews", []):
                scores[review["model"]][round_name].append(review["score"])
    models = sorted(scores) or ["(no reviews)"]
    figure, axes = plt.subplots(len(models), 2, figsize=(8, 2.4 * len(models)), squeeze=False)
    bins = np.linspace(1, scale, min(scale, 20) + 1)
    for row, model in enumerate(models):
        for column, round_name in enumerate(("instruction", "response")):
            axis = axes[row][column]
            axis.hist(scores.get(model, {}).get(round_name, []), bins=bins, color="#55a868" if column else "#c44e52")
            axis.set_title(f"{model}: {round_name} scores", fontsize=9)
    figure.tight_layout()
    figure.savefig(report_dir / "scores.png", dpi=100)
    plt.close(figure)
    return "scores.png"


def _embedding_map(report_dir: Path, seed_vectors: np.ndarray, kept_vectors: np.ndarray) -> str:
    """PCA to 2-D of seeds and accepted samples: shows whether synthesis spread beyond the seeds."""
    import matplotlib.pyplot as plt

    stacked = np.vstack([seed_vectors, kept_vectors]).astype(np.float64)
    centred = stacked - stacked.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    points = centred @ components[:2].T
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    axis.scatter(*points[: len(seed_vectors)].T, s=14, alpha=0.7, label=f"seeds ({len(seed_vectors)})")
    axis.scatter(*points[len(seed_vectors) :].T, s=14, alpha=0.7, marker="x", label=f"accepted ({len(kept_vectors)})")
    axis.set_title("Embedding map (PCA of all-MiniLM-L6-v2)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(report_dir / "embedding-map.png", dpi=100)
    plt.close(figure)
    return "embedding-map.png"


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
        f"| rejected | {counts['rejected']} |",
        f"| duplicates | {counts['duplicates']} |",
        f"| failed calls | {counts['failed']} |",
        "",
        f"Acceptance rate {rates['acceptance']:.1%}, adjudication rate {rates['adjudication']:.1%}, "
        f"reviewer agreement (σ ≤ maxStd) {rates['reviewerAgreement']:.1%}.",
        "",
        "| domain | generated | accepted |",
        "|---|---|---|",
        *(f"| {d} | {c['generated']} | {c['accepted']} |" for d, c in sorted(manifest["byDomain"].items())),
        "",
        *(f"![{name}]({name})" for name in images),
        "",
    ]
    if not manifest["independent"]:
        lines.insert(4, "> One model played several roles (review.allowSameModel): reviews are not independent.\n")
    return "\n".join(lines)
