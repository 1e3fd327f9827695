"""Inside a session: your name for your uid, the session's name as the host name,
a prompt that shows both; and git commits that have an author."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import docker, mux

pytestmark = pytest.mark.docker


def mux_as(user: dict, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", *args], cwd=user["base"] / "work",
                          env={**user["env"], **(env or {})}, capture_output=True, text=True,
                          user=user["uid"], group=user["uid"], extra_groups=[user["docker_gid"]])


def test_a_user_the_host_has_no_entry_for_is_named_inside(images, other_user, unique_name) -> None:
    user = other_user
    made = mux_as(user, "new", unique_name, env={"USER": "agent"})
    assert made.returncode == 0, made.stderr
    script = 'whoami; id -un; id -gn; hostname; echo "$HOME"; ls -ld "$HOME" | awk \'{print $3}\'; echo "${PS1@P}"'
    out = mux_as(user, "exec", unique_name, "--", "bash", "-ic", script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["agent", "agent", "agent", unique_name, "/home/mux", "agent",
                                       f"agent@{unique_name}:/workspace$ "]
    # Read-only, and nothing of the host's own passwd in it.
    tried = mux_as(user, "exec", unique_name, "--", "sh", "-c", "echo x >> /etc/passwd")
    assert tried.returncode != 0
    passwd = mux_as(user, "exec", unique_name, "--", "cat", "/etc/passwd").stdout
    assert [line.split(":")[0] for line in passwd.splitlines()] == ["root", "agent", "nobody"]


def test_root_and_busybox_get_a_name_and_host_name_too(images, mux_home, unique_name) -> None:
    import pwd

    assert mux("new", unique_name).returncode == 0  # busybox: no bash, no prompt escapes needed
    out = mux("exec", unique_name, "--", "sh", "-c", "whoami; hostname; cat /etc/hostname")
    me = pwd.getpwuid(os.getuid()).pw_name
    assert out.stdout.splitlines() == [me, unique_name, unique_name], out.stderr


def test_run_as_user_off_keeps_the_images_own_users(images, mux_home, unique_name) -> None:
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text('[docker]\nimage = "mux-test/debian"\npull = "never"\nrun_as_user = false\n')
    assert mux("new", unique_name).returncode == 0
    inspect = docker("container", "inspect", "--format", "{{range .Mounts}}{{.Destination}} {{end}}",
                     f"mux-{unique_name}").stdout.split()
    assert "/etc/passwd" not in inspect
    users = mux("exec", unique_name, "--", "cut", "-d:", "-f1", "/etc/passwd").stdout.split()
    assert "_apt" in users  # the image's passwd, untouched


def test_the_templates_volume_examples_work_as_a_user(images, other_user, unique_name) -> None:
    """The commented examples of `mux config init`, uncommented, under run_as_user:
    readable, writable where meant, and nothing secret mounted."""
    import re

    from mux.commands.config_cmd import template_path

    user = other_user
    block = re.search(r"# volumes = \[\n(.*?)# \]", template_path().read_text(), re.S)
    assert block, "the template has a volumes example"
    examples = [line.strip().lstrip("#").strip().rstrip(",") for line in block[1].splitlines()]
    assert examples == ['"~/datasets:/data:ro"', '"./shared:/shared"']
    home, base = Path(user["env"]["HOME"]), user["base"]
    for directory in (home / "datasets", base / "shared"):
        directory.mkdir()
        os.chown(directory, user["uid"], user["uid"])
    (home / "datasets" / "input.csv").write_text("a,b\n")
    config = Path(user["env"]["MUX_CONFIG"])  # lives in base: ./shared is beside it
    config.write_text(config.read_text().replace(
        "[docker]\n", f"[docker]\nvolumes = [{', '.join(examples)}]\n", 1))
    made = mux_as(user, "new", unique_name)
    assert made.returncode == 0, made.stderr
    out = mux_as(user, "exec", unique_name, "--", "sh", "-c",
                 "cat /data/input.csv && echo made > /shared/out.txt && ! touch /data/x 2>/dev/null && echo ro")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["a,b", "ro"]
    assert (base / "shared" / "out.txt").stat().st_uid == user["uid"]
