"""Hostile input through the real CLI on a real engine: one clear line, the
documented exit code, no traceback, and nothing made (no container, no session
dir, no clone cache, no proxy state)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.conftest import docker, mux

pytestmark = pytest.mark.docker
NAME = "hostile"

CASES = [
    # (id, argv after `mux`, exit code, words the message must contain)
    ("name-space", ["new", "bad name"], 2, "invalid session name"),
    ("name-dash", ["new", "--", "-rf"], 2, "give the session NAME before `--`"),  # never a session "-rf"
    ("name-too-long", ["new", "a" * 64], 2, "1-63"),
    ("name-unicode", ["new", "sésame"], 2, "invalid session name"),
    ("image-upper", ["new", "--image", "Ubuntu:22.04", NAME], 2, "invalid image reference"),
    ("image-bad-digest", ["new", "--image", "ubuntu@sha256:abc", NAME], 2, "invalid image reference"),
    ("image-injection", ["new", "--image", "busybox;rm -rf /", NAME], 2, "invalid image reference"),
    ("volume-no-target", ["new", "--volume", "/tmp", NAME], 2, "container path is required"),
    ("volume-relative-target", ["new", "--volume", "/tmp:data", NAME], 2, "must be absolute"),
    ("volume-missing-host", ["new", "--volume", "/no/such/dir:/x", NAME], 2, "does not exist"),
    ("volume-windows", ["new", "--volume", "C:\\Users\\me:/x", NAME], 2, "Windows path"),
    ("volume-bad-mode", ["new", "--volume", "/tmp:/x:rx", NAME], 2, "invalid volume mode"),
    ("volume-over-workspace", ["new", "--volume", "/tmp:/workspace", NAME], 2, "mux mounts itself"),
    ("env-empty-name", ["new", "--env", "=value", NAME], 2, "invalid environment entry"),
    ("env-bad-name", ["new", "--env", "A B=1", NAME], 2, "invalid environment entry"),
    ("env-missing-host", ["new", "--env", "MUX_TEST_SURELY_UNSET", NAME], 2, "not set on the host"),
    ("memory-words", ["new", "--memory", "lots", NAME], 2, "invalid memory size"),
    ("memory-tiny", ["new", "--memory", "1k", NAME], 2, "too small"),
    ("swap-below-memory", ["new", "--memory", "1g", "--memory-swap", "512m", NAME], 2, "smaller than memory"),
    ("cpus-negative", ["new", "--cpus", "-1", NAME], 2, "invalid CPU count"),
    ("cpus-zero", ["new", "--cpus", "0", NAME], 2, "invalid CPU count"),
    ("network-bad", ["new", "--network", "bridge;ls", NAME], 2, "invalid network"),
    ("workdir-missing", ["new", "--workdir", "/no/such/dir", NAME], 2, "does not exist"),
    ("repo-option-injection", ["new", "--repo", "--upload-pack=touch /tmp/pwned", NAME], 2, "starts with '-'"),
    ("repo-ext-helper", ["new", "--repo", "ext::sh -c touch% /tmp/pwned", NAME], 2, "not allowed"),
    ("repo-missing-path", ["new", "--repo", "/no/such/repo", NAME], 2, "no such directory"),
    ("branch-bad", ["new", "--repo", "https://example.invalid/r.git", "--branch", "a..b", NAME], 2, "branch"),
    ("branch-without-repo", ["new", "--branch", "main", NAME], 2, "--branch needs --repo"),
    ("pull-bad", ["new", "--pull", "sometimes", NAME], 2, "sometimes"),
    ("unknown-flag", ["new", "--privileged", NAME], 2, "No such option"),
    ("not-found-stop", ["stop", "no-such-session"], 3, "no session named"),
    ("not-found-delete", ["delete", "no-such-session"], 3, "no session named"),
    ("delete-name-and-all", ["delete", "--all", NAME], 2, "not both"),
]


@pytest.fixture
def footprint(images, mux_home):  # type: ignore[no-untyped-def]
    data = Path(os.environ["MUX_DATA_DIR"])

    def made_anything() -> list[str]:
        found = [str(p.relative_to(data)) for p in data.rglob("*")] if data.exists() else []
        if docker("container", "inspect", f"mux-{NAME}", check=False).returncode == 0:
            found.append("container")
        return found

    return made_anything


@pytest.mark.parametrize("argv, code, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(footprint, tmp_path, argv, code, words) -> None:
    (tmp_path / "proj").mkdir()  # tmp_path holds mux's data dir and config: never a workdir
    result = mux(*argv, cwd=tmp_path / "proj")
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith(("mux: error: ", "Usage: ", "Error: "))
    assert len([ln for ln in lines if ln.startswith("mux: error:")]) <= 1
    assert footprint() == []
    assert not Path("/tmp/pwned").exists()


def _socket_file(directory: Path) -> Path:
    path = directory / "config.toml"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    return path


BAD_CONFIGS = [
    ("not-toml", lambda d: d / "c.toml", "[docker\nimage = ", "not valid TOML"),
    ("empty", lambda d: d / "c.toml", "", "is empty"),
    ("directory", lambda d: d, None, "is a directory"),
    ("huge", lambda d: d / "c.toml", "# " + "x" * (1024 * 1024 + 10) + "\n", "larger than 1 MiB"),
    ("binary", lambda d: d / "c.toml", b"\xff\xfe\x00junk", "not UTF-8"),
    ("unknown-key", lambda d: d / "c.toml", "[docker]\nimgae = 'x'\n", "unknown key 'imgae'"),
    ("wrong-type", lambda d: d / "c.toml", "[docker]\nvolumes = 'x'\n", "expected a list of strings"),
    ("unset-var", lambda d: d / "c.toml", "[docker]\nimage = '${MUX_TEST_UNSET_VAR}'\n", "MUX_TEST_UNSET_VAR"),
    ("bad-proxy-port", lambda d: d / "c.toml", "[proxy]\nport = 70000\n", "[proxy] port"),
    ("bad-credential", lambda d: d / "c.toml", "[credentials.x]\ndomains = 'github.com'\n", "credentials"),
    ("unreadable", _socket_file, None, "cannot read"),
    ("missing", lambda d: d / "nope.toml", None, "does not exist"),
]


@pytest.mark.parametrize("where, content, words", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_files_are_configuration_errors(footprint, tmp_path, where, content, words) -> None:
    directory = tmp_path / "cfg"
    directory.mkdir()
    path = where(directory)
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    # --pull never: were a bad file ever accepted, docker must not try a registry
    result = mux("new", "--pull", "never", "--image", "mux-test/busybox", NAME, env={"MUX_CONFIG": str(path)})
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert str(path) in result.stderr or "cfg" in result.stderr  # names the file
    assert footprint() == []
