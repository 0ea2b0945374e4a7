#!/usr/bin/env bash
# podman as our machines run it: rootful, runc with cgroupfs (no systemd), and explicit ulimits on `run` and
# `build` (podman's defaults exceed what the sandbox lets a container set). images/build.sh and the image tests
# (tests/images) both go through this script, so the flags live in one place.
#
#   images/podman.sh run --rm localhost/quorum:0.1.0 --help
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: images/podman.sh <podman command> [args...]" >&2; exit 2; }
command="$1"
shift
base=(podman --runtime runc --cgroup-manager=cgroupfs)
case "$command" in
    run | build | create)
        exec "${base[@]}" "$command" --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 "$@" ;;
    *)
        exec "${base[@]}" "$command" "$@" ;;
esac
