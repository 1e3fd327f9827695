"""Every import between mux modules, read with `ast` (nothing is imported): the layering, measured.

    python -m tests.importgraph [ROOT]     # ROOT: a checkout (default: this one)

prints how many imports between mux modules there are, how many sit inside functions,
which files import each other in a cycle (strongly connected components), and the
imports between packages. tests/unit/test_layers.py checks the same graph against the
map in docs/layout.md.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, "mux.session.create"
    target: str  # the imported mux module, "mux.engine.runner"
    line: int
    in_function: bool  # inside a def: runs when called, not when the module loads
    types_only: bool  # under `if TYPE_CHECKING:`: never runs


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """mux's modules by dotted name."""
    return {module_name(p, root): p for p in sorted((root / "mux").rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The mux module `name` loads: itself, else the nearest package above it."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(node: ast.Import | ast.ImportFrom, source: str, is_package: bool,
             known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = source if is_package else source.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        # `from mux.session import hostfiles` loads the module mux.session.hostfiles;
        # `from mux.errors import MuxError` loads mux.errors
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = {t for n in names if n.split(".")[0] == "mux" and (t := _resolve(n, known)) and t != source}
    return sorted(found)


def imports(root: Path = ROOT) -> list[Import]:
    """Every import of one mux module by another, one per (statement, target module)."""
    known = modules(root)
    found: list[Import] = []
    for source, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"

        def walk(node: ast.AST, in_function: bool, types_only: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in _targets(child, source, is_package, known):  # noqa: B023
                        found.append(Import(source, target, child.lineno, in_function, types_only))  # noqa: B023
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    walk(child, True, types_only)
                elif isinstance(child, ast.If) and _is_type_checking(child.test):
                    for stmt in child.body:
                        walk(ast.Module(body=[stmt], type_ignores=[]), in_function, True)
                    for stmt in child.orelse:
                        walk(ast.Module(body=[stmt], type_ignores=[]), in_function, types_only)
                else:
                    walk(child, in_function, types_only)

        walk(tree, False, False)
    return found


def cycles(edges: list[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, rest = work[-1]
            if rest:
                nxt = rest.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def runtime_edges(found: list[Import]) -> list[tuple[str, str]]:
    """What can load what while mux runs (imports for type checkers only never do)."""
    return sorted({(i.source, i.target) for i in found if not i.types_only})


def report(root: Path = ROOT) -> str:
    found = imports(root)
    runtime = [i for i in found if not i.types_only]
    inside = [i for i in runtime if i.in_function]
    lines = [f"{len(modules(root))} modules; {len(found)} imports between mux modules"
             f" ({len(found) - len(runtime)} for type checkers only), {len(inside)} inside functions"]
    comps = cycles(runtime_edges(found))
    lines.append(f"{len(comps)} cycle(s)" + "".join(f"\n  {len(c)}: {' '.join(c)}" for c in comps))
    top_level = cycles(sorted({(i.source, i.target) for i in runtime if not i.in_function}))
    lines.append(f"{len(top_level)} cycle(s) among module-level imports")
    per_file = Counter(i.source for i in inside)
    lines.append("imports inside functions, by file: "
                 + ", ".join(f"{m} {n}" for m, n in sorted(per_file.items(), key=lambda kv: (-kv[1], kv[0]))))
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT))
