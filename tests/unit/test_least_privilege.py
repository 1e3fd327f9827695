"""Least privilege: who a session runs as when mux is root, pids, and what a root session leaves."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mux.config import Config, DockerSettings, parse
from mux.errors import ConfigError
from mux.session import account
from mux.session.plan import HostFacts, NewOptions, build_spec
from mux.workspace import special


def host(tmp_path: Path, uid: int = 0, env: dict[str, str] | None = None) -> HostFacts:
    return HostFacts(uid=uid, gid=uid, env=env or {}, cwd=tmp_path / "proj",
                     now=datetime(2026, 1, 1, tzinfo=timezone.utc), data_dir=tmp_path / "data")


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    (tmp_path / "proj").mkdir()
    return tmp_path / "proj"


def test_root_runs_a_session_as_the_workdirs_owner(tmp_path: Path, proj: Path) -> None:
    os.chown(proj, 4242, 4343)
    spec = build_spec(Config(), NewOptions(name="s1"), host(tmp_path))
    assert spec.user == "4242:4343" and not spec.uid0
    passwd = dict((p.name, text) for p, text in spec.accounts)["passwd"]
    assert "mux:x:4242:4343:" in passwd  # a name of its own, never root's


@pytest.mark.parametrize(("settings", "env"), [
    pytest.param({"run_as_root": True}, {}, id="config"),
    pytest.param({}, {account.ROOT_ENV: "1"}, id="env"),
])
def test_uid_0_only_when_asked(tmp_path: Path, proj: Path, settings: dict[str, bool], env: dict[str, str]) -> None:
    spec = build_spec(Config(docker=DockerSettings(**settings)), NewOptions(name="s1"), host(tmp_path, env=env))
    assert spec.user == "0:0" and spec.uid0


def test_root_owned_workdir_is_refused(tmp_path: Path, proj: Path) -> None:
    with pytest.raises(ConfigError, match="owned by root: a session never runs as uid 0") as exc:
        build_spec(Config(), NewOptions(name="s1"), host(tmp_path))
    assert "run_as_root" in (exc.value.hint or "")


def test_a_repo_session_of_root_runs_as_the_sources_owner(tmp_path: Path, proj: Path) -> None:
    import subprocess

    src = tmp_path / "src"
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    os.chown(src, 4242, 4242)
    spec = build_spec(Config(), NewOptions(name="s1", repo=str(src)), host(tmp_path))
    assert spec.user == "4242:4242"


def test_a_normal_user_and_run_as_user_off(tmp_path: Path, proj: Path) -> None:
    assert build_spec(Config(), NewOptions(name="s1"), host(tmp_path, uid=1000)).user == "1000:1000"
    off = build_spec(Config(docker=DockerSettings(run_as_user=False)), NewOptions(name="s1"), host(tmp_path))
    assert off.user is None and off.uid0  # the image's user: maybe root


@pytest.mark.parametrize(("text", "pids"), [
    pytest.param("", 4096, id="default"),
    pytest.param("[docker.limits]\npids = 200\n", 200, id="set"),
    pytest.param("[docker.limits]\npids = 0\n", None, id="off"),
])
def test_pids_limit(tmp_path: Path, proj: Path, text: str, pids: int | None) -> None:
    from mux.configfile import loads

    config = parse(loads(text), tmp_path / "c.toml", {})
    assert build_spec(config, NewOptions(name="s1"), host(tmp_path, uid=1000)).policy.pids_limit == pids


def test_pids_must_be_a_count(tmp_path: Path) -> None:
    from mux.configfile import loads

    with pytest.raises(ConfigError, match=r"\[docker.limits\] pids: must be at least 0"):
        parse(loads("[docker.limits]\npids = -5\n"), tmp_path / "c.toml", {})


def test_clear_bits_and_devices_never_following_links(tmp_path: Path) -> None:
    top = tmp_path / "w"
    (top / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.write_text("x")
    os.chmod(outside, 0o4755)
    for path, mode in ((top / "sh", 0o6755), (top / "sub/plain", 0o755), (top / "sub/g", 0o2711)):
        path.write_text("#!")
        os.chmod(path, mode)
    (top / "link").symlink_to(outside)
    (top / "dirlink").symlink_to(tmp_path)
    os.mknod(top / "sub/dev", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    done = special.clear(top)
    assert sorted(done.bits) == ["sh", "sub/g"] and done.devices == ["sub/dev"] and done.failed == []
    assert stat.S_IMODE((top / "sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((top / "sub/g").stat().st_mode) == 0o711
    assert not (top / "sub/dev").exists()
    assert stat.S_IMODE(outside.stat().st_mode) == 0o4755  # a link's target is not the session's


def test_special_cleanup_argv_sees_only_the_directory() -> None:
    from mux.engine import argv as A

    assert A.special_cleanup_argv("img", "/d/w", labels=[("mux.helper", "cleanup")]) == [
        "run", "--rm", "--pull", "never", "--network", "none", "-u", "0:0",
        "--security-opt", "no-new-privileges", "--cap-drop", "ALL", "--cap-add", "FOWNER", "--cap-add", "DAC_OVERRIDE",
        "--label", "mux.helper=cleanup", "-v", "/d/w:/x", "--entrypoint", "find", "img", "/x", "-xdev",
        "(", "-type", "b", "-o", "-type", "c", ")", "-print", "-exec", "rm", "-f", "{}", "+",
        "-o", "-type", "f", "(", "-perm", "-4000", "-o", "-perm", "-2000", ")", "-print", "-exec", "chmod", "ug-s",
        "{}", "+",
    ]


def test_after_root_session_says_what_it_cleared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/evil\x1b[2J").write_text("x")
    os.chmod(tmp_path / "w/evil\x1b[2J", 0o4755)
    special.after_root_session("s1", [tmp_path / "w", tmp_path / "missing"])
    err = capsys.readouterr().err
    assert err == (f"mux: note: session s1 ran as root: cleared the setuid/setgid bits of 1 file in {tmp_path}/w: "
                   "evil\\x1b[2J\n")  # a name the agent chose, escaped
