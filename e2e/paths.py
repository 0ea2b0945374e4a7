"""Where the harness keeps things.

Heavy artifacts (binaries, Go caches) live under ~/.cache/quorum, outside any checkout, so every worktree
and CI run on the machine shares one build. Per-checkout state (a running plane) lives under .cache/ in the
repository root, which is git-ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

from e2e import versions

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """~/.cache/quorum, or $QUORUM_CACHE_DIR when set (CI may point it at a persistent volume)."""
    override = os.environ.get("QUORUM_CACHE_DIR")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "quorum"


def bin_dir(kubernetes_version: str = versions.KUBERNETES) -> Path:
    """The directory that holds every binary of one pinned Kubernetes version."""
    return cache_root() / "k8s" / kubernetes_version


def go_build_dir() -> Path:
    """Scratch modules (our generated go.mod files) for the Go builds."""
    return cache_root() / "k8s" / "build"


def go_mod_cache() -> Path:
    return cache_root() / "go" / "mod"


def go_build_cache() -> Path:
    return cache_root() / "go" / "build"


def state_root() -> Path:
    """Per-checkout runtime state (.cache/ in the repository root)."""
    return REPO_ROOT / ".cache"


def cli_cluster_dir() -> Path:
    """The plane started by `python -m e2e.cluster up` (and `make cluster-up`)."""
    return state_root() / "cluster"
