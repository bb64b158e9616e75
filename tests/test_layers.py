"""Layers only point down: no import cycle between kdbench's packages, counting imports inside functions.

A package is a folder under ``kdbench/``; a module standing directly in ``kdbench/`` (``train.py``, ``metrics.py``)
counts as its own. The root ``kdbench/__init__.py`` is left out: it holds ``__version__`` and the lazy doorway to
``kdbench.api`` (PEP 562), and Python runs it before any submodule anyway, so it is no layer of its own.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import kdbench

ROOT = Path(kdbench.__file__).parent
Graph = dict[str, dict[str, list[str]]]


def _module_name(path: Path, root: Path) -> str:
    """Dotted module name of a source file under ``root`` (the package folder)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(dotted: str, root: Path) -> str | None:
    """The package (first level under the root) a dotted name belongs to; None for the root itself."""
    parts = dotted.split(".")
    if len(parts) < 2 or parts[0] != root.name:
        return None
    name = parts[1]
    return name if (root / name).is_dir() or (root / f"{name}.py").is_file() else None


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Absolute dotted names an import statement reaches (``from X import y`` gives ``X.y``: y may be a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        here = here[: len(here) - node.level + 1]
        base = ".".join(here + ([base] if base else []))
    return [f"{base}.{a.name}" for a in node.names] + [base]


def package_graph(root: Path = ROOT) -> Graph:
    """{package: {imported package: ["file:line", ...]}} from every import in the source, local ones included."""
    edges: Graph = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        src = _unit(module, root)
        if src is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for name in _imported(node, module, path.name == "__init__.py"):
                dst = _unit(name, root)
                if dst and dst != src:
                    site = f"{path.relative_to(root.parent)}:{node.lineno}"
                    if site not in edges[src][dst]:
                        edges[src][dst].append(site)
    return edges


def cycles(edges: Graph) -> list[list[str]]:
    """The strongly connected groups of more than one package (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(set(edges) | {w for e in edges.values() for w in e}):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(group: list[str], edges: Graph) -> str:
    """A cycle's packages and the import sites joining them."""
    lines = [" <-> ".join(group)]
    for a in group:
        for b in group:
            if b in edges.get(a, {}):
                lines.append(f"  {a} -> {b}: {', '.join(edges[a][b])}")
    return "\n".join(lines)


def test_no_import_cycle_between_packages() -> None:
    edges = package_graph()
    assert "data" in edges["train"] and "profile" in edges["search"]  # the graph sees the real imports
    found = cycles(edges)
    assert not found, "package import cycles (counting imports inside functions):\n" + "\n".join(
        describe(g, edges) for g in found)


def test_the_checker_finds_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    pkg = tmp_path / "kdbench"
    for folder in ("low", "high"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("__version__ = '0'\n")
    (pkg / "high" / "stage.py").write_text("from ..low import tool\nfrom kdbench import __version__\n")
    (pkg / "low" / "tool.py").write_text("def f():\n    from kdbench.high.stage import g\n")
    (pkg / "single.py").write_text("import kdbench.low.tool\n")
    edges = package_graph(pkg)
    assert cycles(edges) == [["high", "low"]]
    assert "kdbench/low/tool.py:2" in describe(["high", "low"], edges)
    assert set(edges["single"]) == {"low"}
