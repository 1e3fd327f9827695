"""The session's passwd and group: the host user's name for the uid it runs as."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mux.engine.runner import write_argv
from mux.session import account


def test_files_name_root_the_user_and_nobody() -> None:
    texts = account.files("ada", 1000, "staff", 50, "/bin/bash")
    assert texts["passwd"] == ("root:x:0:0:root:/root:/bin/sh\n"
                               "ada:x:1000:50:ada:/home/mux:/bin/bash\n"
                               "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    assert texts["group"] == "root:x:0:\nstaff:x:50:\nnogroup:x:65534:\n"


def test_root_on_the_host_is_root_inside_once() -> None:
    texts = account.files("root", 0, "root", 0, "/bin/bash")
    assert texts["passwd"].splitlines()[0] == "root:x:0:0:root:/home/mux:/bin/bash"
    assert [line.split(":")[2] for line in texts["passwd"].splitlines()] == ["0", "65534"]
    assert texts["group"].splitlines() == ["root:x:0:", "nogroup:x:65534:"]


@pytest.mark.parametrize(("uid", "env", "expected"), [
    pytest.param(os.getuid(), {}, None, id="host-knows-the-uid"),
    pytest.param(4242, {"USER": "grace"}, "grace", id="unknown-uid-uses-USER"),
    pytest.param(4242, {"USER": "evil:x:0:0::/:/bin/sh\nroot"}, "mux", id="unsafe-USER-never-written"),
    pytest.param(4242, {}, "mux", id="nothing-known"),
])
def test_host_names(uid: int, env: dict[str, str], expected: str | None) -> None:
    import pwd

    user, group = account.host_names(uid, 4242, env)
    assert user == (expected or pwd.getpwuid(uid).pw_name)
    assert group == user  # gid 4242 has no name here: the user's name stands in
    assert account.NAME.fullmatch(user) and account.NAME.fullmatch(group)


def test_printed_write_command_makes_the_same_file(tmp_path: Path) -> None:
    text = account.files("ada", 1000, "ada", 1000, "/bin/sh")["passwd"]
    target = tmp_path / "passwd"
    argv, content = write_argv(target, text)
    assert content == text
    subprocess.run(argv, check=True)
    assert target.read_text() == text
