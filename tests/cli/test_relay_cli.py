"""The egress relay as read back from docker (mux/egress/relay.py): what doctor
and a session's next start/attach/exec act on. Labels and arguments are input."""

from __future__ import annotations

import pytest

from mux.egress import relay as egress
from mux.engine.runner import Runner
from mux.errors import DockerError


def inspect(fp, stdout: str, returncode: int = 0) -> egress.Relay | None:  # type: ignore[no-untyped-def]
    fp.register(["docker", "container", "inspect", "--format", fp.any(), egress.relay_name(18080)],
                stdout=stdout, returncode=returncode)
    return egress.inspect_relay(Runner(), 18080)


@pytest.mark.parametrize(("stdout", "expected"), [
    ('true mux-egress-i1 ["18080","172.30.0.1","18080"]\n', (True, "172.30.0.1:18080")),
    ('false mux-egress-i1 ["18080","172.30.0.1","18080"]\n', (False, "172.30.0.1:18080")),
    ('true mux-egress-i1 ["18081","172.30.0.1","18080"]\n', (True, "")),  # listens on another port
    ('true mux-egress-i1 ["18080","box; rm -rf /","18080"]\n', (True, "")),  # no address
    ('true mux-egress-i1 ["18080","172.30.0.1"]\n', (True, "")),
    ('true mux-egress-i1 {"a":1}\n', (True, "")),
    ("true mux-egress-i1\n", (True, "")),
], ids=["running", "stopped", "other-port", "not-an-address", "short", "not-a-list", "no-args"])
def test_a_relay_read_back(fp, monkeypatch: pytest.MonkeyPatch, stdout: str,  # type: ignore[no-untyped-def]
                           expected: tuple[bool, str]) -> None:
    monkeypatch.setenv("MUX_INSTANCE", "i1")
    assert inspect(fp, stdout) == egress.Relay(egress.relay_name(18080), *expected)


def test_no_relay_and_an_impostor(fp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MUX_INSTANCE", "i1")
    assert inspect(fp, "", returncode=1) is None
    for label in ("", "mux-egress-i2"):  # no label, another instance's network
        with pytest.raises(DockerError, match="exists but is not mux's egress relay"):
            inspect(fp, f'true {label} ["18080","172.30.0.1","18080"]\n')
