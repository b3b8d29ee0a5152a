"""How the odexport package is put together, read from its source: the import levels of its packages and
top-level modules, the import cycles between modules, the imports made inside functions, and the longest
functions.

    python scripts/structure.py [--top 15] [--check]

--check exits 1 when there is an import cycle, imports inside functions counted (CI runs it).

Module-level imports make the graph (TYPE_CHECKING blocks excluded); an import inside a function is
counted apart, because it is how a cycle is usually hidden.
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = "odexport"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.startswith(PACKAGE)]
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    if not base.startswith(PACKAGE):
        return []
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def read_package():
    modules = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    top_level, every, in_function, lengths = defaultdict(set), defaultdict(set), [], []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        skip = {id(n) for block in ast.walk(tree) if _type_checking_block(block) for n in ast.walk(block)}
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        nested = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in skip:
                continue
            targets = [t for t in resolve(name, is_package, node) if t in modules and t != name]
            every[name].update(targets)
            if id(node) in nested:
                in_function.append((name, node.lineno, ast.unparse(node)))
            else:
                top_level[name].update(targets)
        lengths += [(f.end_lineno - f.lineno + 1, f"{name}.{f.name}", f.lineno) for f in functions]
    return modules, top_level, every, in_function, lengths


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def unit(module: str) -> str:
    """A top-level module, or a sub-package as one unit."""
    parts = module.split(".")
    return ".".join(parts[:2])


def levels(graph: dict[str, set[str]]) -> dict[int, list[str]]:
    """Level 0 imports nothing else of the package; each unit sits one above the highest it imports. Units
    that import each other (through their modules) share a level and are printed joined by '+'."""
    units = defaultdict(set)
    for source, targets in graph.items():
        units[unit(source)].update(unit(t) for t in targets if unit(t) != unit(source))
    for targets in list(units.values()):
        for target in targets:
            units.setdefault(target, set())
    groups = {u: "+".join(component) for component in cycles(units) for u in component}
    group = lambda u: groups.get(u, u)  # noqa: E731
    condensed = defaultdict(set)
    for source, targets in units.items():
        condensed[group(source)].update(group(t) for t in targets if group(t) != group(source))
    depth: dict[str, int] = {}

    def level(g):
        if g not in depth:
            depth[g] = 1 + max((level(t) for t in condensed.get(g, ())), default=-1)
        return depth[g]

    by_level = defaultdict(list)
    for g in sorted(condensed):
        short = "+".join(u.removeprefix(PACKAGE + ".") or PACKAGE for u in g.split("+"))
        by_level[level(g)].append(short)
    return dict(sorted(by_level.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=15, help="how many of the longest functions to list")
    parser.add_argument("--check", action="store_true", help="exit 1 on any import cycle")
    args = parser.parse_args()
    modules, graph, every, in_function, lengths = read_package()
    print(f"{len(modules)} modules")
    print("\nimport levels (a unit imports only from lower levels; sub-packages count as one unit; a+b: units that")
    print("import each other, through different modules):")
    for depth, names in levels(graph).items():
        print(f"  {depth}: {', '.join(sorted(names))}")
    found = cycles(graph)
    print(f"\nimport cycles between modules: {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    hidden = cycles(every)
    print(f"import cycles once imports inside functions count too: {len(hidden)}")
    for component in hidden:
        print("  " + " <-> ".join(component))
    print(f"\nimports inside functions: {len(in_function)}")
    print(f"\nlongest functions (lines):")
    for length, name, line in sorted(lengths, reverse=True)[: args.top]:
        print(f"  {length:4d}  {name} (line {line})")
    if args.check and (found or hidden):
        raise SystemExit("error: import cycles (listed above); break them rather than hide them in a function")


if __name__ == "__main__":
    main()
