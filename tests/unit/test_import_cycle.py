"""The session, egress-wiring, tunnel, volumes, sccache and repo modules import each other
without a cycle (issue 21.5): counted over every import, inside functions too, so an
import can move to module level without making one."""

from __future__ import annotations

import ast
from pathlib import Path

import mux

ROOT = Path(mux.__file__).parent
# Once held in one cycle by imports inside functions; their shared names live in mux.session.layout.
FORMER_CYCLE = {"mux.session.hostfiles", "mux.egress.wiring", "mux.workspace.repo", "mux.workspace.repo.cloning",
                "mux.session.sccache", "mux.session.sessions", "mux.egress.tunnel", "mux.session.volumes",
                "mux.proxy.control", "mux.session.layout", "mux.session.create", "mux.session.plan"}


def module_graph() -> dict[str, set[str]]:
    """mux module -> the mux modules it imports anywhere in its text (``from PKG import
    submodule`` counts as the submodule; a package's own submodules importing it do not
    count, as Python has the package half-made by then)."""
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            found: list[str] = []
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods]
                found = subs if len(subs) == len(node.names) else [node.module, *subs]
            graph[name] |= {f for f in found if f in mods and f != name and not name.startswith(f + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_former_cycle_is_gone() -> None:
    graph = module_graph()
    assert FORMER_CYCLE <= set(graph) | {"mux.session.plan"}
    assert [sorted(c) for c in cycles(graph) if c & FORMER_CYCLE] == []


def test_the_leaf_imports_only_the_ground_floor() -> None:
    assert module_graph()["mux.session.layout"] <= {"mux.paths", "mux.errors"}
