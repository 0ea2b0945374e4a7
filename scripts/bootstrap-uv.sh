#!/usr/bin/env bash
# Installs the pinned uv into ~/.cache/quorum/uv when the machine has none, so that `make setup` needs
# nothing but python3 and a package registry.
set -euo pipefail
UV_VERSION=0.13.8
if command -v uv >/dev/null 2>&1; then exit 0; fi
dest="$HOME/.cache/quorum/uv"
if [ -x "$dest/bin/uv" ]; then exit 0; fi
echo "bootstrap: installing uv $UV_VERSION into $dest"
python3 -m venv "$dest"
"$dest/bin/pip" install --quiet "uv==$UV_VERSION"
