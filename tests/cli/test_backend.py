"""`mux new --backend docker|podman`: the engine kind the session must run on, checked
against this command's engine before anything is made."""

from __future__ import annotations

import pytest

from mux.engine.runner import quote
from tests.cli.muxcli import Home, run, run_argv


@pytest.mark.parametrize(("cli", "backend", "engine"), [
    pytest.param(None, "podman", "docker", id="podman-on-docker"),
    pytest.param("podman", "docker", "podman", id="docker-on-podman"),
])
def test_another_backend_than_the_engine_is_refused(home: Home, fp, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                    cli: str | None, backend: str, engine: str) -> None:
    if cli:
        monkeypatch.setenv("MUX_DOCKER_CLI", cli)
    else:
        monkeypatch.delenv("MUX_DOCKER_CLI", raising=False)
    result = run("new", "--backend", backend, "s1")
    assert result.code == 2, result
    assert result.err.splitlines()[0].startswith(f"mux: error: --backend {backend}: this command's engine is {engine} ")
    assert f"MUX_DOCKER_CLI={backend}" in result.err
    assert list(fp.calls) == [] and not home.session_dir("s1").exists()


def test_the_engine_s_own_backend_changes_nothing(home: Home, fp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("MUX_DOCKER_CLI", raising=False)
    result = run("new", "--backend", "docker", "--dry-run", "s1")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == quote(run_argv(home))
