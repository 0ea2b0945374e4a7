"""`quorum synth`: run a SynthesisJob manifest."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from quorum.api.resources import SynthesisJob
from quorum.api.synthesis import SynthesisCounts
from quorum.cli.common import ManifestArg, console, fail, read_resource
from quorum.locations import UnsupportedUri

if TYPE_CHECKING:
    from quorum.gra.config import GraConfig
    from quorum.locations import Location

app = typer.Typer(help="Run GRA data synthesis from a SynthesisJob manifest.", no_args_is_help=True)


class StageBoard:
    """What a person watching a local run sees, fed by the engine's progress callback through one `StageBook`.

    On a terminal: a rich progress bar per stage (done/total, elapsed, rate, ETA) under a line with the round
    and the accepted count toward the target. Off a terminal (CI, pod logs, a pipe): one log line per stage
    transition and a summary line at least every `heartbeat` seconds.
    """

    def __init__(self, target: int, *, terminal: bool | None = None, heartbeat: float = 30.0) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from quorum.gra import STAGES
        from quorum.gra.progress import StageBook

        self.book = StageBook(STAGES)
        self.target = target
        self.counts: dict[int, SynthesisCounts] = {}
        self.terminal = console.is_terminal if terminal is None else terminal
        self.heartbeat = heartbeat
        self._last_line = time.monotonic()
        self.progress = Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rate]:>8}"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.terminal,
            refresh_per_second=4,
        )
        self.headline = self.progress.add_task("accepted", total=target, rate="")
        self.tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="synth-progress", daemon=True)

    def __enter__(self) -> StageBoard:
        self.progress.__enter__()
        if not self.terminal:  # a stage can go quiet for minutes (slow calls); the log still hears from us
            self._ticker.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        if self._ticker.is_alive():
            self._ticker.join()
        self.progress.__exit__(*exc_info)
        if not self.terminal:
            self._log("finished")

    def _tick(self) -> None:
        while not self._stopped.wait(self.heartbeat / 4):
            if time.monotonic() - self._last_line >= self.heartbeat:
                self._log("progress")

    def __call__(self, shard: int, stage: str, done: int, total: int, counts: SynthesisCounts) -> None:
        from quorum.gra.progress import ROUND

        with self._lock:
            transition = self.book.update(shard, stage, done, total)
            self.counts[shard] = counts
        current, rounds = self.book.current_round()
        accepted = min(sum(c.accepted for c in self.counts.values()), self.target)
        self.progress.update(self.headline, completed=accepted, description=f"round {current}/{rounds} accepted")
        if stage != ROUND:
            meter = self.book.meters[stage]
            if stage not in self.tasks:
                self.tasks[stage] = self.progress.add_task(stage, total=None, rate="")
            rate = f"{self.book.rate(stage):.1f}/s"
            self.progress.update(self.tasks[stage], completed=meter.done, total=meter.total or None, rate=rate)
        if not self.terminal and (transition or time.monotonic() - self._last_line >= self.heartbeat):
            self._log(f"{stage} {self.book.state(stage).lower()}" if transition else "progress")

    def _log(self, event: str) -> None:
        """One plain line: the event, the round, accepted toward the target, and every started stage."""
        from quorum.gra.progress import ROUND

        with self._lock:
            self._last_line = time.monotonic()
            accepted = sum(c.accepted for c in self.counts.values())
            stages = ", ".join(
                f"{s.name} {s.done}/{s.total} {s.rate:.1f}/s" for s in self.book.snapshot() if s.name != ROUND
            )
            current, rounds = self.book.current_round()
        console.print(
            f"synth: {event}; round {current}/{rounds}, accepted {accepted}/{self.target}; {stages}",
            soft_wrap=True,
            highlight=False,
        )

    def final(self, counts: SynthesisCounts) -> None:
        """After the merge the board shows the run's counts (cross-shard dedup and the target trim done),
        the same numbers as the manifest, the summary line and the SynthesisJob status."""
        with self._lock:
            self.counts = {-1: counts}
        self.progress.update(self.headline, completed=min(counts.accepted, self.target))

    def funnel(self) -> dict[str, int]:
        """The counts the board shows, summed over shards (or the run's, after `final`)."""
        with self._lock:
            return {k: sum(getattr(c, k) for c in self.counts.values()) for k in SynthesisCounts.model_fields}


@app.command()
def run(
    manifest: Path = ManifestArg,
    local: bool = typer.Option(False, "--local", help="Run on this machine instead of a cluster."),
    out: str | None = typer.Option(
        None, "--out", help="Output directory or s3://bucket/prefix (local mode); default spec.output.uri."
    ),
    on_bad_seed: str = typer.Option("fail", "--on-bad-seed", help="skip|fail: what a malformed seed line does."),
    restart: bool = typer.Option(False, "--restart", help="Discard earlier work in the output directory."),
) -> None:
    """Run a SynthesisJob locally: models with an endpoint are used as they are, others are served by the
    packaged tiny model. Rerunning resumes committed work; a changed spec needs --restart."""
    if not local:
        fail("`quorum synth run` runs locally only (--local); on a cluster, `kubectl apply` the manifest", code=2)
    from quorum.gra import (
        BadSeedData,
        FingerprintMismatch,
        GraConfig,
        OnBadSeed,
        run_local,
    )
    from quorum.gra.local import BackendUnavailable, pool_warnings
    from quorum.gra.prompts import PromptTemplateError
    from quorum.gra.roles import PoolTooSmall
    from quorum.locations import StorageAccessError, as_location

    try:
        policy = OnBadSeed(on_bad_seed)
    except ValueError:
        fail(f"--on-bad-seed must be skip or fail, not {on_bad_seed!r}")
    job = read_resource(manifest, SynthesisJob)
    config = GraConfig.from_spec(job.spec, name=job.metadata.name, base_dir=manifest.resolve().parent)
    out_dir = as_location(out) if out else _output_dir(config)
    for warning in pool_warnings(config):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    board = StageBoard(job.spec.generation.target)
    try:
        with board:
            result = run_local(config, out_dir, on_bad_seed=policy, restart=restart, progress=board)
            board.final(SynthesisCounts.model_validate(result.manifest["counts"]))
    except (
        BadSeedData,
        FingerprintMismatch,
        UnsupportedUri,
        PoolTooSmall,
        PromptTemplateError,
        FileNotFoundError,
        StorageAccessError,
    ) as error:
        fail(str(error))
    except BackendUnavailable as error:
        fail(f"backend check failed before starting: {error}")
    for warning in result.warnings[len(pool_warnings(config)) :]:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    _summary(result.manifest, out_dir)
    counts = result.manifest["counts"]
    if counts["accepted"] == 0 and counts["failed"] > 0:
        fail(
            f"nothing accepted: {counts['failed']} samples failed on model calls (see {out_dir / 'rejected.jsonl'}); "
            "fix the endpoint and rerun — failed shards run again"
        )


def _output_dir(config: GraConfig) -> Location:
    """Local mode writes where `spec.output.uri` says (file://, pvc:// or s3://); else it says why not."""
    uri = config.spec.output.uri
    if uri.startswith("configmap://"):
        fail(f"spec.output.uri {uri}: a ConfigMap is read-only; write to file://, pvc:// or s3://, or pass --out")
    try:
        return config.location(uri)
    except UnsupportedUri as error:
        fail(f"spec.output.uri {uri}: local mode writes to file://, pvc:// or s3:// locations ({error}); pass --out")


def summary_line(manifest: dict) -> str:
    """The final summary: the manifest's counts under the names `SynthesisCounts` defines."""
    counts, rates = manifest["counts"], manifest["rates"]
    line = (
        f"{manifest['name']}: {counts['accepted']} accepted of {counts['generated']} generated "
        f"(round 1 pass {counts['round1Passed']}, round 2 pass {counts['round2Passed']}, adjudicated "
        f"{counts['adjudicated']}; rejected {counts['rejected']}: duplicates {counts['duplicates']}, failed "
        f"{counts['failed']}, surplus {counts['surplus']}; failed per-seed calls {counts['failedCalls']}); "
        f"acceptance {rates['acceptance']:.0%}, independent={str(manifest['independent']).lower()}"
    )
    if manifest.get("reviewers"):
        from quorum.gra.reliability import gate_note

        line += f"; {gate_note(manifest['reviewers'])}"
    return line


def _summary(manifest: dict, out_dir: Any) -> None:
    typer.echo(summary_line(manifest))
    typer.echo(f"dataset: {out_dir / manifest['files']['dataset']}")
    typer.echo(f"rejected: {out_dir / 'rejected.jsonl'}")
    typer.echo(f"manifest: {out_dir / 'manifest.json'}")
    typer.echo(f"report: {out_dir / 'report' / 'index.md'}")
    typer.echo(f"time: {manifest['timings'].get('wallSeconds', 0):.1f}s")
