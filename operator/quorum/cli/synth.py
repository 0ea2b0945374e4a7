"""`quorum synth`: run a SynthesisJob manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.live import Live
from rich.table import Table

from quorum.api.resources import SynthesisJob
from quorum.api.synthesis import SynthesisCounts
from quorum.cli.common import ManifestArg, console, fail, read_resource
from quorum.locations import UnsupportedUri

if TYPE_CHECKING:
    from quorum.gra.config import GraConfig

app = typer.Typer(help="Run GRA data synthesis from a SynthesisJob manifest.", no_args_is_help=True)


class StageBoard:
    """A live table of stages (done/total) and the funnel, refreshed by the engine's progress callback."""

    def __init__(self) -> None:
        from quorum.gra import STAGES

        self.stages = {s: {} for s in STAGES}
        self.counts: dict[int, SynthesisCounts] = {}
        self.live = Live(self._table(), console=console, refresh_per_second=4, transient=False)

    def __call__(self, shard: int, stage: str, done: int, total: int, counts: SynthesisCounts) -> None:
        self.stages[stage][shard] = (done, total)
        self.counts[shard] = counts
        self.live.update(self._table())

    def _table(self) -> Table:
        table = Table(title="GRA synthesis", show_edge=False)
        table.add_column("stage")
        table.add_column("done/total", justify="right")
        for stage, shards in self.stages.items():
            done, total = sum(d for d, _ in shards.values()), sum(t for _, t in shards.values())
            table.add_row(stage, f"{done}/{total}" if total else "-")
        funnel = {k: sum(getattr(c, k) for c in self.counts.values()) for k in SynthesisCounts.model_fields}
        table.caption = " · ".join(f"{k} {v}" for k, v in funnel.items() if k != "seeds")
        return table


@app.command()
def run(
    manifest: Path = ManifestArg,
    local: bool = typer.Option(False, "--local", help="Run on this machine instead of a cluster."),
    out: Path | None = typer.Option(
        None, "--out", help="Output directory (local mode); default spec.output.uri (file:// or pvc://)."
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
    from quorum.gra.roles import PoolTooSmall

    try:
        policy = OnBadSeed(on_bad_seed)
    except ValueError:
        fail(f"--on-bad-seed must be skip or fail, not {on_bad_seed!r}")
    job = read_resource(manifest, SynthesisJob)
    config = GraConfig.from_spec(job.spec, name=job.metadata.name, base_dir=manifest.resolve().parent)
    out_dir = out or _output_dir(config)
    for warning in pool_warnings(config):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    board = StageBoard()
    try:
        with board.live:
            result = run_local(config, out_dir, on_bad_seed=policy, restart=restart, progress=board)
    except (BadSeedData, FingerprintMismatch, UnsupportedUri, PoolTooSmall, FileNotFoundError) as error:
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


def _output_dir(config: GraConfig) -> Path:
    """Local mode writes where `spec.output.uri` says when that is a local location; else it says why not."""
    uri = config.spec.output.uri
    try:
        return config.resolve_uri(uri)
    except UnsupportedUri as error:
        fail(f"spec.output.uri {uri}: local mode writes to file:// or pvc:// locations ({error}); pass --out DIR")


def _summary(manifest: dict, out_dir: Path) -> None:
    counts, rates = manifest["counts"], manifest["rates"]
    typer.echo(
        f"{manifest['name']}: {counts['accepted']} accepted of {counts['generated']} generated "
        f"(round 1 pass {counts['round1Passed']}, round 2 pass {counts['round2Passed']}, adjudicated "
        f"{counts['adjudicated']}, duplicates {counts['duplicates']}, failed {counts['failed']}); "
        f"acceptance {rates['acceptance']:.0%}, independent={str(manifest['independent']).lower()}"
    )
    typer.echo(f"dataset: {out_dir / manifest['files']['dataset']}")
    typer.echo(f"rejected: {out_dir / 'rejected.jsonl'}")
    typer.echo(f"manifest: {out_dir / 'manifest.json'}")
    typer.echo(f"report: {out_dir / 'report' / 'index.md'}")
    typer.echo(f"time: {manifest['timings'].get('wallSeconds', 0):.1f}s")
