"""mux.validate: every checker, as tables of good and bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux import names
from mux import validate as V
from mux.errors import ConfigError

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("name", [
    pytest.param("a", id="one-char"),
    pytest.param("my-session", id="dash"),
    pytest.param("A.b_c-9", id="mixed"),
    pytest.param("0lead-digit", id="leading-digit"),
    pytest.param("x" * 63, id="63-chars"),
])
def test_session_name_ok(name: str) -> None:
    assert names.session_name(name) == name


@pytest.mark.parametrize("name", [
    pytest.param("", id="empty"),
    pytest.param("x" * 64, id="64-chars"),
    pytest.param("-lead-dash", id="leading-dash"),
    pytest.param(".hidden", id="leading-dot"),
    pytest.param("_under", id="leading-underscore"),
    pytest.param("has space", id="space"),
    pytest.param("a/b", id="slash"),
    pytest.param("a:b", id="colon"),
    pytest.param("name\n", id="trailing-newline"),
    pytest.param("é", id="non-ascii"),
])
def test_session_name_bad(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid session name.*1-63"):
        names.session_name(name)


@pytest.mark.parametrize("ref", [
    pytest.param("ubuntu", id="bare"),
    pytest.param("ubuntu:22.04", id="tag"),
    pytest.param("library/ubuntu:latest", id="namespace"),
    pytest.param("ghcr.io/org/image:1.0", id="registry"),
    pytest.param("localhost:5000/foo/bar:dev_1", id="registry-port"),
    pytest.param(f"ubuntu@{DIGEST}", id="digest"),
    pytest.param(f"ubuntu:22.04@{DIGEST}", id="tag-and-digest"),
    pytest.param(f"ghcr.io/org/img@{DIGEST}", id="registry-digest"),
    pytest.param("mux-test/busybox", id="dash-component"),
    pytest.param("a__b/c.d", id="separators"),
])
def test_image_ok(ref: str) -> None:
    assert V.image(ref, "--image") == ref


@pytest.mark.parametrize("ref", [
    pytest.param("", id="empty"),
    pytest.param("Ubuntu", id="uppercase-repo"),
    pytest.param("ubuntu:", id="empty-tag"),
    pytest.param("ubuntu:-x", id="tag-leading-dash"),
    pytest.param("ubuntu@sha256:abc", id="short-digest"),
    pytest.param("ubuntu@sha256:" + "A" * 64, id="uppercase-digest"),
    pytest.param("ubuntu@md5:" + "a" * 32, id="other-algorithm"),
    pytest.param("ubuntu 22.04", id="space"),
    pytest.param("-ubuntu", id="leading-dash"),
    pytest.param("ubuntu:" + "t" * 129, id="tag-too-long"),
    pytest.param("a/" * 127 + "bb", id="longer-than-255"),
    pytest.param("ubuntu:é", id="non-ascii-tag"),
])
def test_image_bad(ref: str) -> None:
    with pytest.raises(ConfigError, match=r"^--image: invalid image reference"):
        V.image(ref, "--image")


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param("4g", "4g", id="4g"),
    pytest.param("4G", "4G", id="upper"),
    pytest.param("512m", "512m", id="512m"),
    pytest.param("1.5g", "1.5g", id="fraction"),
    pytest.param("4gb", "4gb", id="gb-suffix"),
    pytest.param(" 2g ", "2g", id="stripped"),
    pytest.param(8 * 1024**2, str(8 * 1024**2), id="int-bytes"),
    pytest.param("6m", "6m", id="minimum"),
    pytest.param("4 g", "4 g", id="one-space"),
    pytest.param("8388608b", "8388608b", id="bytes-b"),
])
def test_memory_ok(value: object, expected: str) -> None:
    assert V.memory(value, "--memory") == expected


@pytest.mark.parametrize(("value", "message"), [
    pytest.param("lots", "invalid memory size 'lots'", id="lots"),
    pytest.param("", "invalid memory size", id="empty"),
    pytest.param("4x", "invalid memory size", id="bad-unit"),
    pytest.param("g", "invalid memory size", id="no-number"),
    pytest.param("-1", "invalid memory size", id="unlimited-not-allowed"),
    pytest.param("5m", "too small", id="below-6m"),
    pytest.param(0, "too small", id="zero"),
    pytest.param(True, "expected a size", id="bool"),
    pytest.param(4.5, "expected a size", id="float"),
    pytest.param(None, "expected a size", id="none"),
    pytest.param("٤g", "invalid memory size", id="non-ascii-digit"),
    pytest.param("4  g", "invalid memory size", id="two-spaces"),
    pytest.param("4\tg", "invalid memory size", id="tab"),
    pytest.param("4gbb", "invalid memory size", id="double-b"),
    pytest.param("8388608bb", "invalid memory size", id="bytes-double-b"),
])
def test_memory_bad(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^--memory: .*" + message):
        V.memory(value, "--memory")


def test_memory_unlimited_only_where_allowed() -> None:
    assert V.memory("-1", "--memory-swap", allow_unlimited=True) == "-1"
    assert V.memory(-1, "--memory-swap", allow_unlimited=True) == "-1"
    with pytest.raises(ConfigError, match="or -1 for unlimited"):
        V.memory("lots", "--memory-swap", allow_unlimited=True)


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param("4g", 4 * 1024**3, id="g"),
    pytest.param("512M", 512 * 1024**2, id="M"),
    pytest.param("1.5g", int(1.5 * 1024**3), id="fraction"),
    pytest.param("1t", 1024**4, id="t"),
    pytest.param("10485760", 10485760, id="bytes"),
])
def test_memory_bytes(value: str, expected: int) -> None:
    assert V.memory_bytes(value, "m") == expected


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param("2", "2", id="str-int"),
    pytest.param("1.5", "1.5", id="str-float"),
    pytest.param(".5", ".5", id="leading-dot"),
    pytest.param(2, "2", id="int"),
    pytest.param(0.25, "0.25", id="float"),
])
def test_cpus_ok(value: object, expected: str) -> None:
    assert V.cpus(value, "--cpus") == expected


@pytest.mark.parametrize("value", [
    pytest.param("0", id="zero"),
    pytest.param("0.0", id="zero-float"),
    pytest.param("-1", id="negative"),
    pytest.param("two", id="word"),
    pytest.param("", id="empty"),
    pytest.param("1e3", id="exponent"),
    pytest.param("inf", id="inf"),
    pytest.param("nan", id="nan"),
    pytest.param("٢", id="non-ascii-digit"),
    pytest.param(0, id="int-zero"),
])
def test_cpus_bad(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^--cpus: invalid CPU count"):
        V.cpus(value, "--cpus")


@pytest.mark.parametrize("value", [pytest.param(True, id="bool"), pytest.param([1], id="list"),
                                   pytest.param(None, id="none")])
def test_cpus_wrong_type(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^--cpus: expected a number of CPUs"):
        V.cpus(value, "--cpus")


@pytest.mark.parametrize("value", ["bridge", "host", "none", "my-net_1.x", "container:mux-other"])
def test_network_ok(value: str) -> None:
    assert V.network(value, "--network") == value


@pytest.mark.parametrize("value", [
    pytest.param("", id="empty"), pytest.param("bad net", id="space"),
    pytest.param("container:", id="container-no-name"), pytest.param("-x", id="leading-dash"),
])
def test_network_bad(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^--network: invalid network"):
        V.network(value, "--network")


HOST_ENV = {"PRESENT": "yes", "EMPTY": ""}


@pytest.mark.parametrize(("entry", "expected"), [
    pytest.param("A=1", ("A", "1"), id="set"),
    pytest.param("A=", ("A", ""), id="empty-value"),
    pytest.param("A=b=c", ("A", "b=c"), id="equals-in-value"),
    pytest.param("_X9=multi\nline", ("_X9", "multi\nline"), id="newline-value"),
    pytest.param("PRESENT", ("PRESENT", None), id="bare-present"),
    pytest.param("EMPTY", ("EMPTY", None), id="bare-present-but-empty"),
])
def test_env_entry_ok(entry: str, expected: tuple[str, str | None]) -> None:
    assert V.env_entry(entry, "--env", HOST_ENV) == expected


@pytest.mark.parametrize(("entry", "message"), [
    pytest.param("=value", "invalid environment entry '=value'", id="empty-name"),
    pytest.param("", "invalid environment entry", id="empty"),
    pytest.param("1A=x", "invalid environment entry", id="leading-digit"),
    pytest.param("A-B=x", "invalid environment entry", id="dash"),
    pytest.param(" A=x", "invalid environment entry", id="leading-space"),
    pytest.param("ABSENT", "'ABSENT' passes the host's value, but ABSENT is not set", id="bare-absent"),
    pytest.param("A=x\0y", "NUL", id="nul"),
])
def test_env_entry_bad(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^--env: .*" + message):
        V.env_entry(entry, "--env", HOST_ENV)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    (tmp_path / "file.txt").write_text("x")
    return tmp_path / "proj"


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param("./sub:/x", "{base}/sub:/x", id="relative-dot"),
    pytest.param("sub/..:/x", None, id="relative-no-dot-is-not-a-name"),
    pytest.param("../file.txt:/f:ro", "{tmp}/file.txt:/f:ro", id="parent-ro"),
    pytest.param("{tmp}/proj/sub:/x:rw", "{base}/sub:/x:rw", id="absolute-rw"),
    pytest.param("{tmp}/proj/sub/../sub:/x", "{base}/sub:/x", id="normalised"),
    pytest.param("./sub:/x:ro,z", "{base}/sub:/x:ro,z", id="ro-and-selinux"),
    pytest.param("cache-vol:/cache", "cache-vol:/cache", id="named-volume"),
])
def test_volume_ok(base: Path, spec: str, expected: str | None) -> None:
    tmp = base.parent
    spec = spec.format(tmp=tmp)
    if expected is None:
        with pytest.raises(ConfigError, match="the host side must be an absolute path"):
            V.volume(spec, "--volume", base)
        return
    assert V.volume(spec, "--volume", base) == expected.format(base=base, tmp=tmp)


def test_volume_tilde_expands(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(base))
    assert V.volume("~/sub:/x:ro", "--volume", Path("/")) == f"{base}/sub:/x:ro"


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param("./sub", "a container path is required", id="no-container-path"),
    pytest.param("./sub:", "a container path is required", id="empty-container-path"),
    pytest.param("/a:/b:ro:extra", "use HOST:CONTAINER", id="too-many-parts"),
    pytest.param(":/x", "the host path is empty", id="empty-host"),
    pytest.param("./sub:relative", "must be absolute", id="relative-container-path"),
    pytest.param("./missing:/x", "does not exist", id="missing-host-path"),
    pytest.param("./sub:/", "cannot mount over the container's /", id="container-root"),
    pytest.param("/definitely/not/here:/x", "does not exist", id="missing-absolute"),
    pytest.param("./sub:/x:rx", "invalid volume mode 'rx'", id="bad-mode"),
    pytest.param("./sub:/x:", "invalid volume mode ''", id="empty-mode"),
    pytest.param("./sub:/x:ro,rw", "invalid volume mode", id="ro-and-rw"),
    pytest.param("C:\\Users\\me:/x", "looks like a Windows path", id="windows-backslash"),
    pytest.param("C:/Users/me:/x", "looks like a Windows path", id="windows-slash"),
    pytest.param("sub\\dir:/x", "looks like a Windows path", id="backslash"),
    pytest.param("1:/y", "the host side must be", id="one-char-volume-name"),
    pytest.param("v:/data", "looks like a Windows path", id="drive-letter-like"),
    pytest.param("bad name:/y", "the host side must be", id="name-with-space"),
])
def test_volume_bad(base: Path, spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^--volume: .*" + message.replace("\\", "\\\\")):
        V.volume(spec, "--volume", base)


def test_host_path(tmp_path: Path) -> None:
    assert V.host_path(tmp_path, "--workdir") == tmp_path
    with pytest.raises(ConfigError, match="does not exist"):
        V.host_path(tmp_path / "missing", "--workdir")
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        V.host_path(tmp_path / "f", "--workdir")


@pytest.mark.parametrize("name", ["a:b", "a,b"])
def test_host_path_rejects_what_dash_v_cannot_mount(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(ConfigError, match="contains ':' or ','"):
        V.host_path(tmp_path / name, "--workdir")
