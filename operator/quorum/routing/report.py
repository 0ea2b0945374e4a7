"""The calibration report: what a calibration found, in Markdown with one PNG beside it.

- a heatmap of each model's (shrunk) accuracy per cluster, the numbers routing ranks by;
- routed vs best-single vs oracle accuracy on the held-out split (routed as served: through the router's code);
- calibration questions per cluster (after small clusters were merged).
Written by `quorum router calibrate` next to the artifact bundle (and by `bench/routing_pools.py --report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quorum.routing.artifact import Artifact
from quorum.routing.taskmap import size_distribution

REPORT_FILE = "report.md"
FIGURE_FILE = "report.png"


def _figure(artifact: Artifact, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task_map = artifact.task_map
    overall = artifact.evaluation.get("overall", {})
    figure, (heat, bars, sizes) = plt.subplots(
        1, 3, figsize=(15, max(4.0, 0.25 * task_map.clusters + 2)), gridspec_kw={"width_ratios": [3, 1.2, 1.5]}
    )
    image = heat.imshow(task_map.accuracy, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    heat.set_xticks(range(len(task_map.models)), task_map.models, rotation=45, ha="right")
    heat.set_yticks(range(task_map.clusters), [f"{c} ({t or '-'})" for c, t in enumerate(task_map.cluster_tasks)])
    heat.set_title("accuracy per cluster (shrunk)")
    figure.colorbar(image, ax=heat, fraction=0.04)
    labels = ["routed", "best single", "oracle"]
    values = [overall.get("routed"), (overall.get("bestSingle") or {}).get("accuracy"), overall.get("oracle")]
    bars.bar(labels, [v or 0.0 for v in values], color=["tab:green", "tab:gray", "tab:blue"])
    bars.set_ylim(0, 1)
    bars.set_title(f"held-out ({overall.get('questions', 0)} questions)")
    for x, value in enumerate(values):
        if value is not None:
            bars.text(x, value + 0.01, f"{value:.3f}", ha="center")
    sizes.barh(range(task_map.clusters), task_map.cluster_sizes, color="tab:orange")
    sizes.invert_yaxis()
    sizes.set_title("calibration questions per cluster")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _accuracy_rows(evaluation: dict[str, Any]) -> list[str]:
    rows = ["| split | questions | routed | best single | oracle |", "|---|---:|---:|---:|---:|"]
    sections = [("all", evaluation.get("overall", {})), *sorted(evaluation.get("tasks", {}).items())]
    for name, summary in sections:
        if not summary.get("questions"):
            continue
        best = summary.get("bestSingle") or {}
        rows.append(
            f"| {name} | {summary['questions']} | {summary['routed']:.3f} | "
            f"{best.get('accuracy', 0.0):.3f} ({best.get('model', '-')}) | {summary['oracle']:.3f} |"
        )
    return rows


def render_markdown(artifact: Artifact) -> str:
    task_map = artifact.task_map
    evaluation = artifact.evaluation
    distribution = size_distribution(task_map.cluster_sizes)
    calibration = artifact.calibration
    lines = [
        "# Calibration report",
        "",
        f"Artifact `{artifact.checksum[:16]}`, created {artifact.created}; embedder `{artifact.embedder}`; "
        f"{calibration.get('questions', '?')} questions ({calibration.get('calibrationQuestions', '?')} "
        f"calibration, {calibration.get('heldOutQuestions', '?')} held out); {calibration.get('samples', '?')} "
        "samples per model and question.",
        "",
        f"![heatmap, held-out accuracy and cluster sizes]({FIGURE_FILE})",
        "",
        "## Held-out accuracy",
        "",
        f"Routed = served through the router's code (`{evaluation.get('strategy', '?')}`, "
        f"{evaluation.get('servedSamples', '?')} samples, modelsSelected {evaluation.get('modelsSelected', '?')}); "
        "single models and the per-question oracle from the calibration samples.",
        "",
        *_accuracy_rows(evaluation),
        "",
        "## Clusters",
        "",
        f"{task_map.clusters} clusters ({artifact.clusters_requested} requested, small ones merged below "
        f"{calibration.get('minClusterSize', 1)} questions); sizes min {distribution['min']}, median "
        f"{distribution['median']:g}, max {distribution['max']}.",
        "",
        "| cluster | task | questions | ranking (accuracy) |",
        "|---:|---|---:|---|",
    ]
    for cluster in range(task_map.clusters):
        ranking = task_map.ranking(cluster)
        index = {m: i for i, m in enumerate(task_map.models)}
        ranked = ", ".join(f"{m} ({task_map.accuracy[cluster, index[m]]:.2f})" for m in ranking)
        lines.append(
            f"| {cluster} | {task_map.cluster_tasks[cluster] or '-'} | {task_map.cluster_sizes[cluster]} | {ranked} |"
        )
    global_accuracy = ", ".join(
        f"{m} {a:.3f}" for m, a in zip(task_map.models, np.asarray(task_map.global_accuracy), strict=True)
    )
    lines += ["", f"Global calibration accuracy: {global_accuracy}.", ""]
    return "\n".join(lines)


def write_report(artifact: Artifact, directory: Path) -> Path:
    """`report.md` and `report.png` in `directory`; returns the Markdown's path."""
    directory.mkdir(parents=True, exist_ok=True)
    _figure(artifact, directory / FIGURE_FILE)
    path = directory / REPORT_FILE
    path.write_text(render_markdown(artifact), encoding="utf-8")
    return path
