"""Benchmark: what `mux new`'s "did the command start?" check costs.

`docker run -d` returns once the container's init runs; the session's command is
exec'd a moment later and may fail (`mux new NAME -- nosuchcmd`). mux asks
`docker top` (mux/session/startcheck.py) until the command runs or the container
stopped. This times that check against the `docker run -d` it follows, in the
same runs, on a fresh container each time.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import BUSYBOX, docker, require_images, runs, summary, table  # noqa: E402

from mux.engine.runner import Runner  # noqa: E402
from mux.session.startcheck import wait_started  # noqa: E402

LABEL = "mux.bench=startcheck"


def main() -> str:
    require_images(BUSYBOX)
    runner = Runner()
    started: list[float] = []
    checks: list[float] = []
    failed: list[float] = []
    try:
        for i in range(runs(10)):
            t0 = time.perf_counter()
            cid = docker("run", "-d", "-it", "--init", "--pull", "never", "--label", LABEL, BUSYBOX,
                         "sh").stdout.strip()
            t1 = time.perf_counter()
            assert wait_started(runner, cid).running
            t2 = time.perf_counter()
            started.append(t1 - t0)
            checks.append(t2 - t1)
            bad = docker("run", "-d", "-it", "--init", "--pull", "never", "--label", LABEL, BUSYBOX,
                         f"nosuchcmd{i}").stdout.strip()
            t3 = time.perf_counter()
            assert wait_started(runner, bad).cannot_start
            failed.append(time.perf_counter() - t3)
    finally:
        ids = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
        if ids:
            docker("rm", "-f", *ids, check=False)
    share = statistics.median(checks) / statistics.median(started)
    return f"### Start check after `docker run -d` (busybox, {len(started)} runs)\n\n" + table(
        ["", "median (min–max)", "vs docker run"],
        [["`docker run -d … sh`", summary(started), "1.00×"],
         ["check, command started (one `docker top`)", summary(checks), f"+{share:.0%}"],
         ["check, command cannot start (top, inspect, logs)", summary(failed), ""]],
    )


if __name__ == "__main__":
    print(main())
