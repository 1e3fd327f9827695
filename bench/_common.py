"""Shared by the benchmarks: an isolated mux, timing, interleaving, markdown tables.

Standard library only. Every benchmark times mux and the equivalent raw
commands in the same run, alternating them, so a busy machine slows both.
"""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
BUSYBOX = "mux-test/busybox"
DEBIAN = "mux-test/debian"
MUX = [sys.executable, "-m", "mux"]


def checkout_copy(dest: Path) -> Path:
    """This checkout as `git clone` would give it (uncommitted edits included)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def runs(default: int) -> int:
    """How many runs per case (MUX_BENCH_RUNS overrides, e.g. 3 for a quick look)."""
    return int(os.environ.get("MUX_BENCH_RUNS", default))


class Sandbox:
    """A mux with its own config and data dir, never touching the user's."""

    def __init__(self, config: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mux-bench-"))
        self.data = self.dir / "data"
        self.config = self.dir / "config.toml"
        self.config.write_text(config or f'[docker]\nimage = "{BUSYBOX}"\npull = "never"\n')
        # Its own MUX_INSTANCE: its sessions are apart from any others on the engine.
        self.instance = f"bench-{self.dir.name.rsplit('-', 1)[-1]}"
        # Run as root over root-owned temp dirs (as the tests are): such a session runs as
        # uid 0, which mux refuses unless told (mux.session.account.session_ids).
        self.env = {**os.environ, "MUX_DATA_DIR": str(self.data), "MUX_CONFIG": str(self.config),
                    "MUX_INSTANCE": self.instance, "PYTHONPATH": str(ROOT), "MUX_RUN_AS_ROOT": "1"}
        # Commands run in a project of their own: the sandbox holds mux's data dir and config,
        # which a session's workdir must never contain (mux/ownfiles.py).
        self.work = self.dir / "proj"
        self.work.mkdir()
        self.env.pop("MUX_LOG_LEVEL", None)

    def run(self, argv: Sequence[str], *, check: bool = True, cwd: Path | None = None,
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(argv), env=self.env, cwd=cwd or self.work,
                              capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def timed(self, argv: Sequence[str], **kwargs: object) -> float:
        start = time.perf_counter()
        self.run(argv, **kwargs)  # type: ignore[arg-type]
        return time.perf_counter() - start

    def mux(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run([*MUX, *args], **kwargs)  # type: ignore[arg-type]

    def printed_run(self, name: str, mux: Sequence[str] = MUX) -> list[str]:
        """The `docker run` that `mux new --dry-run NAME` prints, its host steps (the
        session's directories and passwd files) done here first, untimed."""
        commands = [shlex.split(line) for line in self.run([*mux, "new", "--dry-run", name]).stdout.splitlines()]
        for c in commands:
            if c[0] != "docker":
                self.run(c)
        return next(c for c in commands if c[:2] == ["docker", "run"])

    def session_dir(self, name: str) -> Path:
        """Where this sandbox's mux keeps session NAME's files (its own instance's)."""
        return self.data / "instances" / self.instance / "sessions" / name

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def interleave(cases: dict[str, Callable[[], float]], n: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every case once per round, ``n`` rounds (after ``warmup`` untimed ones)."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for i in range(n):
        order = list(cases.items())
        if i % 2:  # alternate the order too, so neither side always runs second
            order.reverse()
        for name, fn in order:
            times[name].append(fn())
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def summary(samples: list[float]) -> str:
    """Median, and the spread as min–max."""
    return f"{ms(statistics.median(samples))} ({ms(min(samples))}–{ms(max(samples))})"


def ratio(a: list[float], b: list[float]) -> str:
    return f"{statistics.median(a) / statistics.median(b):.2f}×"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"bench: docker {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def require_images(*images: str) -> None:
    for image in images:
        if docker("image", "inspect", image, check=False).returncode != 0:
            raise SystemExit(f"bench: image {image} is missing; run `bash tests/images/build.sh`")
