"""Reading `docker top` right after `docker run -d`: has tini exec'd the command yet?"""

from __future__ import annotations

import pytest

from mux.session.startcheck import command_started

HEADER = "UID  PID   PPID  C  STIME  TTY  TIME      CMD"
INIT = "root 4121  4101  0  08:33  ?    00:00:00  /sbin/docker-init -- nosuchcmd"
CHILD = "root 4140  4121  0  08:33  ?    00:00:00  nosuchcmd"


@pytest.mark.parametrize("output, expected", [
    (f"{HEADER}\n{INIT}\n", False),  # only tini (or its child before exec): not yet
    (f"{HEADER}\n{INIT}\n{CHILD}\n", True),  # the command runs
    (f"{HEADER}\n", False),  # no process left: it ended while top looked, so ask again
    ("", None),  # nothing readable
    ("garbage\nmore garbage\n", None),
], ids=["init-only", "started", "ended-meanwhile", "empty", "unreadable"])
def test_command_started(output: str, expected: bool | None) -> None:
    assert command_started(output) is expected
