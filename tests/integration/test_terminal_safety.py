"""Nothing a session writes drives the user's terminal (issue 23 item 7), on a real engine.

Labels a container carries (set by whoever made it: an agent that reaches a Docker
socket, a foreign tool) and the output of a session that would not start are
printed by `mux list`, `mux doctor` and `mux start` with control characters escaped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, docker, mux

pytestmark = pytest.mark.docker
OSC_TITLE = "\x1b]0;owned\x07"
OSC_CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"


def raw_controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F]


def test_labels_with_escape_sequences_are_shown_escaped(images, mux_home, unique_name, cleanup_containers) -> None:
    instance = os.environ["MUX_INSTANCE"]
    evil = f"{unique_name}x"
    labels = {"mux.session": unique_name, "mux.instance": instance, "mux.backend": "docker",
              "mux.workdir": f"/w{OSC_TITLE}", "mux.repo": f"https://x.test/{OSC_CLIPBOARD}",
              "mux.branch": "\x1b[2Jmain", "mux.agent": "\x9b31mclaude", "mux.created": "2026\x1b[1A"}
    argv = ["create", "--name", f"mux-{unique_name}"]
    for k, v in labels.items():
        argv += ["--label", f"{k}={v}"]
    docker(*argv, BUSYBOX, "sleep", "60")
    cleanup_containers.append(f"mux-{unique_name}")
    docker("create", "--name", evil, "--label", f"mux.instance={instance}",
           "--label", f"mux.session=bad{OSC_TITLE}name", BUSYBOX, "true")
    cleanup_containers.append(evil)
    listed = mux("list")
    assert listed.returncode == 0, listed.stderr
    assert unique_name in listed.stdout and "\\x1b]0;owned\\x07" in listed.stdout
    assert raw_controls(listed.stdout + listed.stderr) == []
    doctor = mux("doctor")
    assert "bad" in doctor.stdout  # the foreign container is named
    assert raw_controls(doctor.stdout + doctor.stderr) == []
    for args in (["attach", "bad\x1b]0;x\x07"], ["delete", f"{unique_name}\x1b[2J"]):
        refused = mux(*args)
        assert refused.returncode != 0 and raw_controls(refused.stderr) == []


def test_last_output_of_a_session_that_will_not_start_is_escaped(images, mux_home, unique_name,
                                                                 tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    script = r'printf "\033]0;owned\007\033]52;c;cm0gLXJmIH4=\007\033[2Jlast words\n"; exit 3'
    made = mux("new", "--workdir", str(work), unique_name, "--", "sh", "-c", script)
    assert made.returncode == 0, made.stderr
    for _ in range(100):
        if docker("inspect", "-f", "{{.State.Running}}", f"mux-{unique_name}").stdout.strip() == "false":
            break
        time.sleep(0.1)
    started = mux("start", unique_name)
    assert started.returncode == 1
    assert "\\x1b]0;owned\\x07" in started.stderr and "last words" in started.stderr
    assert raw_controls(started.stderr) == []
