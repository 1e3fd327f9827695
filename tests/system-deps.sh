#!/usr/bin/env bash
# The Debian packages mux and its tests need: the Docker engine and CLI, git,
# curl, npm (the real agent clients), tmux (mux tui's end-to-end tests), a
# static busybox and debootstrap (the test
# images), rootlesskit, slirp4netns and uidmap (the rootless Docker engine of
# tests/integration/rootless), podman, catatonit and fuse-overlayfs (rootless
# podman, tests/integration/podman: docker.io's tini satisfies podman's
# Recommends, so catatonit, its --init, must be named), and python3-venv
# when $PYTHON is Debian's own (its venv module needs ensurepip to make .venv).
# As root, the missing ones are installed; otherwise they are named, with the
# command that installs them, and the install goes on (a user in the docker
# group needs only what root has already installed).
set -euo pipefail
# dockerd and debootstrap live in /usr/sbin, which a normal user's PATH lacks.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
python=${PYTHON:-python3}
missing=()
need() { [[ " ${missing[*]-} " == *" $1 "* ]] || missing+=("$1"); }
command -v dockerd >/dev/null || need docker.io
command -v docker >/dev/null || need docker.io
dpkg -s busybox-static >/dev/null 2>&1 || need busybox-static
command -v debootstrap >/dev/null || need debootstrap
command -v git >/dev/null || need git
command -v curl >/dev/null || need curl
command -v npm >/dev/null || need npm  # the real agent clients (tests/agents.sh)
command -v ip >/dev/null || need iproute2  # the neighbour namespace of tests/integration/test_loopback_publish.py
command -v tmux >/dev/null || need tmux  # the real terminal `mux tui` runs in (tests/integration/test_tui_tmux.py)
for pkg in rootlesskit slirp4netns uidmap podman catatonit fuse-overlayfs; do  # tests/integration/rootless, podman
    dpkg -s "$pkg" >/dev/null 2>&1 || need "$pkg"
done
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    case "$(readlink -f "$(command -v "$python" || echo "$python")")" in
        /usr/bin/python3*) need python3-venv ;;  # Debian splits ensurepip out of the interpreter
    esac
fi
# The install tests (tests/integration/test_install.py) make a venv with Debian's own python3 too.
if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
    need python3-venv
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "mux: missing Debian packages: ${missing[*]}" >&2
    echo "mux: install them as root: apt-get install ${missing[*]}" >&2
    exit 0
fi
echo "installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
