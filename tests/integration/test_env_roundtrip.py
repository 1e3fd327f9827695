"""Property: any env value that passes validation reaches the container byte for byte,
and the printed --dry-run command is exactly the argv that ran."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DEBIAN, docker, mux

pytestmark = pytest.mark.docker

def same_but_time(argv: list[str]) -> list[str]:
    return ["mux.created=T" if a.startswith("mux.created=") else a for a in argv]


values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(values, min_size=1, max_size=6))
def test_env_values_arrive_byte_for_byte(images, mux_home, tmp_path, env_values: list[str]) -> None:
    name = f"prop-{uuid.uuid4().hex[:10]}"  # container names are engine-wide: never a fixed one
    flags = [f"--env=V{i}={v}" for i, v in enumerate(env_values)]
    printed = mux("new", "--dry-run", "--image", DEBIAN, *flags, name, "--", "sleep", "600", check=True).stdout
    # Host steps (mkdir, the passwd and group writes) come first; a value with a newline
    # makes the docker run line span lines, so take everything from its start.
    run_line = printed[printed.index("docker run "):].strip() if printed.startswith("docker run ") \
        else printed[printed.index("\ndocker run ") + 1:].strip()
    argv = shlex.split(run_line)
    try:
        made = mux("-v", "new", "--image", DEBIAN, *flags, name, "--", "sleep", "600")
        assert made.returncode == 0, made.stderr
        echoed = made.stderr[made.stderr.index("+ docker run ") + 2:]
        echoed = echoed.split("\n+ docker top ", 1)[0]  # then only the started check (a query)
        # -v echoes exactly what --dry-run printed (but for the creation time)
        assert same_but_time(shlex.split(echoed)) == same_but_time(argv)
        # bytes, not text: text mode would turn a \r into \n on the way back
        raw = subprocess.run([sys.executable, "-m", "mux", "exec", name, "--", "printenv", "-0"],
                             capture_output=True, check=True).stdout
        out = raw.decode("utf-8")
        seen = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
        assert [seen.get(f"V{i}") for i in range(len(env_values))] == env_values
        labels = json.loads(docker("container", "inspect", f"mux-{name}").stdout)[0]["Config"]["Labels"]
        assert labels["mux.session"] == name
    finally:
        mux("delete", "--force", name)
