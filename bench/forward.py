"""Benchmark: `mux forward` against a port published with `mux new -p`, same
server (busybox httpd in one session), same client, interleaved: bulk download
throughput, one small request per new connection, and concurrent requests.
A raw `docker exec -i CONTAINER cat FILE` shows what docker's stream alone costs."""

from __future__ import annotations

import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BUSYBOX, MUX, Sandbox, interleave, require_images, runs, summary, table  # noqa: E402

BULK_MIB = int(os.environ.get("MUX_BENCH_FORWARD_MIB", "256"))


def fetch(url: str) -> int:
    total = 0
    with urllib.request.urlopen(url, timeout=300) as response:  # noqa: S310 (loopback)
        while chunk := response.read(1 << 20):
            total += len(chunk)
    return total


def timed(fn: object, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> str:
    require_images(BUSYBOX)
    box = Sandbox()
    work = box.dir / "work"
    work.mkdir()
    (work / "small.txt").write_text("hello\n")
    with open(work / "bulk.bin", "wb") as out:
        for _ in range(BULK_MIB):
            out.write(os.urandom(1 << 20))
    name = "bfwd"
    box.mux("new", "-p", "8000", name, "--", "httpd", "-f", "-p", "8000", "-h", "/workspace", cwd=work)
    forward = None
    try:
        published = json.loads(box.mux("port", "--json", name).stdout)[0]["host_port"]
        forward = subprocess.Popen([*MUX, "forward", name, ":8000"], env=box.env, stdout=subprocess.PIPE, text=True)
        assert forward.stdout is not None
        forwarded = int(forward.stdout.readline().split()[1].rsplit(":", 1)[1])
        forward.stdout.readline()  # Press Ctrl-C to stop.
        container = f"mux-{name}"
        urls = {"published (-p)": f"http://127.0.0.1:{published}", "mux forward": f"http://127.0.0.1:{forwarded}"}

        def raw_stream() -> None:
            subprocess.run(["docker", "exec", "-i", container, "cat", "/workspace/bulk.bin"],
                           stdout=subprocess.DEVNULL, check=True)

        bulk = interleave({**{k: (lambda u=u: timed(fetch, u + "/bulk.bin")) for k, u in urls.items()},
                           "docker exec -i … cat (raw stream)": lambda: timed(raw_stream)}, runs(5))
        small = interleave({k: (lambda u=u: timed(fetch, u + "/small.txt")) for k, u in urls.items()}, runs(30))

        def burst(url: str) -> float:
            with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
                return timed(lambda: list(pool.map(fetch, [url + "/small.txt"] * 100)))

        concurrent_t = interleave({k: (lambda u=u: burst(u)) for k, u in urls.items()}, runs(3))
    finally:
        if forward is not None:
            forward.terminate()
            forward.wait()
        box.mux("delete", "--force", name, check=False)
        box.close()

    def rate(samples: list[float]) -> str:
        return f"{BULK_MIB / statistics.median(samples):.0f} MiB/s"

    rows = [[f"GET {BULK_MIB} MiB, {k}", summary(v), rate(v)] for k, v in bulk.items()]
    rows += [[f"GET 6 bytes, new connection, {k}", summary(v), ""] for k, v in small.items()]
    rows += [[f"100 GETs, 20 at a time, {k}", summary(v), f"{100 / statistics.median(v):.0f} req/s"]
             for k, v in concurrent_t.items()]
    return ("### Forwarded vs published port (busybox httpd, interleaved)\n\n"
            + table(["", "median (min–max)", "rate"], rows)
            + "\n\nA new forwarded connection is a frame on the forward's one stream and a connect "
            "in the container; a burst's time is mostly the server's (busybox httpd's short listen "
            "backlog drops SYNs, which clients resend after 1 s).")


if __name__ == "__main__":
    print(main())
