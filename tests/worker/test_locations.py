"""Locations are grants: `pvc://` and `configmap://` stay inside their volume, and in cluster mode `file://`
stays inside the pod's mounts, whatever the URI says (`..`, absolute paths, symlinks)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from quorum.api.synthesis import SynthesisJobSpec
from quorum.builders.storage import PodStorage
from quorum.gra import GraConfig
from quorum.locations import UnsafeUri, UnsupportedUri, resolve_uri, split_volume_uri, unsafe_uri_reason


def test_pvc_path_is_normalised_inside_its_claim(tmp_path: Path) -> None:
    path = resolve_uri("pvc://datasets/./runs//b/", base_dir=tmp_path, pvc_root=tmp_path)
    assert path == (tmp_path / "datasets" / "runs" / "b").resolve()


@pytest.mark.parametrize(
    "uri",
    [
        "pvc://datasets/../../../tmp/out",  # the reported escape: wrote to the pod's scratch
        "pvc://datasets/a/../../other/x",
        "pvc://../tmp/x",
        "pvc://datasets//etc/passwd",
        "configmap://calib/../other/key",
    ],
)
def test_escaping_volume_uris_are_refused_before_any_path_is_built(tmp_path: Path, uri: str) -> None:
    with pytest.raises(UnsafeUri, match=re.escape(repr(uri))):  # the message names the location
        resolve_uri(uri, base_dir=tmp_path, pvc_root=tmp_path)
    with pytest.raises(ValueError, match=re.escape(f"spec.x: {uri!r}")):
        PodStorage().localize(uri, field="spec.x")


def test_a_symlink_out_of_the_claim_is_refused(tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    os.symlink("/etc", tmp_path / "datasets" / "etc")
    assert split_volume_uri("pvc://datasets/etc/passwd") == ("datasets", "etc/passwd")
    with pytest.raises(UnsafeUri, match="outside"):
        resolve_uri("pvc://datasets/etc/passwd", base_dir=tmp_path, pvc_root=tmp_path)


def test_cluster_mode_confines_file_uris_to_the_mounted_volumes(tmp_path: Path) -> None:
    mounts = tmp_path / "data"
    (mounts / "pvc" / "datasets").mkdir(parents=True)
    for uri in ("file:///etc/shadow", f"file://{mounts}/pvc/../../x", "file://../../escape", f"file://{mounts}/x"):
        with pytest.raises(UnsafeUri, match="outside"):
            resolve_uri(uri, base_dir=mounts / "pvc", file_root=mounts)
    assert resolve_uri(f"file://{mounts}/pvc/datasets/s.jsonl", base_dir=tmp_path, file_root=mounts) == (
        mounts / "pvc" / "datasets" / "s.jsonl"
    )


def test_a_mounted_volume_may_be_a_symlink_but_nothing_inside_it_may_lead_out(tmp_path: Path) -> None:
    """The e2e pod runner stands in for mounts with symlinks; a symlink planted inside a claim is an escape."""
    claim = tmp_path / "volumes" / "results"
    (claim / "run").mkdir(parents=True)
    os.symlink("/etc", claim / "etc")
    mounts = tmp_path / "pod" / "data"
    (mounts / "pvc").mkdir(parents=True)
    os.symlink(claim, mounts / "pvc" / "results")
    pod = tmp_path / "pod"
    assert resolve_uri("file://data/pvc/results/run", base_dir=pod, file_root=mounts) == claim.resolve() / "run"
    with pytest.raises(UnsafeUri, match="outside"):
        resolve_uri("file://data/pvc/results/etc/passwd", base_dir=pod, file_root=mounts)


def test_local_mode_reads_files_wherever_the_user_points(tmp_path: Path) -> None:
    """On a laptop the process has the user's own rights: `file://../out` grants nothing new."""
    assert resolve_uri("file://../out", base_dir=tmp_path / "m") == (tmp_path / "out").resolve()


def test_the_engine_refuses_seeds_outside_the_mounts_in_cluster_mode(tmp_path: Path) -> None:
    spec = SynthesisJobSpec.model_validate(
        {
            "models": [{"name": "m", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "m"}}],
            "review": {"allowSameModel": True},
            "seeds": {"uri": "file:///etc/shadow"},
            "output": {"uri": "file:///data/pvc/out/run"},
        }
    )
    config = GraConfig.from_json(GraConfig.from_spec(spec, base_dir=tmp_path, file_root=tmp_path / "data").to_json())
    with pytest.raises(UnsupportedUri, match="outside"):
        config.resolve_uri(spec.seeds.uri)


def test_the_admission_rule_and_the_engine_agree_on_what_escapes() -> None:
    assert unsafe_uri_reason("pvc://datasets/a/b.jsonl") is None
    assert unsafe_uri_reason("s3://bucket/a/b") is None
    assert "'..'" in (unsafe_uri_reason("s3://bucket/../b") or "")
    assert "not a pvc name" in (unsafe_uri_reason("pvc://Data/x") or "")
