"""The proxy process: ``python -m mux.proxy.server --state-dir DIR [--config FILE]``.

The only module (with ``addon``) that imports mitmproxy. ``control.start`` writes
``policy.json`` (listen addresses, port, filters, upstream CA: nothing secret)
and starts this process; the process reads credentials itself, from the config
file with ``${VAR}`` expanded from its own environment, so tokens exist only in
its memory. It writes its pid at once and ``state.json`` once every listener is
up; ``start`` waits for that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from mux.configfile import read_toml
from mux.errors import MuxError
from mux.proxy.ca import ensure_ca, write_bundles
from mux.proxy.files import ProxyFiles, write_public
from mux.proxy.limits import from_policy
from mux.proxy.registry import Registry
from mux.proxy.settings import (
    CredentialRule,
    Filters,
    expand_credentials,
    parse_credentials,
)

log = logging.getLogger("mux.proxy")


def load_rules(config: str | None) -> tuple[CredentialRule, ...]:
    if not config:
        return ()

    raw = read_toml(Path(config))
    return expand_credentials(parse_credentials(raw, config), os.environ, config)


class Ready:
    """Writes ``state.json`` once mitmproxy's listeners are up, or shuts down if one failed."""

    def __init__(self, files: ProxyFiles, policy: dict[str, Any], config: str | None) -> None:
        self.files, self.policy, self.config = files, policy, config

    def running(self) -> None:
        from mitmproxy import ctx

        servers = list(ctx.master.addons.get("proxyserver").servers)
        failed = [s for s in servers if not s.is_running]
        if failed or not servers:
            for s in failed:
                log.error("cannot listen on %s: %s", s.mode.full_spec, s.last_exception)
            ctx.master.shutdown()
            return
        state = {
            "pid": os.getpid(),
            "port": self.policy["port"],
            "ports": self.policy.get("ports", [self.policy["port"]]),
            "digest": self.policy.get("digest"),
            "addresses": self.policy["listen"],
            "config": self.config,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_public(self.files.state, json.dumps(state, indent=1))
        log.info("listening on %s port %s", ", ".join(self.policy["listen"]), self.policy["port"])


async def serve(
    files: ProxyFiles, policy: dict[str, Any], rules: tuple[CredentialRule, ...], config: str | None
) -> None:
    from mitmproxy import options
    from mitmproxy.proxy import server as connections
    from mitmproxy.tools.dump import DumpMaster

    from mux.proxy import front, gate  # here: gate and addon import mitmproxy
    from mux.proxy.addon import MuxPolicy

    limits = from_policy(policy.get("limits"))
    # mitmproxy's idle watchdog reads this module constant for each new connection.
    connections.TCP_TIMEOUT = int(max(1, limits.idle_timeout))
    master = DumpMaster(options.Options(), with_termlog=False, with_dumper=False)
    master.options.update(
        mode=[f"regular@{addr}:{port}" for addr in policy["listen"]
              for port in policy.get("ports", [policy["port"]])],
        confdir=str(files.root),
        ssl_verify_upstream_trusted_ca=str(files.upstream_roots),
        # Stream big bodies (git packs) instead of holding them all in memory; mux
        # only ever touches headers.
        stream_large_bodies="64m",
    )
    raw = policy["filters"]
    filters = Filters(tuple(raw["blocked_domains"]), bool(raw["allowlist_only"]), tuple(raw["allowed_domains"]),
                      tuple(raw.get("allowed_networks", ())))
    audit = policy.get("audit", {})
    policy_addon = MuxPolicy(Registry(files.sessions), filters, rules, files.audit,
                             **{k: v for k, v in (("audit_max_bytes", audit.get("max_bytes")),
                                                  ("audit_keep", audit.get("keep"))) if isinstance(v, int)},
                             limits=limits)
    gate.install()
    front.install(front.Front(files, limits))
    # After MuxPolicy: the git policy looks at what it authenticated and injected.
    master.addons.add(policy_addon, gate.GitPolicy(rules), Ready(files, policy, config))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.shutdown)
    watchdog = asyncio.ensure_future(_orphaned(files, master.shutdown))
    try:
        await master.run()
    finally:
        watchdog.cancel()


async def _orphaned(files: ProxyFiles, shutdown: Any, every: float = 5.0) -> None:
    """Shut down once this proxy's state directory no longer names it (deleted with its
    data dir, or taken over by another proxy): nothing could reach or stop it any more."""
    while True:
        await asyncio.sleep(every)
        try:
            ours = int(files.pid.read_text().strip()) == os.getpid()
        except (FileNotFoundError, NotADirectoryError, ValueError):
            ours = False
        except OSError as exc:
            # EMFILE, ENFILE, ENOMEM...: this proxy is busy, not replaced. Look again later.
            log.warning("cannot read %s (%s): still serving", files.pid, exc.strerror or exc)
            continue
        if not ours:
            log.warning("%s no longer names this proxy: stopping", files.pid)
            shutdown()
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mux-proxy")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    files = ProxyFiles(Path(args.state_dir))
    files.ensure()
    files.pid.write_text(f"{os.getpid()}\n")
    try:
        policy = json.loads(files.policy.read_text())
        rules = load_rules(args.config)
        if ensure_ca(files):
            log.info("created mux's CA: %s", files.ca_cert)
        write_bundles(files, [Path(p) for p in policy.get("upstream_cas", [])])
        for rule in rules:
            kind = rule.auth_type or rule.header
            log.info("credential %s (%s) for %s", rule.name, kind, ", ".join(rule.domains))
        asyncio.run(serve(files, policy, rules, args.config))
    except MuxError as exc:
        log.error("%s%s", exc.message, f" ({exc.hint})" if exc.hint else "")
        return exc.exit_code
    finally:
        _cleanup(files)
    log.info("stopped")
    return 0


def _cleanup(files: ProxyFiles) -> None:
    # Only remove what is ours: a newer proxy may already have replaced the files.
    try:
        if int(files.pid.read_text().strip()) != os.getpid():
            return
    except (OSError, ValueError):
        return
    for path in (files.state, files.pid):
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
