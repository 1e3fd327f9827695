"""`mux new` + `mux delete --force` on podman against the `podman run -d ...` that
`mux new --dry-run` prints + `podman rm -f`, busybox image, in the same run.

Rootful podman (the benchmarks run as root): on a machine where root lacks
CAP_SYS_RESOURCE, the sandbox's own containers.conf sets default_ulimits
(`mux doctor` explains why). The image is loaded into root's podman store from docker's.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BUSYBOX, Sandbox, interleave, ratio, require_images, runs, summary, table  # noqa: E402


def main() -> str:
    require_images(BUSYBOX)
    if subprocess.run(["podman", "image", "exists", BUSYBOX]).returncode != 0:
        save = subprocess.Popen(["docker", "save", BUSYBOX], stdout=subprocess.PIPE)
        subprocess.run(["podman", "load", "-q"], stdin=save.stdout, check=True, capture_output=True)
        save.wait()
    box = Sandbox()
    conf = box.dir / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n')
    box.env.update({"MUX_DOCKER_CLI": "podman", "CONTAINERS_CONF": str(conf)})
    counter = iter(range(10_000))
    mux = [sys.executable, "-m", "mux"]

    def with_mux() -> float:
        name = f"bm{next(counter)}"
        return box.timed([*mux, "new", name]) + box.timed([*mux, "delete", "--force", name])

    def raw() -> float:
        name = f"br{next(counter)}"
        lines = [shlex.split(line) for line in box.run([*mux, "new", "--dry-run", name]).stdout.splitlines()]
        for line in lines:
            if line[0] != "podman":
                box.run(line)  # the session's directories and files: untimed
        run = next(line for line in lines if line[:2] == ["podman", "run"])
        elapsed = box.timed(run) + box.timed(["podman", "rm", "-f", f"mux-{name}"])
        shutil.rmtree(box.session_dir(name), ignore_errors=True)
        return elapsed

    try:
        t = interleave({"mux": with_mux, "podman": raw}, runs(10))
    finally:
        box.mux("delete", "--all", "--force", check=False)
        box.close()
    n = len(t["mux"])
    return f"### Session create + delete on podman (rootful, busybox, {n} runs each, interleaved)\n\n" + table(
        ["", "median (min–max)", "ratio"],
        [["`mux new` + `mux delete --force` (cli = podman)", summary(t["mux"]), ratio(t["mux"], t["podman"])],
         ["`podman run -d …` + `podman rm -f` (as printed by `--dry-run`)", summary(t["podman"]), "1.00×"]],
    )


if __name__ == "__main__":
    print(main())
