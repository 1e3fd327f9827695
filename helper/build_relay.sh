#!/usr/bin/env bash
# Rebuilds mux/proxy/relay_bin/mux-relay-{amd64,arm64} from helper/relay.c with the
# Zig toolchain from PyPI (`pip install ziglang`, in mux's dev extra), as
# helper/build.sh does for mux-forward: static musl binaries that run in any image.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../mux/proxy/relay_bin}
mkdir -p "$out"
for pair in amd64:x86_64 arm64:aarch64; do
    arch=${pair%%:*} target=${pair##*:}
    ${PYTHON:-python3} -m ziglang cc -target "$target-linux-musl" -Os -static -s \
        -fno-ident -Wl,--build-id=none -o "$out/mux-relay-$arch" "$here/relay.c"
    chmod 0755 "$out/mux-relay-$arch"
done
