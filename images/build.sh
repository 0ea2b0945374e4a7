#!/usr/bin/env bash
# Builds the Quorum image with podman from images/Dockerfile, on a machine that can pull no image:
# the base is a Debian bookworm root filesystem made with debootstrap and imported into podman once
# (cached as localhost/quorum-base:bookworm). Python wheels come from the host's uv cache (mounted into the
# build), so after `make setup` the build downloads little or nothing.
#
#   images/build.sh                 build localhost/quorum:<version> (version from pyproject.toml)
#   BASE_IMAGE=debian:bookworm-slim images/build.sh   use a pullable base instead of the debootstrapped one
#
# Needs root (debootstrap, rootful podman): apt-get install podman debootstrap.
# Prints the build time and the image size at the end.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -1)"
image="${IMAGE:-localhost/quorum:$version}"
base_image="${BASE_IMAGE:-localhost/quorum-base:bookworm}"
uv_cache="${UV_CACHE_DIR:-$HOME/.cache/uv}"
work="${QUORUM_IMAGE_WORK:-$HOME/.cache/quorum/image}"

podman_cmd=("$repo/images/podman.sh")

say() { printf 'image: %s\n' "$*" >&2; }

debian_mirror() {
    # The mirror this machine's apt already uses; DEBIAN_MIRROR overrides it.
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local uri
    uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
    [ -n "$uri" ] || uri="$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
    [ -n "$uri" ] || { say "no Debian mirror configured; set DEBIAN_MIRROR"; exit 1; }
    echo "$uri"
}

ensure_base() {
    if "${podman_cmd[@]}" image exists "$base_image"; then return; fi
    if [ "$base_image" != "localhost/quorum-base:bookworm" ]; then
        say "base $base_image is not present and cannot be pulled here"; exit 1
    fi
    command -v debootstrap >/dev/null || { say "debootstrap missing: apt-get install debootstrap"; exit 1; }
    local rootfs="$work/rootfs"
    rm -rf "$rootfs"
    mkdir -p "$work"
    say "debootstrapping Debian bookworm (minbase + python3.11) into $rootfs"
    debootstrap --variant=minbase --include=ca-certificates,python3.11 bookworm "$rootfs" "$(debian_mirror)" \
        >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "${podman_cmd[@]}" import \
        --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$base_image" >/dev/null
    rm -rf "$rootfs"
    say "imported $base_image"
}

uv_command() {
    # The uv that `make setup` uses: the one on PATH, else the one scripts/bootstrap-uv.sh installed.
    if [ -n "${UV:-}" ]; then echo "$UV"; return; fi
    if command -v uv >/dev/null 2>&1; then command -v uv; return; fi
    local bootstrapped="$HOME/.cache/quorum/uv/bin/uv"
    [ -x "$bootstrapped" ] || { say "uv missing: run \`make setup\` first"; exit 1; }
    echo "$bootstrapped"
}

uv_binary_dir() {
    # The real uv executable (not a shell shim): uv exports its own path to the processes it runs.
    local uv_bin
    uv_bin="$(cd /tmp && "$(uv_command)" run --no-project --offline -- sh -c 'echo "$UV"')"
    dirname "$uv_bin"
}

uv_context=""

main() {
    command -v podman >/dev/null || { say "podman missing: apt-get install podman"; exit 1; }
    local started=$SECONDS
    ensure_base
    uv_context="$(mktemp -d)"
    trap 'rm -rf "${uv_context}"' EXIT
    cp "$(uv_binary_dir)/uv" "$uv_context/uv"
    mkdir -p "$uv_cache"
    say "building $image from $base_image"
    "${podman_cmd[@]}" build \
        --file "$repo/images/Dockerfile" \
        --build-context "uv=$uv_context" \
        --build-arg "BASE_IMAGE=$base_image" \
        --build-arg UV_OFFLINE=1 \
        --volume "$uv_cache:/cache/uv" \
        --tag "$image" \
        "$repo"
    # Earlier builds' layers are 6 GB each once the dependencies change: keep only what the tags use.
    "${podman_cmd[@]}" image prune --force >/dev/null
    local size
    size="$("${podman_cmd[@]}" image inspect "$image" --format '{{.Size}}')"
    say "built $image in $((SECONDS - started)) s; size $((size / 1000000)) MB"
}

main "$@"
