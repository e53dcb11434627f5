"""How hard the product code is to read, measured: function complexity, module length, import
cycles inside a package. `tests/test_code_shape.py` holds the limits; run this file to print
today's figures:

    .venv/bin/python -m tests.code_shape          # everything over the limits
    .venv/bin/python -m tests.code_shape --top 20  # the 20 most complex functions

Complexity is McCabe's (the `mccabe` package, the same figure as flake8 C901 / ruff C901).
Import cycles count every import, also those deferred into a function or kept under
`if TYPE_CHECKING:`: such a cycle still ties the modules into one unit (today's flight/ cycle
of eight modules ran entirely through those). `from pkg import sub` of a submodule is an edge to
the submodule, not to the package's __init__.
"""
from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import mccabe

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "mission_planner", "flight", "vision", "dispatch", "sim", "runloop")
SINGLE_MODULES = ("patrol.py",)

MAX_COMPLEXITY = 25
MAX_MODULE_LINES = 700


def product_files() -> list[Path]:
    """Every Python file shipped (the packages and patrol.py), sorted."""
    files = [ROOT / m for m in SINGLE_MODULES]
    for pkg in PACKAGES:
        files += sorted((ROOT / pkg).rglob("*.py"))
    return sorted(f for f in files if "__pycache__" not in f.parts)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def complexities(path: Path) -> Iterator[tuple[str, int]]:
    """(qualified function name, McCabe complexity) for every function and method in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    visitor = mccabe.PathGraphingAstVisitor()
    visitor.preorder(tree, visitor)
    for graph in visitor.graphs.values():
        yield graph.entity, graph.complexity()


def complex_functions(limit: int = MAX_COMPLEXITY) -> dict[str, int]:
    """{"path:Class.function": complexity} for functions above `limit`."""
    out = {}
    for f in product_files():
        for name, value in complexities(f):
            if value > limit:
                out[f"{rel(f)}:{name}"] = value
    return out


def long_modules(limit: int = MAX_MODULE_LINES) -> dict[str, int]:
    """{path: lines} for modules longer than `limit` lines."""
    out = {}
    for f in product_files():
        n = len(f.read_text().splitlines())
        if n > limit:
            out[rel(f)] = n
    return out


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of a module: at module level, deferred inside functions, and under
    `if TYPE_CHECKING:`. A cycle closed by a deferred or type-only import is still two modules that
    cannot be understood (or moved) one without the other."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def import_graph() -> dict[str, set[str]]:
    """{module: product modules it imports}; `from pkg import sub` names pkg.sub
    when sub is a module, else the package itself."""
    modules = {_module_name(f): f for f in product_files()}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, f in modules.items():
        is_pkg = f.name == "__init__.py"
        for node in _imports(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:  # import a.b.c of a module a.b.c: nearest known
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def import_cycles() -> dict[str, list[list[str]]]:
    """{package: [cycle, ...]}: groups of modules of one package (its own modules, its
    subpackages' __init__ and the package __init__ itself) that import each other."""
    graph = import_graph()
    packages = {_module_name(f) for f in product_files() if f.name == "__init__.py"}
    out: dict[str, list[list[str]]] = {}
    for pkg in sorted(packages):
        members = {m for m in graph if m == pkg or m.rpartition(".")[0] == pkg}
        sub = {m: graph[m] & members for m in members}
        for scc in _strongly_connected(sub):
            if len(scc) > 1:
                out.setdefault(pkg, []).append(sorted(scc))
    return out


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                scc = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    scc.add(m)
                    if m == node:
                        break
                out.append(scc)
    return out


def main(argv: list[str]) -> int:
    top = int(argv[argv.index("--top") + 1]) if "--top" in argv else 0
    if top:
        allf = sorted(((v, f"{rel(f)}:{n}") for f in product_files() for n, v in complexities(f)), reverse=True)
        for v, name in allf[:top]:
            print(f"{v:4d}  {name}")
        return 0
    print(f"functions above complexity {MAX_COMPLEXITY}:")
    for name, v in sorted(complex_functions().items(), key=lambda kv: -kv[1]):
        print(f"  {v:4d}  {name}")
    print(f"modules above {MAX_MODULE_LINES} lines:")
    for name, v in sorted(long_modules().items(), key=lambda kv: -kv[1]):
        print(f"  {v:4d}  {name}")
    print("import cycles inside a package:")
    for pkg, cycles in import_cycles().items():
        for c in cycles:
            print(f"  {pkg}: {' <-> '.join(c)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
