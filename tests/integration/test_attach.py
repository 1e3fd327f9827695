"""`mux attach` hands a real terminal to `docker attach`."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pytest

from tests.conftest import docker, mux

pytestmark = pytest.mark.docker


def read_until(fd: int, needle: bytes, limit: float = 20.0) -> bytes:
    """Read the terminal until ``needle`` shows up (bounded; fails on timeout)."""
    seen = b""
    deadline = time.monotonic() + limit
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_attach_starts_a_stopped_session_and_detaches(images, mux_home, unique_name, cleanup_containers) -> None:
    cleanup_containers.append(f"mux-{unique_name}")
    assert mux("new", unique_name).returncode == 0
    assert mux("stop", unique_name).returncode == 0

    printed = mux("attach", "--dry-run", unique_name, check=True).stdout
    cid = docker("container", "inspect", "--format", "{{.Id}}", f"mux-{unique_name}").stdout.strip()
    assert printed.splitlines() == [f"docker start {cid}", f"docker attach {cid}"]  # by ID, found by label
    assert json.loads(mux("list", "--json").stdout)[0]["status"] == "stopped"  # dry-run ran nothing

    primary, secondary = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mux", "attach", unique_name],
                            stdin=secondary, stdout=secondary, stderr=secondary,
                            start_new_session=True)
    os.close(secondary)
    try:
        assert b"detach with Ctrl-P Ctrl-Q" in read_until(primary, b"Ctrl-Q")
        os.write(primary, b"echo answer-$((40+2))\r")
        assert b"answer-42" in read_until(primary, b"answer-42")
        os.write(primary, b"\x10\x11")  # Ctrl-P Ctrl-Q: docker's detach keys
        # docker reports the detach ("read escape sequence") and exits 1; the
        # session runs on, so for mux the detach is a success: exit 0.
        assert b"escape sequence" in read_until(primary, b"escape sequence")
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    assert proc.returncode == 0
    state = json.loads(docker("container", "inspect", f"mux-{unique_name}").stdout)[0]["State"]
    assert state["Running"] is True  # detaching leaves the session running
