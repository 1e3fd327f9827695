"""The layering: every import between mux modules against the map (docs/layout.md).

Read with `ast` (tests/importgraph.py), nothing imported, no engine: module-level
imports and those inside functions alike, since an import inside a function hides a
dependency, it does not remove it.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from tests.importgraph import ROOT, Import, cycles, imports, modules, runtime_edges

# layer -> the layers it may import (besides itself), from the target map in DESIGN.md.
# "X (types only)": only under `if TYPE_CHECKING:`, which never runs.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "ground": (),
    "engine": ("ground",),
    "proxy": ("ground",),
    "workspace": ("engine", "ground"),
    "egress": ("proxy", "engine", "ground"),
    "session": ("egress", "workspace", "proxy", "engine", "ground"),
    "doctor": ("session", "egress", "workspace", "proxy", "engine", "ground", "cli (types only)"),
    "cli": ("tui", "doctor", "session", "egress", "workspace", "proxy", "engine", "ground"),
    "tui": ("session", "egress", "workspace", "proxy", "engine", "ground", "cli (types only)"),
}

# modules that sit in another layer than their package's
PLACED = {
    "mux.cli": "cli",
    "mux.__main__": "cli",
    "mux.doctor": "doctor",
    "mux.proxy.cli": "cli",  # the `mux proxy` click group
    "mux.proxy.control": "egress",  # starts the proxy process on the host, beside the relay and tunnel
    "mux.session.layout": "ground",  # a session's file names: a leaf every layer reads (imports paths, errors)
}
PACKAGES = {"engine", "proxy", "workspace", "egress", "session", "commands", "tui"}


def layer(module: str) -> str:
    if module in PLACED:
        return PLACED[module]
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in PACKAGES:
        return "cli" if parts[1] == "commands" else parts[1]
    return "ground"


# Imports that break the map today, each one named. Fix one (move the definition to the
# layer that owns it) and test_every_exception_is_still_needed says to drop its line.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # config reads every table and asks each owner to check its part; the checks belong
    # below config (engine: engineer "engine"'s files; protect, proxy.settings: pure checks
    # that could move to the ground floor)
    ("mux.config", "mux.engine.clis"): "[docker] cli name check",
    ("mux.config", "mux.engine.choice"): "context name check",
    ("mux.configfile", "mux.engine.clis"): "cli name check",
    ("mux.configfile", "mux.engine.choice"): "context name check",
    ("mux.config", "mux.proxy.settings"): "[proxy] and [credentials.*] parsing",
    ("mux.config", "mux.workspace.protect"): "[protect] paths check",
    # engine -> doctor: podman set-up runs doctor's checks (engineer "engine")
    ("mux.engine.podman_setup", "mux.doctor"): "set-up ends with doctor's checks",
    # workspace -> session: the git box and `mux diff`/`fetch` take a session by name and
    # read its volume names; the Session record and volume naming sit in session/
    ("mux.workspace.diff", "mux.session.sessions"): "find a session by name",
    ("mux.workspace.fetch", "mux.session.sessions"): "find a session by name",
    ("mux.workspace.gitbox", "mux.session.volumes"): "a session's volume names (engineer 'plan')",
    ("mux.workspace.gitbox", "mux.session.sessions"): "Session, types only",
    ("mux.workspace.guard", "mux.session.sessions"): "Session, types only",
    # egress -> session: the tunnel finds a session by name, and tells session directories
    # apart, with the session record's code
    ("mux.egress.tunnel", "mux.session.sessions"): "find, is_session_dir",
}

# Cycles between modules today (imports inside functions count). The 9-file one
# (hostfiles, wiring, repo, sccache, sessions, tunnel, volumes, control) is gone: its
# shared names live in mux/session/layout.py (no cycle test elsewhere: this file is the one).
KNOWN_CYCLES: list[set[str]] = [
    {"mux.doctor", "mux.engine.podman_setup"},  # podman set-up ends with doctor's checks
]


@functools.cache
def here() -> list[Import]:
    """This checkout's imports, read once for all the tests."""
    return imports()


def allowed(imp: Import) -> bool:
    src, dst = layer(imp.source), layer(imp.target)
    may = MAY_IMPORT[src]
    return src == dst or dst in may or (imp.types_only and f"{dst} (types only)" in may)


def violations(found: list[Import]) -> list[str]:
    return sorted({f"{i.source} -> {i.target} ({layer(i.source)} -> {layer(i.target)})"
                   for i in found if not allowed(i) and (i.source, i.target) not in EXCEPTIONS})


def new_cycles(found: list[Import], known: list[set[str]]) -> list[list[str]]:
    return [c for c in cycles(runtime_edges(found)) if not any(set(c) <= k for k in known)]


def test_every_import_follows_the_map() -> None:
    assert violations(here()) == []


def test_no_new_import_cycle() -> None:
    assert new_cycles(here(), KNOWN_CYCLES) == []


def test_no_cycle_among_module_level_imports() -> None:
    # an import-time cycle works or fails by import order: none at all, exceptions or not
    found = [i for i in here() if not i.in_function]
    assert cycles(runtime_edges(found)) == []


def test_every_exception_is_still_needed() -> None:
    found = here()
    breaking = {(i.source, i.target) for i in found if not allowed(i)}
    assert sorted(set(EXCEPTIONS) - breaking) == [], "fixed: drop these from EXCEPTIONS"
    still = [set(c) for c in cycles(runtime_edges(found))]
    assert [sorted(k) for k in KNOWN_CYCLES if k not in still] == [], "changed: update KNOWN_CYCLES"


def test_every_module_has_a_layer() -> None:
    assert {layer(m) for m in modules()} <= set(MAY_IMPORT)


def map_table(text: str) -> dict[str, tuple[str, ...]]:
    """The "layer | holds | may import" table of docs/layout.md."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header == ["layer", "holds", "may import"]
    table = {}
    for row in rows[2:]:
        name, _holds, may = (cell.strip() for cell in row.strip("|").split("|"))
        table[name] = () if may == "—" else tuple(part.strip() for part in may.split(","))
    return table


def test_the_map_page_is_this_table() -> None:
    assert map_table((ROOT / "docs" / "layout.md").read_text()) == MAY_IMPORT


def test_the_map_page_places_each_moved_module() -> None:
    text = (ROOT / "docs" / "layout.md").read_text()
    for module, where in PLACED.items():
        path = module.replace(".", "/") + ".py"
        row = next(line for line in text.splitlines() if line.startswith(f"| {where} |"))
        assert f"`{path}`" in row, (module, where)


@functools.cache
def trees() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text()) for name, path in modules().items()}


# Only these modules may use these libraries (rules in docs/layout.md).
def _importers(library: str) -> set[str]:
    found = set()
    for name, tree in trees().items():
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n == library or n.startswith(f"{library}.") for n in names):
                found.add(name)
    return found


def test_only_the_runner_starts_processes() -> None:
    starters = set()
    for name, tree in trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                    and re.fullmatch(r"system|exec\w*|spawn\w*|fork\w*|posix_spawn\w*|popen", node.attr):
                starters.add(name)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "pty" \
                    and node.attr in ("fork", "spawn"):
                starters.add(name)
            if isinstance(node, ast.ImportFrom) and node.module == "subprocess" and any(
                    a.name not in {"PIPE", "DEVNULL", "STDOUT", "TimeoutExpired", "CalledProcessError"}
                    for a in node.names):
                starters.add(name)
    # `import subprocess` for types (Popen annotations in the TUI) starts nothing
    plain = {m for m in _importers("subprocess") if m not in {"mux.tui.actions", "mux.tui.screens"}}
    assert starters | plain <= {"mux.engine.runner", "mux.session.forward"}, starters | plain
    assert "mux.session.forward" not in starters  # PIPE and TimeoutExpired only


def test_only_the_workspace_runs_git() -> None:
    assert {m for m in _importers("git") if not m.startswith("mux.workspace.")} == set()


def test_only_the_proxy_process_imports_mitmproxy() -> None:
    assert {m for m in _importers("mitmproxy") if layer(m) != "proxy"} == set()


def test_the_proxy_process_loads_only_proxy_and_ground_code() -> None:
    # what loads with it, and what its own functions import when they run; the ground
    # floor's function-level imports above (configfile's engine checks) are not on its path
    edges: dict[str, set[str]] = {}
    for i in here():
        if not i.types_only and (not i.in_function or layer(i.source) == "proxy"):
            edges.setdefault(i.source, set()).add(i.target)
    seen, todo = set(), ["mux.proxy.server"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(edges.get(module, ()))
    assert sorted(m for m in seen if layer(m) not in {"proxy", "ground"}) == []


PROCESS_ONLY = {"mux.proxy.server", "mux.proxy.addon", "mux.proxy.gate"}  # what runs inside mitmproxy


def test_the_rest_of_mux_uses_the_proxys_data_never_its_process() -> None:
    # session and egress read settings, domains, registry and files; the process is spawned
    assert sorted({f"{i.source} -> {i.target}" for i in here()
                   if i.target in PROCESS_ONLY and i.source not in PROCESS_ONLY}) == []


# The checker itself must be able to fail: a tree with one upward import and one cycle.
def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    for path, text in {
        "mux/__init__.py": "",
        "mux/errors.py": "",
        "mux/engine/__init__.py": "",
        "mux/engine/runner.py": "from mux.errors import x\n\ndef f():\n    from mux.session import create\n",
        "mux/session/__init__.py": "",
        "mux/session/create.py": "import mux.engine.runner\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    found = imports(tmp_path)
    assert violations(found) == ["mux.engine.runner -> mux.session.create (engine -> session)"]
    assert new_cycles(found, []) == [["mux.engine.runner", "mux.session.create"]]
    assert [i.in_function for i in found if i.source == "mux.engine.runner"] == [False, True]


@pytest.mark.parametrize("text, types_only", [
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mux.session import create\n", True),
    ("import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    from mux.session import create\n", False),
], ids=["under-type-checking", "in-its-else"])
def test_types_only_imports_are_told_apart(tmp_path: Path, text: str, types_only: bool) -> None:
    for path, body in {"mux/__init__.py": "", "mux/engine/__init__.py": "", "mux/engine/argv.py": text,
                       "mux/session/__init__.py": "", "mux/session/create.py": ""}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    assert [i.types_only for i in imports(tmp_path) if i.source == "mux.engine.argv"] == [types_only]
