"""Benchmark: `mux delete NAME` of a stopped, clean --repo session (the unsaved-work
guard included), against `docker rm` + `rm -rf` of the same, in the same run.

With ``--before CHECKOUT`` the same delete is timed with that checkout's mux too
(e.g. /work/main, host git in the clone) interleaved with this one's (the git box,
a throwaway container), so the ratio compares the two guards on one busy machine.
``--all N``: time `mux delete --all` of N such sessions instead of one.

    python bench/delete_repo.py [--before /path/to/other/checkout] [--all 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEBIAN, ROOT, Sandbox, interleave, ratio, require_images, runs, summary, table  # noqa: E402


def origin(where: Path) -> Path:
    seed = where / "seed"
    seed.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "B", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "B", "GIT_COMMITTER_EMAIL": "b@example.com"}
    for argv in (["git", "init", "-q", "-b", "main"], ["sh", "-c", "for i in $(seq 200); do echo $i > f$i; done"],
                 ["git", "add", "-A"], ["git", "commit", "-qm", "seed"]):
        subprocess.run(argv, cwd=seed, check=True, env=env, capture_output=True)
    bare = where / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(bare)], check=True)
    return bare


def main() -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, help="another checkout of mux to compare with")
    ap.add_argument("--all", type=int, default=0, help="delete --all of this many sessions")
    args = ap.parse_args()
    require_images(DEBIAN)
    box = Sandbox(f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n')
    work = Path(tempfile.mkdtemp(prefix="mux-bench-del-"))
    repo = origin(work)
    counter = iter(range(10_000))
    count = max(args.all, 1)

    def make() -> list[str]:
        names = [f"bd{next(counter)}" for _ in range(count)]
        for name in names:
            box.mux("new", "--repo", str(repo), name)
            box.mux("stop", name)
        return names

    def delete_with(checkout: Path) -> float:
        names = make()
        env = {**box.env, "PYTHONPATH": str(checkout)}
        argv = [sys.executable, "-m", "mux", "delete", *(["--all"] if args.all else names)]
        import time

        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv)} failed:\n{done.stderr}")
        return elapsed

    def raw() -> float:
        names = make()
        ids = [f"mux-{n}" for n in names]
        import time

        start = time.perf_counter()
        subprocess.run(["docker", "rm", *ids], check=True, capture_output=True)
        for name in names:
            shutil.rmtree(box.session_dir(name))
        return time.perf_counter() - start

    cases = {"this": lambda: delete_with(ROOT), "raw": raw}
    if args.before:
        cases["before"] = lambda: delete_with(args.before.resolve())
    try:
        t = interleave(cases, runs(7))
    finally:
        box.mux("delete", "--all", "--force", check=False)
        box.close()
        shutil.rmtree(work, ignore_errors=True)
    what = f"`mux delete --all` of {count}" if args.all else "`mux delete NAME`"
    rows = [[f"{what} (this checkout)", summary(t["this"]), ratio(t["this"], t["raw"])]]
    if args.before:
        rows.append([f"{what} ({args.before})", summary(t["before"]), ratio(t["before"], t["raw"])])
        import statistics

        paired = sorted(a / b for a, b in zip(t["this"], t["before"]))
        rows.append(["this / before (ratio of medians; median of same-round ratios, min–max)",
                     f"{statistics.median(paired):.2f}× ({paired[0]:.2f}–{paired[-1]:.2f})",
                     ratio(t["this"], t["before"])])
    rows.append(["`docker rm` + `rm -rf` of the same", summary(t["raw"]), "1.00×"])
    n = len(t["this"])
    return (f"### Delete of stopped, clean --repo sessions (debian, {n} runs each, interleaved)\n\n"
            + table(["", "median (min–max)", "ratio to raw"], rows))


if __name__ == "__main__":
    print(main())
