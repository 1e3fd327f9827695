#!/usr/bin/env bash
# Builds the images the integration tests use, with no registry:
#   mux-test/busybox  FROM-scratch-like image: static busybox, /bin/sh, no bash
#   mux-test/debian   debootstrap'd Debian (bash, git, curl, gcc) via `docker import`
# The Debian rootfs tarball is cached (MUX_TEST_CACHE, default /var/cache/mux-test),
# so a second run costs only the `docker import`.
set -euo pipefail
cache=${MUX_TEST_CACHE:-/var/cache/mux-test}
suite=${MUX_TEST_SUITE:-bookworm}
mirror=${MUX_TEST_MIRROR:-http://deb.debian.org/debian}
packages=git,curl,ca-certificates,gcc,libc6-dev,procps
mkdir -p "$cache"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if ! have_image mux-test/busybox; then
    bb=/bin/busybox  # from busybox-static: a static binary runs in an image with no libc
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    chmod 755 "$root"  # the image's /: docker ignores mktemp's 700 there, podman keeps it
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/home"
    chmod 1777 "$root/tmp"
    cp "$bb" "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    tar -C "$root" -c . | docker import --change 'CMD ["/bin/sh"]' - mux-test/busybox >/dev/null
    echo "built mux-test/busybox"
fi

if ! have_image mux-test/debian; then
    tarball="$cache/debian-$suite-rootfs.tar"
    if [ ! -s "$tarball" ]; then
        work=$(mktemp -d "$cache/rootfs.XXXXXX")
        debootstrap --variant=minbase --include="$packages" "$suite" "$work" "$mirror" >"$cache/debootstrap.log" 2>&1 \
            || { tail -20 "$cache/debootstrap.log" >&2; rm -rf "$work"; exit 1; }
        rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/*
        tar -C "$work" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$work"
    fi
    docker import --change 'CMD ["/bin/bash"]' "$tarball" mux-test/debian >/dev/null
    echo "built mux-test/debian"
fi

# A second engine, reached over ssh (tests/integration/remote): Debian's docker.io
# and openssh-server on top of mux-test/debian. Rebuilt when its files change.
remote_tag=mux-test/remote-engine
remote_dir=$(dirname "$0")/remote-engine
remote_sum=$(cat "$remote_dir/Dockerfile" "$remote_dir/start.sh" | sha256sum | cut -c1-16)
if [ "$(docker image inspect --format '{{index .Config.Labels "mux.test.source"}}' "$remote_tag" 2>/dev/null)" != "$remote_sum" ]; then
    if ! out=$(docker build -q --label "mux.test.source=$remote_sum" -t "$remote_tag" "$remote_dir" 2>&1); then
        echo "$out" >&2
        exit 1
    fi
    echo "built $remote_tag"
fi
