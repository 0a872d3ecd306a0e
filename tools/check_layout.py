"""Check hierbayes's layout: no import cycles, engines that never import the report layer.

``python tools/check_layout.py`` (run by ``make test`` and so by CI) reads every
module of the package with :mod:`ast`, without importing it, and collects every
``import`` and ``from ... import`` it contains, including those inside
functions and under ``TYPE_CHECKING``: an import deferred into a function is
still a dependency, and a cycle through one is still a cycle. It fails, listing
each problem, when

* modules import each other in a cycle (any strongly connected component of
  more than one module, or a module importing itself);
* a room imports a room it may not (:data:`ALLOWED`): the two engines,
  ``bayes`` and ``freq``, may use the front end (``spec``, ``families``,
  ``residuals``, ``linalg``) and the shared base, never each other nor the
  report layer; the report layer may use both engines; only the front door
  (``hierbayes/__init__.py`` and ``hierbayes/api.py``) sees everything;
* a module imports another module's private name (``from x import _y``);
* a module is longer than :data:`MAX_LINES` lines.

``--graph`` prints the room-level dependency graph instead.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hierbayes"
MAX_LINES = 600

# Room -> rooms it may import (besides itself). "base" is errors.py, progress.py, version.py,
# kernel_sources.py (the compiled kernels' build facts, shared by both engines' loaders) and
# execution.py (the one way every many-fit workload runs: serial, a process pool, a cluster).
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "datasets": {"base"},
    "families": {"base"},
    "residuals": {"base"},
    "linalg": {"base"},
    "spec": {"base", "families", "residuals"},
    "bayes": {"base", "spec", "families", "residuals", "linalg"},
    "freq": {"base", "spec", "families", "residuals", "linalg"},
    "report": {"base", "spec", "families", "residuals", "linalg", "bayes", "freq"},
    "front": {"base", "datasets", "spec", "families", "residuals", "linalg", "bayes", "freq",
              "report"},
}
FRONT = {"hierbayes", "hierbayes.api"}
BASE = {"hierbayes.errors", "hierbayes.progress", "hierbayes.version", "hierbayes.kernel_sources",
        "hierbayes.execution"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    if module in FRONT:
        return "front"
    if module in BASE:
        return "base"
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in ALLOWED:
        raise SystemExit(f"{module}: not in any room; add it to tools/check_layout.py's ALLOWED")
    return parts[1]


def resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path, modules: set[str]) -> list[tuple[str, int, str | None]]:
    """(imported module, line, imported name or None) for every import of the package."""
    module = module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hierbayes":
                    out.append((_known(alias.name, modules), node.lineno, None))
        elif isinstance(node, ast.ImportFrom):
            source = resolve(node, module, path.name == "__init__.py")
            if source.split(".")[0] != "hierbayes":
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in modules:  # "from package import module"
                    out.append((sub, node.lineno, None))
                else:
                    out.append((_known(source, modules), node.lineno, alias.name))
    return out


def _known(name: str, modules: set[str]) -> str:
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with a cycle (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def check(max_lines: int = MAX_LINES) -> tuple[list[str], dict[str, set[str]]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph: dict[str, set[str]] = defaultdict(set)
    rooms: dict[tuple[str, str], list[str]] = defaultdict(list)
    problems: list[str] = []
    for path in paths:
        mod = module_name(path)
        graph[mod]
        lines = len(path.read_text().splitlines())
        if lines > max_lines:
            problems.append(f"{path.relative_to(ROOT)}: {lines} lines (at most {max_lines}); split it by concern")
        for target, line, name in imports(path, modules):
            where = f"{path.relative_to(ROOT)}:{line}"
            if target != mod and not mod.startswith(target + "."):
                graph[mod].add(target)
            src, dst = room(mod), room(target)
            if dst != src and dst not in ALLOWED[src]:
                problems.append(f"{where}: {src} imports {dst} ({target}), which it may not")
            if name and name.startswith("_") and not name.startswith("__") and target != mod:
                problems.append(f"{where}: imports the private name {name} from {target}")
            rooms[(src, dst)].append(where)
    for comp in cycles(graph):
        problems.append("import cycle: " + " -> ".join(comp))
    room_graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in rooms:
        if src != dst:
            room_graph[src].add(dst)
    return problems, room_graph


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", action="store_true", help="print the room-level imports")
    parser.add_argument("--max-lines", type=int, default=MAX_LINES)
    args = parser.parse_args()
    problems, room_graph = check(args.max_lines)
    if args.graph:
        for src in sorted(room_graph):
            print(f"{src:10s} -> {', '.join(sorted(room_graph[src]))}")
        return 0
    for p in problems:
        print(p)
    if problems:
        print(f"\n{len(problems)} layout problem(s).", file=sys.stderr)
        return 1
    print("layout ok: no import cycles, rooms import only what they may, no module over "
          f"{args.max_lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
