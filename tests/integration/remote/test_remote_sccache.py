"""[docker.rust] sccache on another machine's engine: the cache is a volume there,
shared by sessions and kept when they are deleted; the host's binary is copied
once into a volume named by its digest."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mux.session.sccache import find_binary
from tests.conftest import mux
from tests.integration.remote.conftest import RemoteEngine
from tests.integration.test_sccache import COMPILE, SOURCE, stat

pytestmark = pytest.mark.docker
BOX = ("--context", "box")


def volumes(remote: RemoteEngine, *filters: str) -> list[str]:
    label = f"label=mux.instance={os.environ['MUX_INSTANCE']}"
    args = [a for f in filters for a in ("--filter", f)]
    return sorted(remote.docker("volume", "ls", "-q", "--filter", label, *args).stdout.split())


@pytest.fixture
def rust_remote(remote_home: Path) -> Path:
    with (remote_home / "config.toml").open("a") as config:
        config.write("[docker.rust]\nsccache = true\ncargo_cache = true\n")
    work = remote_home / "work"
    work.mkdir()
    (work / "fib.c").write_text(SOURCE)
    return work


def test_sessions_there_share_a_cache_volume_that_outlives_them(rust_remote, remote, own_instance,
                                                                unique_name) -> None:
    stats = []
    for n, name in enumerate((f"{unique_name}-a", f"{unique_name}-b")):
        made = mux("-v", *BOX, "new", "--copy", "--workdir", str(rust_remote), name)
        assert made.returncode == 0, made.stderr
        # The binary is copied the first time only: the second session finds its volume.
        assert (f" cp -L {find_binary(None)} " in made.stderr) == (n == 0), made.stderr
        assert ("volume create --label mux.volume=sccache " in made.stderr) == (n == 0), made.stderr
        # `sccache` on PATH is the copied host binary, talking to the cache volume there.
        ran = mux(*BOX, "exec", name, "--", "sh", "-c",
                  COMPILE + " && readlink /usr/local/bin/sccache && sccache --show-stats | grep '^Cache location'",
                  timeout=120)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "/opt/mux/sccache/sccache\n" in ran.stdout
        assert "/mux/sccache" in ran.stdout.splitlines()[-1]
        stats.append(ran.stdout)
        # cargo's caches: volumes there too, CARGO_HOME the session's own, writable by it.
        cargo = mux(*BOX, "exec", name, "--", "sh", "-c",
                    'touch "$CARGO_HOME/x" "$CARGO_HOME/registry/r" && id -u && stat -c %u /mux/sccache')
        assert cargo.stdout.split() == [str(os.getuid())] * 2, cargo.stdout + cargo.stderr
        deleted = mux(*BOX, "delete", "--force", name)
        assert deleted.returncode == 0, deleted.stderr
    first, second = stats
    assert (stat(first, "Cache misses"), stat(first, "Cache hits")) == (1, 0)
    assert (stat(second, "Cache misses"), stat(second, "Cache hits")) == (0, 1)
    # Deleting the sessions removed their own volumes only: the caches and the program stay,
    # the program named by the digest of the host's binary.
    prefix = f"mux_{own_instance}_"
    digest = hashlib.sha256(find_binary(None).read_bytes()).hexdigest()
    assert volumes(remote, "label=mux.volume=program") == [f"{prefix}sccache-{digest}"]
    scope = "repo-" + hashlib.sha256(str(rust_remote.resolve()).encode()).hexdigest()[:16]  # cache_scope "repo"
    assert volumes(remote) == sorted([f"{prefix}sccache-{digest}", *(f"{prefix}{v}-{scope}" for v in
                                      ("sccache", "cargo-registry", "cargo-git"))])
    # The remote machine's own filesystem has no trace of this machine's cache dir.
    assert remote.inside("test", "-e", str(Path("~/.cache/sccache").expanduser()), check=False).returncode != 0
    # doctor: the shared volumes are kept on purpose, no leftovers...
    checks = {c["name"]: c for c in json.loads(mux(*BOX, "doctor", "--json").stdout)["checks"]}
    assert checks["containers"]["ok"], checks["containers"]
    # ...but a session volume whose session is gone is one, and so is a copy that never
    # finished (a `mux new` killed while filling a volume leaves its helper container).
    left = f"mux-{unique_name}-c-home"
    remote.docker("volume", "create", "--label", f"mux.session={unique_name}-c", "--label",
                  f"mux.instance={own_instance}", left)
    remote.docker("create", "--name", f"mux_fill_{prefix}sccache", "--label", "mux.helper=fill",
                  "--label", f"mux.instance={own_instance}", "mux-test/busybox", "true")
    checks = {c["name"]: c for c in json.loads(mux(*BOX, "doctor", "--json").stdout)["checks"]}
    found = checks["containers"]
    assert not found["ok"] and f"volumes of sessions that no longer exist: {left}" in found["detail"]
    assert f"copies into volumes that never finished (their mux new was killed): {prefix}sccache" in found["detail"]
    assert f"`docker --context box volume rm {left}`" in found["fix"]
    assert (f"`docker --context box rm -f mux_fill_{prefix}sccache && docker --context box volume rm "
            f"{prefix}sccache`") in found["fix"]
