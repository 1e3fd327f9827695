"""Benchmark: `mux tui` with 50 sessions. One refresh (the worker's docker calls, then
the table redrawn on the UI thread), and the time from `mux tui` starting to the
table on screen, against `mux list` and the raw `docker ps` in the same run.

The 50 sessions are `docker create`d busybox containers with mux's labels (as in
list_sessions.py), in the bench's own instance; removed after. The start time is
read in a real terminal: tmux runs `mux tui`, and capture-pane is polled until the
last session's row shows.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BUSYBOX, MUX, Sandbox, docker, interleave, ratio, require_images, runs, summary, table  # noqa: E402
from list_sessions import make  # noqa: E402

COUNT = 50


def in_sandbox(box: Sandbox) -> None:
    for key in ("MUX_DATA_DIR", "MUX_CONFIG", "MUX_INSTANCE"):
        os.environ[key] = box.env[key]


def refresh_times(n: int) -> tuple[list[float], dict[str, list[float]]]:
    """(one snapshot: the docker calls a refresh makes; one redraw of the table with one
    session changed; one with a session more, so the table is rebuilt), n each."""
    from mux.cli import State
    from mux.tui import data
    from mux.tui.app import MuxTui

    state = State()
    engines = state.engines()
    snaps: list[float] = []
    draws: dict[str, list[float]] = {"one": [], "all": [], "one-cpu": [], "all-cpu": []}
    for _ in range(n):
        start = time.perf_counter()
        snap = data.snapshot(engines, engines[0])
        snaps.append(time.perf_counter() - start)
        assert len(snap.rows) == COUNT, len(snap.rows)
    app = MuxTui(state, engines, engines[0])

    async def drive() -> None:
        async with app.run_test(size=(160, 60)) as pilot:
            await pilot.pause(0.5)
            app.table.show(snap.rows)
            await pilot.pause()
            for i in range(n):
                # a session came or went: the table is rebuilt
                start, cpu = time.perf_counter(), time.process_time()
                app.table.show(snap.rows[:-1])
                await pilot.pause()  # the repaint
                draws["all"].append(time.perf_counter() - start)
                draws["all-cpu"].append(time.process_time() - cpu)
                app.table.show(snap.rows)
                await pilot.pause()
                # a session's state changed: only its cell is updated
                rows = list(snap.rows)
                rows[7] = rows[7]._replace(cells=(rows[7].cells[0], f"state {i}", *rows[7].cells[2:]))
                start, cpu = time.perf_counter(), time.process_time()
                app.table.show(rows)
                await pilot.pause()
                draws["one"].append(time.perf_counter() - start)
                draws["one-cpu"].append(time.process_time() - cpu)

    app.refresh_sessions = lambda: None  # type: ignore[method-assign]  # only the redraws measured here
    asyncio.run(drive())
    return snaps, draws


def tui_start(box: Sandbox, last: str) -> float:
    """Seconds from starting `mux tui` in a 160x60 tmux pane to the last row on screen."""
    socket = f"mux-bench-{uuid.uuid4().hex[:6]}"
    tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
    script = box.dir / "tui.sh"
    env = "".join(f"export {k}={shlex.quote(box.env[k])}\n" for k in ("MUX_DATA_DIR", "MUX_CONFIG", "MUX_INSTANCE",
                                                                      "PYTHONPATH"))
    script.write_text(env + "sleep 0.5\n" + f"exec {shlex.join(MUX)} tui\n")
    subprocess.run([*tmux, "new-session", "-d", "-x", "160", "-y", "60", "-s", "b", f"bash --norc {script}"],
                   check=True)
    try:
        time.sleep(0.5)  # the pane's shell waits this long before it execs mux
        start = time.perf_counter()
        deadline = start + 30
        while time.perf_counter() < deadline:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True).stdout
            if f" {last} " in screen:
                return time.perf_counter() - start
            time.sleep(0.01)
        raise SystemExit("bench: the TUI did not show the sessions within 30 s")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def main() -> str:
    require_images(BUSYBOX)
    box = Sandbox()
    in_sandbox(box)
    tag = uuid.uuid4().hex[:6]
    names = [f"tu{tag}-{i:02d}" for i in range(COUNT)]
    from mux.engine import argv as A
    from mux.session.sessions import PS_FORMAT

    raw = ["docker", *A.ps_argv(PS_FORMAT, instance=box.instance)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: make(n, box.instance), names))
        snaps, draws = refresh_times(runs(10))
        t = interleave({
            "list": lambda: box.timed([*MUX, "list"]),
            "docker": lambda: box.timed(raw),
        }, runs(10))
        starts = [tui_start(box, names[-1]) for _ in range(runs(5))]
    finally:
        for i in range(0, len(names), 50):
            docker("rm", "-f", *[f"mux-{n}" for n in names[i:i + 50]], check=False)
        box.close()
    head = f"### `mux tui` with {COUNT} sessions ({runs(10)} runs each; start: {runs(5)} runs in tmux)"
    rows = [
        ["one refresh, worker thread (`docker ps` for sessions and for ports, in parallel)", summary(snaps), ""],
        ["one refresh, UI side: a state changed (its cell updated, repainted)", summary(draws["one"]),
         summary(draws["one-cpu"])],
        ["one refresh, UI side: a session came or went (table rebuilt, repainted)", summary(draws["all"]),
         summary(draws["all-cpu"])],
        ["`docker ps -a …` as `mux list` runs it", summary(t["docker"]), ""],
        ["`mux list` (whole process)", summary(t["list"]), ""],
        ["`mux tui` start, until the 50th row is on screen", summary(starts), ""],
    ]
    load = os.getloadavg()[0]
    head += f" (load average {load:.1f} on {os.cpu_count()} CPUs)"
    return (head + "\n\n" + table(["what", "wall time", "CPU time"], rows)
            + f"\n\n`mux tui` start / `mux list`: {ratio(starts, t['list'])}")


if __name__ == "__main__":
    print(main())
