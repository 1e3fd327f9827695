"""One error hierarchy; each class carries the exit code the CLI returns for it."""

from __future__ import annotations

from collections.abc import Sequence


class MuxError(Exception):
    """A failure to report to the user as one line (plus an optional hint)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(MuxError):
    """Bad configuration file, value or command-line usage."""

    exit_code = 2


class SessionNotFound(MuxError):
    exit_code = 3

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no session named {name!r}", hint="`mux list` shows the sessions that exist"
        )
        self.name = name


class DockerError(MuxError):
    """A docker command failed, or docker could not be run at all."""

    exit_code = 4

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        argv: Sequence[str] = (),
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


class ProxyError(MuxError):
    exit_code = 5
