"""Benchmark: mux as users run it. A fresh `make install` of this checkout (a
clean copy, its own .venv, `mux` linked into a scratch bin dir), then the
installed console script against the same interpreter's `python -c "import
click"` and the raw docker commands, interleaved, in one run.

Goals (issue 11): `mux --version` <= 1.3x the click floor; `mux new` + `mux
delete --force` <= 1.35x the printed `docker run` + `docker rm -f`; `mux list`
<= 1.2x the click floor plus the same `docker ps`. mux's command line skips
Python's final garbage collections (mux.cli.main), which the floor pays; rows
against a floor that skips them too show mux's own work like for like.

PYTHON picks the interpreter `make install` builds the venv from (default
python3; a stock Debian user has /usr/bin/python3). MUX_BENCH_VENV reuses an
installed venv instead of a fresh install.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BUSYBOX, Sandbox, checkout_copy, interleave, ms, ratio, require_images, runs, summary, table  # noqa: E402

GOALS = {"version": 1.30, "new": 1.35, "list": 1.20}


def fresh_install(work: Path) -> tuple[Path, float]:
    """`make install` of a clean copy of this checkout; its venv and how long it took."""
    src = checkout_copy(work / "mux")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MUX_BIN_DIR"] = str(work / "bin")
    start = time.perf_counter()
    proc = subprocess.run(["make", "install", f"PYTHON={os.environ.get('PYTHON', 'python3')}"],
                          cwd=src, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: make install failed:\n{proc.stdout}{proc.stderr}")
    return src / ".venv", took


def main() -> str:
    require_images(BUSYBOX)
    work = Path(tempfile.mkdtemp(prefix="mux-bench-install-"))
    box = Sandbox()
    box.env.pop("PYTHONPATH", None)  # the installed mux finds its own code
    try:
        if os.environ.get("MUX_BENCH_VENV"):
            venv, took = Path(os.environ["MUX_BENCH_VENV"]), None
        else:
            venv, took = fresh_install(work)
        mux = [str(venv / "bin" / "mux")]
        python = str(venv / "bin" / "python")
        script = Path(mux[0]).read_text()
        assert "from mux.cli import main" in script and "pkg_resources" not in script, script
        version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0], sys.base_prefix)"],
                                 capture_output=True, text=True, check=True).stdout.split()
        floor = [python, "-c", "import click"]
        # The same floor ending as mux's command line does (mux.cli.main: gc.freeze()
        # before exit, no final garbage collections): mux's own work, like for like.
        frozen = [python, "-c", "import click, gc; gc.freeze()"]
        def first_call(*args: str) -> list[str]:
            """The first command mux runs for ``args``, as `-v` prints it (`+ docker ...`)."""
            return shlex.split(box.run([*mux, "-v", *args]).stderr.splitlines()[0][2:])

        ps = first_call("list")  # the call list makes
        counter = iter(range(10_000))
        cpu: dict[str, list[float]] = {}

        def timed(case: str, *commands: list[str]) -> float:
            """Wall time of ``commands`` run one after the other; their CPU time (user +
            system, which a busy machine inflates far less) is kept in ``cpu``."""
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = sum(box.timed(c) for c in commands)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.setdefault(case, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            return wall

        def new_delete() -> float:
            name = f"bi{next(counter)}"
            return timed("new", [*mux, "new", name], [*mux, "delete", "--force", name])

        def raw_new_delete() -> float:
            """What mux prints for this very session, timed: the run, and docker's own rm."""
            name = f"br{next(counter)}"
            elapsed = timed("raw", box.printed_run(name, mux), ["docker", "rm", "-f", f"mux-{name}"])
            shutil.rmtree(box.session_dir(name), ignore_errors=True)
            return elapsed

        def checked_new_delete() -> float:
            """mux's floor: the docker commands mux runs for new + delete --force (the run,
            its start check `docker top`, delete's lookup `docker ps`, the rm) and two
            interpreter + Click start-ups, without mux's own work."""
            name = f"bf{next(counter)}"
            lookup = [a.replace("=listed", f"={name}") for a in delete_ps]
            elapsed = timed("floor-new", floor, box.printed_run(name, mux), ["docker", "top", f"mux-{name}"],
                            floor, lookup, ["docker", "rm", "-f", f"mux-{name}"])
            shutil.rmtree(box.session_dir(name), ignore_errors=True)
            return elapsed

        box.run([*mux, "new", "listed"])  # one session for list to show
        # delete's lookup, as mux runs it (its first command with -v, on a dry run)
        delete_ps = first_call("delete", "--dry-run", "--force", "listed")
        t = interleave({
            "floor": lambda: timed("floor", floor),
            "version": lambda: timed("version", [*mux, "--version"]),
            "help": lambda: timed("help", [*mux, "--help"]),
            "list": lambda: timed("list", [*mux, "list"]),
            "floor+ps": lambda: timed("floor+ps", floor, ps),
            "frozen": lambda: timed("frozen", frozen),
            "frozen+ps": lambda: timed("frozen+ps", frozen, ps),
            "new": new_delete,
            "raw": raw_new_delete,
            "floor-new": checked_new_delete,
        }, runs(10))
        cpu = {k: v[-len(t[k]):] for k, v in cpu.items()}  # the timed rounds, not the warm-up
        # `mux list` timed what its row says: one session, no leftovers of the other cases
        shown = [s["name"] for s in json.loads(box.run([*mux, "list", "--json"]).stdout)]
        assert shown == ["listed"], f"bench: mux list showed {shown}, not just the one session"
    finally:
        box.run([*mux, "delete", "--all", "--force"], check=False)
        box.close()
        shutil.rmtree(work, ignore_errors=True)

    def goal(kind: str, base: str) -> str:
        wall = statistics.median(t[kind]) / statistics.median(t[base])  # as ratio() computes it
        used = statistics.median(cpu[kind]) / statistics.median(cpu[base])
        return (f"≤ {GOALS[kind]:.2f}×: wall {'met' if wall <= GOALS[kind] else 'MISSED'}, "
                f"CPU {'met' if used <= GOALS[kind] else 'MISSED'}")

    def row(what: str, kind: str, base: str, aim: str) -> list[str]:
        return [what, summary(t[kind]), summary(t[base]), ratio(t[kind], t[base]),
                f"{ms(statistics.median(cpu[kind]))} / {ms(statistics.median(cpu[base]))} = "
                f"{ratio(cpu[kind], cpu[base])}", aim]

    n = len(t["floor"])
    head = (f"### The installed `mux` script after a fresh `make install` (Python {version[0]} from "
            f"{version[1]}{'' if took is None else f', install took {ms(took)}'}; {n} runs each, interleaved; "
            "CPU is user + system time of the client processes, mux's and docker's, not dockerd's)")
    return head + "\n\n" + table(
        ["what", "mux, wall", "baseline, wall", "ratio", "CPU (user+sys) mux / baseline", "goal"],
        [row("`mux --version` vs `python -c \"import click\"`", "version", "floor", goal("version", "floor")),
         row("`mux --help` vs the same floor", "help", "floor", "–"),
         row("`mux list` (1 session) vs the floor + the same `docker ps`", "list", "floor+ps",
             goal("list", "floor+ps")),
         row("like for like, mux's own work: `mux --version` vs a floor that ends as mux does "
             "(`import click, gc; gc.freeze()`)", "version", "frozen", "–"),
         row("`mux list` vs that floor + the same `docker ps`", "list", "frozen+ps", "–"),
         row("`mux new` + `mux delete --force` vs the printed `docker run -d` + `docker rm -f`", "new", "raw",
             goal("new", "raw")),
         row("the same, vs its floor: those two, mux's `docker top` and `docker ps`, and two "
             "`python -c \"import click\"`", "new", "floor-new", "– (mux's own work)")],
    )


if __name__ == "__main__":
    print(main())
