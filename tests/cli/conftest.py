"""Fixtures for the CLI tests (defined in muxcli.py, next to the helpers they use)."""

from tests.cli.muxcli import execs, home  # noqa: F401
