"""How the build turns upstream go.mod files into ours, and when it decides a binary is current."""

from __future__ import annotations

from pathlib import Path

from e2e import gobuild, versions
from e2e.manifest import Manifest

KUBERNETES_GOMOD = """module k8s.io/kubernetes

go 1.25.0

require k8s.io/api v0.0.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
)
"""
ETCD_GOMOD = """module go.etcd.io/etcd/server/v3

go 1.24

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
\tgo.etcd.io/etcd/client/v3 => ../client/v3
)

// Bad imports are sometimes causing attempts to pull that code.
replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_staging_modules_are_found_in_kubernetes_gomod() -> None:
    assert gobuild.local_replaces(KUBERNETES_GOMOD) == ["k8s.io/api", "k8s.io/apimachinery"]
    assert gobuild.go_directive(KUBERNETES_GOMOD) == "1.25.0"


def test_etcd_siblings_are_found_and_forbidden_guards_skipped() -> None:
    assert gobuild.local_replaces(ETCD_GOMOD) == ["go.etcd.io/etcd/api/v3", "go.etcd.io/etcd/client/v3"]


def test_kubernetes_binaries_are_stamped_with_the_pinned_version() -> None:
    flags = gobuild.kubernetes_ldflags({"Time": "2026-04-15T18:01:22Z"})
    assert f"k8s.io/component-base/version.gitVersion={versions.KUBERNETES}" in flags
    assert "k8s.io/client-go/pkg/version.gitMinor=35" in flags
    assert flags.startswith("-s -w")


def test_recipes_change_with_versions_so_bumps_rebuild() -> None:
    assert versions.KUBERNETES in gobuild.KUBERNETES.recipe
    assert versions.STAGING in gobuild.KUBERNETES.recipe
    assert gobuild.ETCD.outputs == ("etcd",)
    assert gobuild.KWOK.outputs == ("kwok", gobuild.KWOK_STAGES)


def test_manifest_counts_a_binary_current_only_with_file_and_matching_recipe(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path)
    assert not manifest.is_current(("tool",), "r1")
    (tmp_path / "tool").write_text("binary")
    assert not manifest.is_current(("tool",), "r1")
    manifest.record(("tool",), "r1", 1.0)
    assert Manifest(tmp_path).is_current(("tool",), "r1")
    assert not Manifest(tmp_path).is_current(("tool",), "r2")
    (tmp_path / "tool").unlink()
    assert not Manifest(tmp_path).is_current(("tool",), "r1")
