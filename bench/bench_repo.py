#!/usr/bin/env python3
"""Benchmark: mux.workspace.repo.clone (first and cached second clone) against plain `git clone`.

Makes a bare repository locally (a few thousand source-like files, a few
hundred commits, written with `git fast-import`), serves it over loopback
smart HTTP (`git http-backend`, tests/integration/git_http.py), and times,
interleaved in each run:

  plain   git clone URL DEST
  first   mux.workspace.repo.clone with an empty cache (fetches the mirror, then clones)
  second  mux.workspace.repo.clone again (mirror refreshed by fetch, clone --reference)

Prints the median and spread (min-max) of wall time and server bytes, and
each mux variant's ratio to plain git in the same run.

    python bench/bench_repo.py [--runs 7] [--files 3000] [--commits 300]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mux.workspace.repo import clone  # noqa: E402
from tests.integration.git_http import GitHTTPServer  # noqa: E402

WORDS = ("self value result error config path item index count name data state "
         "return if else for while def class import from with as try except").split()


def source_file(rng: random.Random, lines: int) -> str:
    return "".join(
        "    " * rng.randint(0, 3) + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))) + "\n"
        for _ in range(lines)
    )


def fast_import_stream(files: int, commits: int, seed: int = 1) -> bytes:
    """All files in the first commit, then commits that each edit a handful."""
    rng = random.Random(seed)
    names = [f"src/pkg{i % 40:02}/mod{i:04}.py" for i in range(files)]
    out: list[bytes] = []

    def blob(path: str, text: str) -> None:
        data = text.encode()
        out.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")

    for n in range(commits):
        msg = f"commit {n}".encode()
        when = 1_700_000_000 + n * 600
        out.append(b"commit refs/heads/main\n")
        out.append(f"committer Bench <bench@example.com> {when} +0000\n".encode())
        out.append(f"data {len(msg)}\n".encode() + msg + b"\n")
        # No "from": fast-import continues the branch from its previous commit.
        for path in names if n == 0 else rng.sample(names, 12):
            blob(path, source_file(rng, rng.randint(20, 120)))
    return b"".join(out)


def make_repo(bare: Path, files: int, commits: int) -> None:
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)], check=True)
    subprocess.run(["git", "-C", str(bare), "fast-import", "--quiet"],
                   input=fast_import_stream(files, commits), check=True)
    subprocess.run(["git", "-C", str(bare), "gc", "--quiet"], check=True)  # as a server would be


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(values: list[float], unit: str, scale: float = 1.0) -> str:
    v = [x * scale for x in values]
    return f"median {statistics.median(v):8.1f} {unit}  (min {min(v):.1f}, max {max(v):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--commits", type=int, default=300)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mux-bench-repo-"))
    gitconfig = work / "gitconfig"
    gitconfig.write_text("")  # both sides run with the same (empty) user config
    os.environ.update(GIT_CONFIG_GLOBAL=str(gitconfig), GIT_CONFIG_NOSYSTEM="1")
    try:
        (work / "srv").mkdir()
        t = timed(lambda: make_repo(work / "srv/project.git", args.files, args.commits))
        size = sum(p.stat().st_size for p in (work / "srv/project.git").rglob("*") if p.is_file())
        version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1]
        print(f"repo: {args.files} files, {args.commits} commits, {size / 2**20:.1f} MiB packed "
              f"(made in {t:.1f} s); git {version}")
        times: dict[str, list[float]] = {"plain": [], "first": [], "second": []}
        sent: dict[str, list[float]] = {k: [] for k in times}
        with GitHTTPServer(work / "srv") as srv:
            url = f"{srv.url}/project.git"
            for run in range(args.runs):
                os.environ["MUX_DATA_DIR"] = str(work / f"data{run}")  # a cold cache per run

                def plain(run: int = run) -> None:
                    subprocess.run(["git", "clone", "--quiet", url, str(work / f"plain{run}")], check=True)

                steps = [
                    ("plain", plain),
                    ("first", lambda run=run: clone(url, work / f"first{run}", None, progress=False)),
                    ("second", lambda run=run: clone(url, work / f"second{run}", None, progress=False)),
                ]
                # Alternate whether plain git goes before or after the mux pair.
                order = steps if run % 2 == 0 else steps[1:] + steps[:1]
                for name, fn in order:
                    before = srv.bytes_sent()
                    times[name].append(timed(fn))
                    sent[name].append(srv.bytes_sent() - before)
                for name in ("plain", "first", "second"):
                    shutil.rmtree(work / f"{name}{run}")
                shutil.rmtree(work / f"data{run}")
        print(f"{args.runs} runs, interleaved; wall time and bytes sent by the server per clone")
        for name in times:
            print(f"  {name:6}  {summary(times[name], 'ms', 1000)}   "
                  f"server {summary(sent[name], 'KiB', 1 / 1024)}")
        for name in ("first", "second"):
            ratios = [m / p for m, p in zip(times[name], times["plain"])]
            print(f"  {name} / plain (same run): median {statistics.median(ratios):.2f}x "
                  f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
