"""The error every repository operation raises (exit status 1, like MuxError)."""

from __future__ import annotations

from mux.errors import MuxError


class RepoError(MuxError):
    """A clone, inspection or removal of a session's repository failed."""


class RepoInterrupted(RepoError):
    """Ctrl-C (or SIGTERM) during a clone: cleaned up, then exit 130 like any interrupt."""

    exit_code = 130
