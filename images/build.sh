#!/usr/bin/env bash
# Builds the Quorum images with podman from images/Dockerfile, on a machine that can pull no image:
# the base is a Debian bookworm root filesystem made with debootstrap and imported into podman once
# (cached as localhost/quorum-base:bookworm-slim). Python wheels come from the host's uv cache (mounted into the
# build), so after `make setup` the build downloads little or nothing.
#
#   images/build.sh                      build the operator and worker variants (version from pyproject.toml):
#                                        localhost/quorum-operator:<version> and localhost/quorum:<version>
#   images/build.sh torch                build one variant (operator, worker or torch: localhost/quorum-torch:...)
#   BASE_IMAGE=debian:bookworm-slim images/build.sh   use a pullable base instead of the debootstrapped one
#   IMAGE_PREFIX=registry.example/       name the images registry.example/quorum... instead of localhost/quorum...
#
# Needs root (debootstrap, rootful podman): apt-get install podman debootstrap runc. The worker variants take
# the ONNX graph of the packaged MiniLM that `make setup` exported (`.venv/bin/quorum embedder export`).
# Prints each build's time and the image size at the end.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -1)"
prefix="${IMAGE_PREFIX:-localhost/}"
default_base="localhost/quorum-base:bookworm-slim"
base_image="${BASE_IMAGE:-$default_base}"
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

slim_rootfs() {
    # What Debian's own slim images leave out (about 50 MB): manuals, documentation but the copyright files,
    # translations; the dpkg configuration keeps packages installed later from adding them back.
    local rootfs="$1"
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/quorum-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
}

ensure_base() {
    if "${podman_cmd[@]}" image exists "$base_image"; then return; fi
    if [ "$base_image" != "$default_base" ]; then
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
    slim_rootfs "$rootfs"
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

image_name() {
    # The image of a variant: the worker keeps the plain name, which the chart gives to every pod it creates.
    case "$1" in
        operator) echo "${prefix}quorum-operator:$version" ;;
        worker) echo "${prefix}quorum:$version" ;;
        torch) echo "${prefix}quorum-torch:$version" ;;
        *) say "unknown variant $1 (operator, worker or torch)"; exit 2 ;;
    esac
}

stage_embedders() {
    # The exported graph's directory (model-<digest>/model.onnx) copied into $1, as the Dockerfile expects;
    # `quorum embedder export` only prints its path when `make setup` already made it.
    local quorum="$repo/.venv/bin/quorum" graph
    [ -x "$quorum" ] || { say "$quorum missing: run \`make setup\` first"; exit 1; }
    graph="$("$quorum" embedder export | tail -1)"
    [ -f "$graph" ] || { say "no ONNX graph at $graph"; exit 1; }
    cp -r "$(dirname "$graph")" "$1/"
}

work_dir=""

build_variant() {
    local variant="$1" image started=$SECONDS size
    image="$(image_name "$variant")"
    local embedders="$work_dir/embedders-$variant"
    mkdir -p "$embedders"
    [ "$variant" = operator ] || stage_embedders "$embedders"
    say "building $image (variant $variant) from $base_image"
    "${podman_cmd[@]}" build \
        --file "$repo/images/Dockerfile" \
        --build-context "uv=$work_dir/uv" \
        --build-context "embedders=$embedders" \
        --build-arg "BASE_IMAGE=$base_image" \
        --build-arg "VARIANT=$variant" \
        --build-arg UV_OFFLINE=1 \
        --volume "$uv_cache:/cache/uv" \
        --tag "$image" \
        "$repo"
    size="$("${podman_cmd[@]}" image inspect "$image" --format '{{.Size}}')"
    say "built $image in $((SECONDS - started)) s; size $((size / 1000000)) MB"
}

main() {
    command -v podman >/dev/null || { say "podman missing: apt-get install podman runc"; exit 1; }
    local variants=("$@")
    [ ${#variants[@]} -gt 0 ] || variants=(operator worker)
    for variant in "${variants[@]}"; do image_name "$variant" >/dev/null; done
    ensure_base
    work_dir="$(mktemp -d)"
    trap 'rm -rf "${work_dir}"' EXIT
    mkdir -p "$work_dir/uv" "$uv_cache"
    cp "$(uv_binary_dir)/uv" "$work_dir/uv/uv"
    for variant in "${variants[@]}"; do build_variant "$variant"; done
    # Superseded layers of earlier builds are gigabytes once the dependencies change: keep what the tags use.
    "${podman_cmd[@]}" image prune --force >/dev/null
}

main "$@"
