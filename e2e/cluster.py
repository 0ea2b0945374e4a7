"""`python -m e2e.cluster up|down|status`: a detached local plane for development (`make cluster-up`).

State lives in .cache/cluster/ of the checkout; `up` writes .cache/cluster/kubeconfig and returns once the
API is ready, the controllers run and the fake nodes are Ready. The components keep running after this
command exits; `down` (from any shell) stops them through their pid files and removes the state.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from e2e import paths, versions
from e2e.plane import ControlPlane, PlaneError


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def up(workdir: Path, timeout: float, crds: Path) -> int:
    plane = ControlPlane(workdir, detached=True, start_timeout=timeout, crd_dirs=[crds])
    if plane.is_ready():
        print(f"plane already running: {plane.server}")
    else:
        plane.stop(remove=True)  # leftovers of a plane that died or was half-started
        print(
            f"starting Kubernetes {versions.KUBERNETES} + kwok {versions.KWOK} in {_relative(workdir)} ...",
            flush=True,
        )
        try:
            plane.start()
        except PlaneError as exc:
            print(f"cluster up failed: {exc}", file=sys.stderr)
            return 1
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in plane.timings.items() if k != "total")
        print(f"plane ready in {plane.timings['total']:.1f}s ({phases}): {plane.server}")
    print(f"export KUBECONFIG={plane.kubeconfig}")
    return 0


def down(workdir: Path) -> int:
    plane = ControlPlane(workdir)
    running = [name for name, pid in plane.pids().items() if pid]
    plane.stop(remove=True)
    what = f"stopped {', '.join(running)}" if running else "no plane was running"
    print(f"{what}; removed {_relative(workdir)}")
    return 0


def status(workdir: Path) -> int:
    plane = ControlPlane(workdir)
    if not plane.layout.state.is_file():
        print("no plane (run `make cluster-up`)")
        return 1
    info = plane.describe()
    print(json.dumps(info, indent=2))
    if info["ready"]:
        print(plane.kubectl("get", "nodes", "--output=wide"))
    return 0 if info["ready"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--workdir", type=Path, default=paths.cli_cluster_dir(), help="default: .cache/cluster")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each start phase")
    parser.add_argument(
        "--crds",
        type=Path,
        default=paths.REPO_ROOT / "crds",
        help="CRDs to install at start (default: crds/)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.workdir, args.timeout, args.crds)
    if args.command == "down":
        return down(args.workdir)
    return status(args.workdir)


if __name__ == "__main__":
    sys.exit(main())
