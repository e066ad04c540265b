"""No import cycle anywhere in the project: the module graph, read from the AST of every project ``.py`` file, is
acyclic. Imports inside functions count (a lazy import only hides a cycle until the function runs)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".venv", ".git", "build", "dist", "docs"}


def project_modules(root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of the project (packages, tests, benchmarks, scripts)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if set(parts) & SKIP or any(p.endswith(".egg-info") for p in parts):
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _resolve(name: str, modules: dict, sibling_pkg: str) -> str | None:
    """The most specific project module that ``name`` (dotted) names, else a sibling module of the importing file
    (scripts that put their own folder on sys.path), else None (a third-party or standard module)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules:
            return ".".join(parts[:n])
    if sibling_pkg:
        for n in range(len(parts), 0, -1):
            if f"{sibling_pkg}.{'.'.join(parts[:n])}" in modules:
                return f"{sibling_pkg}.{'.'.join(parts[:n])}"
    return None


def imports_of(module: str, path: Path, modules: dict) -> set[str]:
    """Project modules that ``module`` imports anywhere in its file (module level, functions, TYPE_CHECKING)."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names = [f"{stem}.{alias.name}" if stem else alias.name for alias in node.names]
        for name in names:
            target = _resolve(name, modules, package)
            if target is not None and target != module:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None.

    >>> find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    ['a', 'b', 'c', 'a']
    >>> find_cycle({"a": {"b"}, "b": set()}) is None
    True
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_reads_function_level_and_relative_imports(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from . import b\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg.a import g\n")
    modules = project_modules(tmp_path)
    graph = {m: imports_of(m, p, modules) for m, p in modules.items()}
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


def test_no_import_cycle_in_the_project():
    modules = project_modules(ROOT)
    assert "generation.engine" in modules and "evaluation.runner" in modules  # the walk finds the packages
    graph = {m: imports_of(m, p, modules) for m, p in modules.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
