"""Benchmark 4: the shared compiler cache. A generated std-only Cargo workspace
(bench/gen_crate.py) is built in a fresh mux session with an empty sccache dir,
then in a second fresh session of the same workdir, which shares it (the default
``[docker.rust] cache_scope = "repo"``: sessions of one repository); for reference, the same build
by a plain `docker run` without sccache, with the same `CARGO_INCREMENTAL=0` mux
sets for sccache (so the only difference is the cache). Each round starts from
an empty cache; hit rates add up every round.

No Rust image can be pulled here, so the host's toolchain (`rustc --print
sysroot`, which holds cargo too) is mounted read-only into mux-test/debian.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEBIAN, Sandbox, ms, require_images, runs, table  # noqa: E402
from gen_crate import generate  # noqa: E402

PATH = "/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TARGET = "/tmp/target"  # inside the container, so the second session really rebuilds
BUILD = ["cargo", "build", "-q"]
CRATES, FUNCTIONS = 8, 350  # about 25 s cold on 2 cores


def stat(stats: str, label: str) -> int:
    for line in stats.splitlines():
        rest = line[len(label):].strip() if line.startswith(label + " ") else ""
        if rest.isdigit():
            return int(rest)
    raise SystemExit(f"bench: no {label!r} in sccache stats:\n{stats}")


def main() -> str:
    require_images(DEBIAN)
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True,
                             check=True).stdout.strip()
    box = Sandbox()
    crate = generate(box.dir / "crate", CRATES, FUNCTIONS)
    cache = box.dir / "sccache"
    box.config.write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        f'volumes = ["{sysroot}:/opt/rust:ro"]\n'
        f'env = ["PATH={PATH}", "CARGO_TARGET_DIR={TARGET}"]\n'
        f'[docker.rust]\nsccache = true\ncache_dir = "{cache}"\n'
    )
    raw_run = ["docker", "run", "--rm", "-v", f"{crate}:/workspace", "-w", "/workspace",
               "-v", f"{sysroot}:/opt/rust:ro", "-e", f"PATH={PATH}", "-e", f"CARGO_TARGET_DIR={TARGET}",
               "-e", "CARGO_HOME=/tmp/cargo", "-e", "CARGO_INCREMENTAL=0",  # like for like: mux sets it
               "--pull", "never", DEBIAN, *BUILD]
    tag = uuid.uuid4().hex[:6]
    results: dict[str, list[float]] = {"raw": [], "cold": [], "warm": []}
    hits: dict[str, list[tuple[int, int]]] = {"cold": [], "warm": []}
    sessions: list[str] = []
    try:
        for r in range(runs(2)):
            shutil.rmtree(cache, ignore_errors=True)
            start = time.perf_counter()
            box.run(raw_run)
            results["raw"].append(time.perf_counter() - start)
            for kind in ("cold", "warm"):
                name = f"cc{tag}-{r}-{kind}"
                sessions.append(name)
                box.mux("new", name, cwd=crate)
                start = time.perf_counter()
                box.mux("exec", name, "--", *BUILD, cwd=crate)
                results[kind].append(time.perf_counter() - start)
                stats = box.mux("exec", name, "--", "sccache", "--show-stats").stdout
                hits[kind].append((stat(stats, "Cache hits"), stat(stats, "Cache misses")))
                box.mux("delete", "--force", name, check=False)
    finally:
        for name in sessions:
            box.mux("delete", "--force", name, check=False)
        box.close()

    def cell(kind: str) -> str:
        s = results[kind]
        return f"{ms(statistics.median(s))} ({ms(min(s))}–{ms(max(s))})"

    def rate(kind: str) -> str:
        h, m = sum(x for x, _ in hits[kind]), sum(y for _, y in hits[kind])  # every round, not the last
        return f"{h}/{h + m} ({100 * h / (h + m):.0f} %)" if h + m else "–"

    raw = statistics.median(results["raw"])
    n = len(results["raw"])
    head = (f"### Compiler cache: `cargo build` of a generated std-only workspace "
            f"({CRATES} library crates × {FUNCTIONS} functions + 1 binary; {n} rounds, each from an empty cache)")
    return head + "\n\n" + table(
        ["build", "wall time, median (min–max)", "vs plain docker", f"sccache hits/compilations, all {n} rounds"],
        [["plain `docker run … cargo build` (no sccache, `CARGO_INCREMENTAL=0` too)", cell("raw"), "1.00×", "–"],
         ["mux session 1 (empty cache)", cell("cold"),
          f"{statistics.median(results['cold']) / raw:.2f}×", rate("cold")],
         ["mux session 2 (fresh session of the same repository: cache_scope \"repo\")", cell("warm"),
          f"{statistics.median(results['warm']) / raw:.2f}×", rate("warm")]],
    )


if __name__ == "__main__":
    print(main())
