"""Benchmark: `git push` of a pack of tens of MB from a session, through mux's proxy
(with and without the git_push check) against the same server reached directly.

git's own http-backend serves bare repositories over TLS on the bridge gateway and on
loopback (tests/integration/git_http.py); git runs inside one proxied session (Debian
test image). Every push goes to a fresh empty repository, so each sends the whole pack:

* direct:      to the gateway, no proxy, the token in the URL (what mux avoids);
* intercepted: through the proxy to loopback, a rule with ``git_push = "any"``:
               TLS terminated, the credential injected, the pack streamed;
* checked:     through the proxy to the gateway, ``git_push = "session"`` (the default):
               the same, plus the push held until its ref-update commands are read.

Also the proxy's peak resident memory (VmHWM) over one push, in a fresh proxy: the
pack streams through, so it does not grow by the pack's size.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import DEBIAN, Sandbox, docker, interleave, require_images, runs, table  # noqa: E402

PACK_MB = int(os.environ.get("MUX_BENCH_PUSH_MB", "40"))
TOKEN = "bench-not-a-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare(root: Path, name: str) -> str:
    subprocess.run(["git", "init", "-q", "--bare", str(root / name)], check=True)
    subprocess.run(["git", "-C", str(root / name), "config", "http.receivepack", "true"], check=True)
    return name


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> str:
    require_images(DEBIAN)
    from mux.egress import netinfo
    from tests.integration.proxy.servers import TLSGitServer, make_pki

    gateway = netinfo.bridge_gateway()
    if not gateway:
        raise SystemExit("bench: no Docker bridge gateway")
    rule = 'auth_type = "basic"\nusername = "bot"\npassword = "${BENCH_GIT_TOKEN}"\n'
    box = Sandbox(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        f"[proxy]\nport = {free_port()}\ntimeout = 30\negress = \"open\"\n"
        f'[proxy.filters]\nallowed_networks = ["{gateway}/32", "127.0.0.1/32"]\n'
        f'[credentials.checked]\ndomains = ["{gateway}"]\n{rule}'
        f'[credentials.any]\ndomains = ["127.0.0.1"]\n{rule}git_push = "any"\n'
    )
    box.env["BENCH_GIT_TOKEN"] = TOKEN
    pki = make_pki(box.dir / "pki", [gateway, "127.0.0.1"])
    box.env["MUX_PROXY_UPSTREAM_CA"] = str(pki.ca)
    root = box.dir / "served"
    root.mkdir()
    name = "bpush"
    n = runs(5)
    servers = [TLSGitServer(root, host, pki, auth=("bot", TOKEN)).start() for host in (gateway, "127.0.0.1")]
    box.mux("new", "--volume", f"{pki.ca.parent}:/bench-pki:ro", name, "--", "sleep", "100000")
    container = f"mux-{name}"
    try:
        made = docker("exec", container, "bash", "-c", f"""set -e
git init -q /tmp/w && cd /tmp/w && head -c {PACK_MB}000000 /dev/urandom > big && git add big
git -c user.name=b -c user.email=b@b commit -q -m big""")
        assert made.returncode == 0, made.stderr
        gw, lo = (s.url for s in servers)
        cases = {
            "direct": (f"{gw.replace('https://', f'https://bot:{TOKEN}@')}",
                       "git -c http.proxy= -c http.sslCAInfo=/bench-pki/ca.pem"),
            # The session's NO_PROXY has loopback in it: this one goes through the proxy anyway.
            "intercepted (git_push any)": (lo, "NO_PROXY= no_proxy= git"),
            "checked (git_push session)": (gw, "git"),
        }
        counter = iter(range(10_000))

        def push(url: str, flags: str) -> float:
            repo = bare(root, f"r{next(counter)}.git")
            out = docker("exec", container, "bash", "-c",
                         f"cd /tmp/w && s=$(date +%s%N) && {flags} push -q {url}/{repo} "
                         f"HEAD:refs/heads/mux/{name}/big && e=$(date +%s%N) && echo $((e-s))")
            assert out.returncode == 0, out.stderr
            return int(out.stdout) / 1e9

        times = interleave({k: (lambda u=u, f=f: push(u, f)) for k, (u, f) in cases.items()}, n)
        # Peak memory per path: a fresh proxy each, one push (VmHWM only grows).
        rss = {}
        for k in list(cases)[1:]:
            box.mux("proxy", "stop")
            box.mux("proxy", "start")
            base = peak_rss_mib(int((box.data / "proxy" / "proxy.pid").read_text()))
            push(*cases[k])
            rss[k] = (base, peak_rss_mib(int((box.data / "proxy" / "proxy.pid").read_text())))
    finally:
        box.mux("delete", "--force", name, check=False)
        box.mux("proxy", "stop", check=False)
        for s in servers:
            s.stop()
        box.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [[k, f"{med[k]:.2f} s", f"{PACK_MB / med[k]:.0f} MB/s", f"{med[k] / med['direct']:.2f}×"]
            for k in cases]
    return (
        f"### git push through mux's proxy ({PACK_MB} MB pack, {n} runs each, medians)\n\n"
        + table(["path", "push", "throughput", "vs direct"], rows)
        + "\n\nProxy peak resident memory (VmHWM), a fresh proxy, before and after one push:\n\n"
        + table(["path", "started", "after the push"],
                [[k, f"{a:.0f} MiB", f"{b:.0f} MiB"] for k, (a, b) in rss.items()])
    )


if __name__ == "__main__":
    print(main())
