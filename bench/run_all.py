"""Run every benchmark, each in its own process, and print their markdown tables.

`python bench/run_all.py [name ...]` (names: installed startup create_delete startcheck list_sessions
bench_repo compile_cache forward proxy tui cp gitpush). MUX_BENCH_RUNS overrides the number of runs of every benchmark.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALL = ["installed", "startup", "create_delete", "startcheck", "list_sessions", "bench_repo", "compile_cache",
       "forward", "proxy", "tui", "cp", "gitpush"]


def main(names: list[str]) -> int:
    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True).stdout.strip() or "?"
    print(f"## mux benchmarks\n\nPython {platform.python_version()}, Docker engine {engine}, "
          f"{platform.machine()}, {__import__('os').cpu_count()} CPUs. "
          "Times are wall clock; spread is min–max; ratios compare medians.\n")
    failed = 0
    for name in names or ALL:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / f"{name}.py")], capture_output=True, text=True)
        if proc.returncode != 0:
            failed += 1
            print(f"### {name}: FAILED\n\n```\n{proc.stdout}{proc.stderr}```\n")
            continue
        print(proc.stdout.rstrip() + f"\n\n_{name}: {time.perf_counter() - start:.0f} s_\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
