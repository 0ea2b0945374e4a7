"""`quorum worker`: the entrypoints the operator runs in pods.

Each command writes its result (or its error, one line) to the container's termination message, which the
operator reads back into the resource's status.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from pathlib import Path

import typer

from quorum.cli.common import PodConfigAlias, manifest_argument, manifest_path

app = typer.Typer(help="Pod entrypoints run by the operator (synthesis shards, calibration).", no_args_is_help=True)


def _run_in_pod(work: Callable[[], str]) -> None:
    """Run `work`, publish its result as the termination message; on error publish `Type: message`, print the
    traceback to the log and exit 1 so the Job controller retries the pod."""
    from quorum.worker.podfs import write_termination_message

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        message = work()
    except Exception as error:
        traceback.print_exc()
        detail = " ".join(str(error).split())
        write_termination_message(f"{type(error).__name__}: {detail}")
        raise typer.Exit(1) from None
    write_termination_message(message)
    typer.echo(message)


def _pod_manifest(file: Path | None, config: Path | None) -> Path:
    """The manifest as the pod names it, found under `QUORUM_FS_ROOT` when one stands in for `/`."""
    from quorum.worker.podfs import pod_path

    path = pod_path(manifest_path(file, config))
    if not path.is_file():
        raise typer.BadParameter(f"{path} does not exist or is not a file", param_hint="FILE")
    return path


@app.command()
def synth(
    file: Path | None = manifest_argument("Mounted SynthesisJob (the operator's worker config)."),
    config: Path | None = PodConfigAlias,
    merge: bool = typer.Option(False, "--merge", help="Merge the committed shards instead of running one."),
) -> None:
    """Run the GRA stages over one shard ($JOB_COMPLETION_INDEX), reporting status.shards.<index>; with
    --merge, write the dataset, manifest and report from all shards."""
    from quorum.worker.synth import run_synth

    path = _pod_manifest(file, config)
    _run_in_pod(lambda: run_synth(path, merge=merge))


@app.command()
def calibrate(
    file: Path | None = manifest_argument("Mounted EnsembleRouter (the operator's router config)."),
    config: Path | None = PodConfigAlias,
    artifact_configmap: str = typer.Option(
        ..., "--artifact-configmap", help="ConfigMap (created by the operator) that receives the artifact."
    ),
) -> None:
    """Run Avengers calibration and publish the artifact bundle and `summary.json` into the ConfigMap."""
    from quorum.worker.calibrate import run_calibrate

    path = _pod_manifest(file, config)
    _run_in_pod(lambda: run_calibrate(path, artifact_configmap))
