"""The rootless-podman set-up checks of `mux doctor` (mux/engine/podman_setup.py), on made-up files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mux.config import Config, DockerSettings
from mux.engine import clis as engine_cli
from mux.engine import podman_setup
from mux.spec import Limits


def test_subids(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("other:100000:65536\nme:165536:65536\n")
    subgid.write_text("1234:165536:1000\n")
    check = podman_setup.check_subids(1234, "me", str(subuid), str(subgid))
    assert not check.ok
    assert check.detail == f"me has 1000 ids in {subgid} (rootless podman needs 65536)"
    assert "usermod --add-subuids" in check.fix and "podman system migrate" in check.fix
    subgid.write_text("me:165536:65536\n")
    assert podman_setup.check_subids(1234, "me", str(subuid), str(subgid)).ok


def test_runtime_dir(tmp_path: Path) -> None:
    uid = os.getuid()
    assert not podman_setup.check_runtime_dir({}, uid).ok
    assert not podman_setup.check_runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path / "no")}, uid).ok
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    run.chmod(0o755)
    assert not podman_setup.check_runtime_dir({"XDG_RUNTIME_DIR": str(run)}, uid).ok
    run.chmod(0o700)
    assert podman_setup.check_runtime_dir({"XDG_RUNTIME_DIR": str(run)}, uid).ok
    assert not podman_setup.check_runtime_dir({"XDG_RUNTIME_DIR": str(run)}, uid + 1).ok


def test_tun_and_init(tmp_path: Path) -> None:
    assert not podman_setup.check_tun(str(tmp_path / "tun")).ok
    assert "modprobe tun" in podman_setup.check_tun(str(tmp_path / "tun")).fix
    init = podman_setup.check_init((str(tmp_path / "catatonit"),))
    assert not init.ok and "apt-get install catatonit" in init.fix and "dnf install catatonit" in init.fix


@pytest.mark.parametrize(("v2", "rootless", "limits", "ok"), [
    (True, True, True, True), (False, False, True, True), (False, True, False, True), (False, True, True, False),
])
def test_cgroups(monkeypatch: pytest.MonkeyPatch, v2: bool, rootless: bool, limits: bool, ok: bool) -> None:
    monkeypatch.setattr(engine_cli, "cgroup_v2", lambda: v2)
    cfg = Config(docker=DockerSettings(limits=Limits(memory="1g") if limits else Limits()))
    check = podman_setup.check_cgroups(cfg, rootless)
    assert check.ok is ok
    if not ok:
        assert "[docker.limits] sets them" in check.detail and "cgroup v2" in check.fix


def test_ulimits_need_sys_resource_rootful(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t000001fffeffffff\n")  # this machine's root: bit 24 off
    conf = tmp_path / "containers.conf"
    check = podman_setup.check_ulimits(str(status), {"CONTAINERS_CONF": str(conf)})
    assert not check.ok and "default_ulimits" in check.fix
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n')
    assert podman_setup.check_ulimits(str(status), {"CONTAINERS_CONF": str(conf)}).ok
    status.write_text("CapEff:\t000001ffffffffff\n")
    assert podman_setup.check_ulimits(str(status)).ok


def test_rlimit_failure_hint() -> None:
    err = ("Error: runc: runc create failed: unable to start container process: error during container init: "
           "error setting rlimits for ready process: error setting rlimit type 7: operation not permitted")
    assert engine_cli.failure_hint(err) == engine_cli.RLIMIT_HINT
