#!/usr/bin/env bash
# Rebuilds mux/forward_bin/mux-forward-{amd64,arm64} from helper/forward.c with the
# Zig toolchain from PyPI (`pip install ziglang==0.17.1`, in mux's dev extra):
# static musl binaries that run in any Linux image. The output is deterministic,
# so tests/unit/test_forward_helper.py checks the committed binaries against a rebuild.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../mux/forward_bin}
mkdir -p "$out"
for pair in amd64:x86_64 arm64:aarch64; do
    arch=${pair%%:*} target=${pair##*:}
    ${PYTHON:-python3} -m ziglang cc -target "$target-linux-musl" -Os -static -s \
        -fno-ident -Wl,--build-id=none -o "$out/mux-forward-$arch" "$here/forward.c"
    chmod 0755 "$out/mux-forward-$arch"
done
