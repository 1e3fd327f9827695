"""Sessions from one engine, or from several at once (`[docker] contexts`).

Several engines are asked in parallel, one `docker ps` each; one that does not
answer within ANSWER_WITHIN seconds (a laptop's box asleep, a VPN down) becomes
a warning naming it, and the others are still listed.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mux.engine.runner import Runner
from mux.errors import MuxError
from mux.session.sessions import Scan, scan

if TYPE_CHECKING:
    from mux.engine.choice import Engine
    from mux.session.sessions import Foreign, Session

ANSWER_WITHIN = 5.0  # seconds; ssh to a host that is up answers in well under one


def gather(engines: list[Engine], *, verbose: bool
           ) -> tuple[list[tuple[str, Session]], list[tuple[str, Foreign]], list[str]]:
    """(context name, session) pairs, sorted by name then context; the same for
    containers with foreign labels (sessions.Foreign); warnings for engines that
    did not answer."""
    if len(engines) == 1:  # the common case: no threads, no timeout, errors as they are
        only = engines[0]
        one = scan(Runner(verbose=verbose, engine=only))
        return [(only.name, s) for s in one.sessions], [(only.name, f) for f in one.foreign], []
    found: dict[int, Scan] = {}
    failed: dict[int, str] = {}

    def ask(i: int, engine: Engine) -> None:
        runner = Runner(verbose=verbose, engine=engine, timeout=ANSWER_WITHIN)
        try:
            found[i] = scan(runner)
        except MuxError as exc:
            failed[i] = exc.message

    threads = [threading.Thread(target=ask, args=(i, e), daemon=True) for i, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pairs = [(engines[i].name, s) for i in sorted(found) for s in found[i].sessions]
    foreign = [(engines[i].name, f) for i in sorted(found) for f in found[i].foreign]
    warnings = [f"context {engines[i].name!r} ({engines[i].host}) did not answer, its sessions are "
                f"not listed: {failed[i]}" for i in sorted(failed)]
    return sorted(pairs, key=lambda p: (p[1].name, p[0])), foreign, warnings
