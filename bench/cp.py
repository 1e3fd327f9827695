"""Benchmark: `mux cp`, which reads and writes docker's tar stream itself
(mux/session/safetar.py), against plain `docker cp`, both ways, in the same runs.

Two trees in a busybox container: many small files (2,000 × 50 KB in 20
directories) and one large file (200 MB). Out: `docker cp ID:PATH DEST` vs
mux's copy_out (`docker cp ID:PATH -`, checked, extracted here, moved into
place). In: `docker cp SRC ID:DIR` vs mux's copy_in (walked and packed here,
`docker cp - ID:DIR`).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import BUSYBOX, docker, interleave, ratio, require_images, runs, summary, table  # noqa: E402

from mux.engine.runner import Runner  # noqa: E402
from mux.session import cp, safetar  # noqa: E402

LABEL = "mux.bench=cp"
TREES = [
    ("2,000 × 50 KB", "/t/many", "mkdir -p /t/many && i=0; while [ $i -lt 2000 ]; do mkdir -p /t/many/d$((i/100)); "
                                 "head -c 50000 /dev/urandom > /t/many/d$((i/100))/f$i; i=$((i+1)); done"),
    ("1 × 200 MB", "/t/big", "mkdir -p /t/big && head -c 200000000 /dev/urandom > /t/big/blob"),
]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def fresh(d: Path) -> Path:
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    return d


def measure(runner: Runner, cid: str, work: Path, what: str, path: str) -> list[list[str]]:
    def docker_out() -> float:
        d = fresh(work / "docker")
        return timed(lambda: docker("cp", f"{cid}:{path}", str(d)))

    def mux_out() -> float:
        d = fresh(work / "mux")
        return timed(lambda: cp.copy_out(runner, f"{cid}:{path}", str(d), limit=0,
                                          refusals=safetar.Refusals(), what=path))

    out = interleave({"docker": docker_out, "mux": mux_out}, runs(5))
    kept = work / "source"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.move(str(work / "docker" / Path(path).name), kept)

    def docker_in() -> float:
        docker("exec", cid, "sh", "-c", "rm -rf /in && mkdir /in")
        return timed(lambda: docker("cp", str(kept), f"{cid}:/in"))

    def mux_in() -> float:
        docker("exec", cid, "sh", "-c", "rm -rf /in && mkdir /in")
        return timed(lambda: cp.copy_in(runner, cid, "/in", str(kept), limit=0,
                                        refusals=safetar.Refusals(), what=str(kept)))

    into = interleave({"docker": docker_in, "mux": mux_in}, runs(5))
    return [[f"out, {what}", summary(out["docker"]), summary(out["mux"]), ratio(out["mux"], out["docker"])],
            [f"in, {what}", summary(into["docker"]), summary(into["mux"]), ratio(into["mux"], into["docker"])]]


def main() -> str:
    require_images(BUSYBOX)
    runner = Runner()
    work = Path(tempfile.mkdtemp(prefix="mux-bench-cp-"))
    cid = docker("run", "-d", "--label", LABEL, "--pull", "never", BUSYBOX, "sleep", "3600").stdout.strip()
    rows = []
    try:
        for what, path, script in TREES:
            docker("exec", cid, "sh", "-c", script)
            rows += measure(runner, cid, work, what, path)
    finally:
        docker("rm", "-f", cid, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return f"### `mux cp` vs `docker cp` ({runs(5)} runs each, interleaved)\n\n" + table(
        ["", "docker cp", "mux cp", "mux / docker"], rows)


if __name__ == "__main__":
    print(main())
