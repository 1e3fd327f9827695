"""What a failed engine command means, in one line and a hint: docker's (and podman's,
mapped to docker's by mux/engine/clis.py) stderr read back as a :class:`DockerError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mux.engine import clis
from mux.errors import DockerError

if TYPE_CHECKING:
    from mux.engine.choice import Engine

PERMISSION_HINT = (
    "add your user to the docker group: `sudo usermod -aG docker $USER`, "
    "then log out and back in (or run `newgrp docker`)"
)
ENGINE_HINT = "is Docker running? `docker info` shows whether the engine answers"



def docker_failure(argv: list[str], returncode: int, stderr: str, engine: Engine | None = None) -> DockerError:
    """Turn a failed engine command (``argv`` as it ran, through ``engine``: the default's
    when None) into an error with a useful message and hint."""
    text = stderr.strip()
    lowered = text.lower()
    detail = last_line(text) or f"exit status {returncode}"
    base = len(engine.base) if engine is not None else 1
    what = " ".join(argv[:1] + argv[base:base + 1])  # the CLI and the verb, not the engine
    if clis.socket_denied(lowered):
        return DockerError(
            "permission denied on the Docker socket", hint=PERMISSION_HINT,
            argv=argv, returncode=returncode, stderr=stderr,
        )
    if clis.not_answering(lowered):
        return DockerError(
            "the Docker engine is not answering", hint=ENGINE_HINT,
            argv=argv, returncode=returncode, stderr=stderr,
        )
    if engine is not None and engine.kind == clis.PODMAN:
        return DockerError(f"{what} failed: {detail}", hint=clis.failure_hint(text), argv=argv,
                           returncode=returncode, stderr=stderr)
    return DockerError(f"{what} failed: {detail}", argv=argv, returncode=returncode, stderr=stderr)


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(clis.USAGE_LINES)]
    if not lines:
        return ""
    line = lines[-1]
    for prefix in clis.PREFIXES:
        if line.startswith(prefix):
            line = line[len(prefix):]
    return line
