#!/usr/bin/env bash
# helper/build.sh [OUTDIR [NAME]]: rebuilds mux's static helpers with the Zig
# toolchain from PyPI (`pip install ziglang==0.17.1`, in mux's dev extra): static
# musl binaries that run in any Linux image, for amd64 and arm64.
#   PYTHON: the interpreter that has ziglang (default: this checkout's .venv, which
#           `make install` makes; never whatever python3 comes first on PATH)
#   NAME forward (default): helper/forward.c -> mux/session/forward_bin/mux-forward-ARCH
#   NAME relay:             helper/relay.c   -> mux/egress/relay_bin/mux-relay-ARCH
# The output is deterministic, so tests check the committed binaries against a rebuild.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${2:-forward}
case $name in
    forward) default=$here/../mux/session/forward_bin ;;
    relay) default=$here/../mux/egress/relay_bin ;;
    *) echo "build.sh: unknown helper $name (forward or relay)" >&2; exit 2 ;;
esac
out=${1:-$default}
python=${PYTHON:-$here/../.venv/bin/python}
if ! "$python" -c 'import ziglang' 2>/dev/null; then
    echo "build.sh: $python has no ziglang: run \`make install\` (the dev extra), or set PYTHON" >&2
    exit 1
fi
mkdir -p "$out"
for pair in amd64:x86_64 arm64:aarch64; do
    arch=${pair%%:*} target=${pair##*:}
    "$python" -m ziglang cc -target "$target-linux-musl" -Os -static -s \
        -fno-ident -Wl,--build-id=none -o "$out/mux-$name-$arch" "$here/$name.c"
    chmod 0755 "$out/mux-$name-$arch"
done
