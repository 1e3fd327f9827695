"""How a failed docker command is worded (pure: stderr text in, error out)."""

from __future__ import annotations

import pytest

from mux.engine.failures import docker_failure
from mux.engine.runner import quote
from mux.errors import DockerError

SOCK_DENIED = (
    "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: "
    'Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/containers/json?all=1": dial unix /var/run/docker.sock: '
    "connect: permission denied\n"
)
NO_ENGINE = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"


@pytest.mark.parametrize(("stderr", "message", "hint"), [
    pytest.param("Got " + SOCK_DENIED, "permission denied on the Docker socket", "usermod -aG docker",
                 id="permission-got"),
    pytest.param("docker: " + SOCK_DENIED + "See 'docker run --help'.\n", "permission denied on the Docker socket",
                 "newgrp docker", id="permission-run"),
    pytest.param(NO_ENGINE, "the Docker engine is not answering", "docker info", id="no-engine"),
    pytest.param("Error response from daemon: No such container: mux-x\n",
                 "docker start failed: No such container: mux-x", None, id="plain-prefix-stripped"),
    pytest.param("docker: Error response from daemon: invalid reference format.\nSee 'docker run --help'.\n",
                 "docker start failed: invalid reference format.", None, id="see-help-dropped"),
    pytest.param("", "docker start failed: exit status 125", None, id="no-stderr"),
])
def test_docker_failure(stderr: str, message: str, hint: str | None) -> None:
    err = docker_failure(["docker", "start", "mux-x"], 125, stderr)
    assert isinstance(err, DockerError) and err.exit_code == 4
    assert err.message == message
    assert (err.hint is None) if hint is None else (hint in (err.hint or ""))
    assert err.stderr == stderr and err.argv == ["docker", "start", "mux-x"] and err.returncode == 125


def test_permission_error_unrelated_to_docker_is_not_a_socket_problem() -> None:
    err = docker_failure(["docker", "run"], 126, "docker: Error response from daemon: failed to create shim: "
                         "exec: \"/app\": permission denied: unknown.\n")
    assert err.hint is None
    assert err.message.startswith("docker run failed: ")


def test_quote() -> None:
    assert quote(["docker", "run", "a b", "it's", "", "$HOME"]) == "docker run 'a b' 'it'\"'\"'s' '' '$HOME'"
