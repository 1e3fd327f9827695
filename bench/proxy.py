"""Benchmark: HTTPS from a session through mux's proxy, tunnelled and intercepted,
against the same server reached directly, in one run (interleaved).

A test HTTPS server (HTTP/1.1, keep-alive) listens on the Docker bridge gateway
and on loopback; curl runs inside one proxied session (Debian test image):

* direct:       curl to the gateway address, no proxy (what the bridge allows);
* tunnelled:    through the proxy to the loopback listener: CONNECT, the
                destination check, then bytes passed untouched;
* intercepted:  through the proxy to the gateway listener, which has a
                credential rule: TLS terminated, a header injected per request.

Measured: MB/s of one bulk download, requests/s over one keep-alive connection,
and requests/s with a new connection (a new curl) per request, and what a new
connection costs over direct (ms). Plus the cost of the destination check itself
(resolve + classify), timed in-process.

``MUX_BENCH_BEFORE=DIR`` (another checkout, e.g. a ``git worktree`` of main) runs a
second proxy and session from that checkout's mux in the same run, interleaved:
its rows are marked "(before)".
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import DEBIAN, ROOT, Sandbox, interleave, require_images, runs, table  # noqa: E402

BULK_MIB = int(os.environ.get("MUX_BENCH_PROXY_MIB", "200"))
KEEPALIVE_REQUESTS = 200
NEW_CONN_REQUESTS = int(os.environ.get("MUX_BENCH_PROXY_NEWCONN", "30"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(host: str, pki: object, bulk: bytes) -> object:
    from tests.integration.proxy.servers import tls_server

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each small response waits for a delayed ACK

        def do_GET(self) -> None:
            body = bulk if self.path.startswith("/bulk") else b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            view = memoryview(body)
            for i in range(0, len(body), 1 << 20):
                self.wfile.write(view[i:i + (1 << 20)])

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = tls_server(host, Handler, pki)  # type: ignore[arg-type]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def sandbox(gateway: str, pki: object, checkout: str) -> Sandbox:
    """A mux (its proxy included) run from ``checkout``, with a port of its own."""
    box = Sandbox(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        f"[proxy]\nport = {free_port()}\ntimeout = 30\negress = \"open\"\n"
        # The bench's server is on the host (gateway and loopback): allow exactly those.
        f'[proxy.filters]\nallowed_networks = ["{gateway}/32", "127.0.0.1/32"]\n'
        f'[credentials.bench]\ndomains = ["{gateway}"]\nheader = "X-Bench"\nvalue = "not-a-secret"\n'
    )
    box.env["MUX_PROXY_UPSTREAM_CA"] = str(pki.ca)  # type: ignore[attr-defined]
    box.env["PYTHONPATH"] = checkout
    return box


def run_in(box: Sandbox, script: str) -> str:
    from _common import docker

    found = docker("ps", "-q", "--filter", f"label=mux.instance={box.instance}").stdout.split()
    return docker("exec", found[0], "bash", "-c", script).stdout


def session(tag: str) -> str:
    return "bproxyb" if tag else "bproxy"


def check_cost() -> list[list[str]]:
    """Microseconds per destination check, in-process (what every connection pays)."""
    from mux.proxy.destinations import Destinations

    d = Destinations(["127.0.0.1/32"])
    rows = []
    for label, host in (("IP literal (public)", "93.184.216.34"), ("IP literal (refused)", "10.1.2.3"),
                        ("hosts-file name", "localhost"), ("odd spelling", "0x7f000001")):
        d.check(host, 443) if label != "IP literal (refused)" else d.choose(host, [host])
        n = 5000
        start = time.perf_counter()
        for _ in range(n):
            d.check(host, 443)
        rows.append([label, f"{(time.perf_counter() - start) / n * 1e6:.0f} µs"])
    return rows


def main() -> str:
    require_images(DEBIAN)
    from mux.egress import netinfo
    from tests.integration.proxy.servers import make_pki

    gateway = netinfo.bridge_gateway()
    if not gateway:
        raise SystemExit("bench: no Docker bridge gateway")
    before = os.environ.get("MUX_BENCH_BEFORE")
    bulk = os.urandom(BULK_MIB << 20)
    pki = make_pki(Path(tempfile.mkdtemp(prefix="mux-bench-pki-")), [gateway, "127.0.0.1"])
    servers = [serve(gateway, pki, bulk), serve("127.0.0.1", pki, bulk)]
    gw_port = servers[0].server_address[1]  # type: ignore[attr-defined]
    lo_port = servers[1].server_address[1]  # type: ignore[attr-defined]
    boxes = {"": sandbox(gateway, pki, str(ROOT))}
    if before:
        boxes[" (before)"] = sandbox(gateway, pki, before)
    ca = "--cacert /bench-pki/ca.pem"  # the test CA; the session's bundle has mux's CA for interception
    cases = {"direct": ("", f"--noproxy '*' {ca} https://{gateway}:{gw_port}")}
    for tag in sorted(boxes, reverse=True):
        cases[f"tunnelled{tag}"] = (tag, f"--noproxy '' {ca} https://127.0.0.1:{lo_port}")
        cases[f"intercepted{tag}"] = (tag, f"https://{gateway}:{gw_port}")
    try:
        for tag, box in boxes.items():
            made = box.mux("new", "--volume", f"{pki.ca.parent}:/bench-pki:ro", session(tag), "--", "sleep", "100000")
            assert made.returncode == 0, made.stderr

        def bulk_run(tag: str, args: str) -> float:
            fmt = "%{time_total} %{size_download}"
            out = run_in(boxes[tag], f"curl -sS -o /dev/null -w '{fmt}' {args}/bulk").split()
            assert int(out[1]) == BULK_MIB << 20, out
            return float(out[0])

        def keepalive_run(tag: str, args: str) -> float:
            urls = " ".join(f"{args.split()[-1]}/small" for _ in range(KEEPALIVE_REQUESTS))
            opts = " ".join(args.split()[:-1])
            out = run_in(boxes[tag], f"s=$(date +%s%N); curl -sS {opts} {urls} >/dev/null; e=$(date +%s%N); "
                                     "echo $((e-s))")
            return int(out) / 1e9

        def newconn_run(tag: str, args: str) -> float:
            out = run_in(boxes[tag], f"s=$(date +%s%N); for i in $(seq {NEW_CONN_REQUESTS}); do curl -sS -o /dev/null "
                                     f"{args}/small || exit 1; done; e=$(date +%s%N); echo $((e-s))")
            return int(out) / 1e9

        n = runs(3)
        bulk_t = interleave({k: (lambda t=t, a=a: bulk_run(t, a)) for k, (t, a) in cases.items()}, n)
        keep_t = interleave({k: (lambda t=t, a=a: keepalive_run(t, a)) for k, (t, a) in cases.items()}, n)
        new_t = interleave({k: (lambda t=t, a=a: newconn_run(t, a)) for k, (t, a) in cases.items()}, n)
    finally:
        for tag, box in boxes.items():
            box.mux("delete", "--force", session(tag), check=False)
            box.mux("proxy", "stop", check=False)
            box.close()
    med = {k: statistics.median(v) for k, v in bulk_t.items()}
    rows = []
    per_new = {k: statistics.median(v) / NEW_CONN_REQUESTS for k, v in new_t.items()}
    for k in cases:
        mbs = BULK_MIB * 1.048576 / med[k]
        rows.append([k, f"{mbs:.0f} MB/s ({mbs / (BULK_MIB * 1.048576 / med['direct']):.2f}×)",
                     f"{KEEPALIVE_REQUESTS / statistics.median(keep_t[k]):.0f} req/s",
                     f"{NEW_CONN_REQUESTS / statistics.median(new_t[k]):.0f} req/s",
                     f"{(per_new[k] - per_new['direct']) * 1000:+.1f} ms"])
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (
        f"### proxy: HTTPS through mux's proxy ({n} runs, medians; load average {load})\n\n"
        + table(["path", f"{BULK_MIB} MiB download", f"{KEEPALIVE_REQUESTS} requests, one connection",
                 "one new curl per request", "new connection vs direct"], rows)
        + "\n\nDestination check per connection (resolve + classify, in-process):\n\n"
        + table(["destination", "cost"], check_cost())
    )


if __name__ == "__main__":
    print(main())
