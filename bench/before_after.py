"""Benchmark: this checkout's mux against an earlier commit's, in the same run (issue 21's
"behaviour and speed unchanged" check for a reshape).

    python bench/before_after.py [REV]     REV defaults to $MUX_BENCH_BEFORE, else 2cb0e76
                                           (main before the layout round)

The earlier commit is exported with `git archive` into a temporary directory; both trees
run as users run mux (`python -m mux`), each with its own PYTHONPATH, interleaved, against
the same engine, config and sandbox. The cases: `mux --help`, `mux list` (empty),
`mux new --dry-run x`, and `mux new` + `mux delete --force` (busybox). Every printed
command of `--dry-run` is compared too: a reshape must print the same bytes.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BUSYBOX, ROOT, Sandbox, interleave, ratio, require_images, runs, summary, table  # noqa: E402

BEFORE = "2cb0e76"


def export(rev: str, dest: Path) -> Path:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "mux"],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest)  # our own commit, and Debian 12's 3.11.2 has no extraction filters
    return dest


def main(rev: str) -> str:
    require_images(BUSYBOX)
    old_tree = export(rev, Path(tempfile.mkdtemp(prefix="mux-bench-before-")))
    box = Sandbox()
    envs = {"before": {**box.env, "PYTHONPATH": str(old_tree)}, "after": {**box.env, "PYTHONPATH": str(ROOT)}}
    mux = [sys.executable, "-m", "mux"]
    counter = iter(range(100_000))

    def timed(which: str, *args: str) -> float:
        import time
        start = time.perf_counter()
        proc = subprocess.run([*mux, *args], env=envs[which], cwd=box.work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench: ({which}) mux {' '.join(args)} failed:\n{proc.stderr}")
        return time.perf_counter() - start

    def new_delete(which: str) -> float:
        name = f"ba{next(counter)}"
        return timed(which, "new", name) + timed(which, "delete", "--force", name)

    dry = {w: subprocess.run([*mux, "new", "--dry-run", "same"], env=envs[w], cwd=box.work,
                             capture_output=True, text=True).stdout for w in envs}
    cases = {}
    for w in envs:
        cases[f"{w}: --help"] = lambda w=w: timed(w, "--help")
        cases[f"{w}: list"] = lambda w=w: timed(w, "list")
        cases[f"{w}: new --dry-run"] = lambda w=w: timed(w, "new", "--dry-run", "x")
        cases[f"{w}: new + delete"] = lambda w=w: new_delete(w)
    try:
        t = interleave(cases, runs(10))
    finally:
        for w in envs:
            subprocess.run([*mux, "delete", "--all", "--force"], env=envs[w], cwd=box.work, capture_output=True)
        box.close()
    rows = [[f"`mux {case}`", summary(t[f"before: {case}"]), summary(t[f"after: {case}"]),
             ratio(t[f"after: {case}"], t[f"before: {case}"])]
            for case in ("--help", "list", "new --dry-run", "new + delete")]
    import re  # the two runs may fall in different seconds: the creation time is not the layout's

    dry = {w: re.sub(r"mux\.created=\S+", "mux.created=T", text) for w, text in dry.items()}
    same = "identical" if dry["before"] == dry["after"] else "DIFFERENT"
    n = len(t["after: --help"])
    return (f"### Before ({rev}) and after the layout change ({n} runs each, interleaved)\n\n"
            + table(["command", f"before ({rev})", "after", "after / before"], rows)
            + f"\n\n`mux new --dry-run` output: {same} ({len(dry['after'].splitlines())} lines)."
            + f" Load average at the end: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MUX_BENCH_BEFORE", BEFORE)))
