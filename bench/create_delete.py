"""Benchmark 1: `mux new` + `mux delete --force` against the `docker run -d ...`
(exactly what `mux new --dry-run` prints) + `docker rm -f`, busybox image."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BUSYBOX, Sandbox, interleave, ratio, require_images, runs, summary, table  # noqa: E402


def main() -> str:
    require_images(BUSYBOX)
    box = Sandbox()
    counter = iter(range(10_000))

    def with_mux() -> float:
        name = f"bm{next(counter)}"
        return box.timed([*box_mux, "new", name]) + box.timed([*box_mux, "delete", "--force", name])

    def raw() -> float:
        name = f"br{next(counter)}"
        run = box.printed_run(name)  # what mux prints for this very session, host steps done
        elapsed = box.timed(run) + box.timed(["docker", "rm", "-f", f"mux-{name}"])
        shutil.rmtree(box.session_dir(name), ignore_errors=True)
        return elapsed

    box_mux = [sys.executable, "-m", "mux"]
    try:
        t = interleave({"mux": with_mux, "docker": raw}, runs(10))
    finally:
        box.mux("delete", "--all", "--force", check=False)
        box.close()
    n = len(t["mux"])
    return f"### Session create + delete (busybox, {n} runs each, interleaved)\n\n" + table(
        ["", "median (min–max)", "ratio"],
        [["`mux new` + `mux delete --force`", summary(t["mux"]), ratio(t["mux"], t["docker"])],
         ["`docker run -d …` + `docker rm -f` (as printed by `--dry-run`)", summary(t["docker"]), "1.00×"]],
    )


if __name__ == "__main__":
    print(main())
