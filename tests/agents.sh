#!/usr/bin/env bash
# Installs the real agent clients the agent tests run, from npm, into a cache
# (MUX_TEST_CACHE, default /var/cache/mux-test): Claude Code (a native `claude`)
# and Codex (a node script plus a static musl `codex`). A second run is free.
# Prints the npm prefix; the clients are under its node_modules.
set -euo pipefail
prefix=${MUX_TEST_CACHE:-/var/cache/mux-test}/npm
mods=$prefix/node_modules
if [ ! -x "$mods/@anthropic-ai/claude-code-linux-x64/claude" ] || [ ! -e "$mods/.bin/codex" ]; then
    command -v npm >/dev/null || { echo "npm is missing: install it (Debian: apt-get install npm)" >&2; exit 1; }
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        @anthropic-ai/claude-code @openai/codex >"$prefix/npm.log" 2>&1 \
        || { tail -20 "$prefix/npm.log" >&2; exit 1; }
fi
echo "$prefix"
