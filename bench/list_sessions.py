"""Benchmark 3: `mux list` with 1, 50 and 200 sessions against `docker ps -a`
with the same filter and format: the cost must stay one docker call.

The sessions are made with plain `docker create` of busybox carrying mux's
labels (faster than `mux new`, and `mux list` reads only labels); removed after.
"""

from __future__ import annotations

import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BUSYBOX, MUX, Sandbox, docker, interleave, ratio, require_images, runs, summary, table  # noqa: E402

from mux.engine import argv as A  # noqa: E402
from mux.session.sessions import PS_FORMAT  # noqa: E402

COUNTS = (1, 50, 200)


def make(name: str, instance: str) -> None:
    docker("create", "--name", f"mux-{name}", "--label", f"mux.session={name}",
           "--label", f"mux.instance={instance}",
           "--label", "mux.backend=docker", "--label", "mux.workdir=/tmp",
           "--label", f"mux.image={BUSYBOX}", "--label", "mux.created=2025-01-01T00:00:00Z",
           "--label", "mux.version=bench", BUSYBOX, "sh")


def existing(instance: str) -> int:
    return len(docker("ps", "-a", "-q", "--filter", f"label=mux.instance={instance}").stdout.split())


def main() -> str:
    require_images(BUSYBOX)
    box = Sandbox()
    tag = uuid.uuid4().hex[:6]
    made: list[str] = []
    rows = []
    raw = ["docker", *A.ps_argv(PS_FORMAT, instance=box.instance)]  # exactly the call `mux list` makes
    try:
        with ThreadPoolExecutor(4) as pool:
            for count in COUNTS:
                new = [f"bl{tag}-{i}" for i in range(len(made), count)]
                list(pool.map(lambda n: make(n, box.instance), new))
                made += new
                t = interleave({
                    "mux": lambda: box.timed([*MUX, "list"]),
                    "mux-json": lambda: box.timed([*MUX, "list", "--json"]),
                    "docker": lambda: box.timed(raw),
                }, runs(10))
                assert existing(box.instance) == count
                rows.append([str(count),
                             summary(t["mux"]), summary(t["mux-json"]), summary(t["docker"]),
                             ratio(t["mux"], t["docker"]), ratio(t["mux-json"], t["docker"])])
    finally:
        for i in range(0, len(made), 50):
            docker("rm", "-f", *[f"mux-{n}" for n in made[i:i + 50]], check=False)
        box.close()
    head = f"### `mux list` vs `docker ps -a --filter label=mux.session` ({runs(10)} runs each, interleaved)"
    return head + "\n\n" + table(
        ["sessions", "`mux list`", "`mux list --json`", "`docker ps -a …` same format",
         "ratio", "ratio (json)"], rows)


if __name__ == "__main__":
    print(main())
