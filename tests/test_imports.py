"""No import cycles: between the modules of the four packages, and between the packages.

Every module is parsed with ``ast``: module-level imports, imports inside functions and
type-checking-only imports all count (a cycle that only bites at run time is still a tangle a
reader has to follow), and relative imports are resolved against the importing module.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim", "perception", "scenarios", "reports")


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is_package) for every ``.py`` file under ``root/<package>``."""
    found: dict[str, tuple[Path, bool]] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = (path, is_package)
    return found


def _known(name: str, modules: dict) -> str | None:
    """``name`` or its longest prefix that is one of ``modules`` (``a.b.attr`` -> ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, is_package: bool, modules: dict) -> set[str]:
    """The modules among ``modules`` that module ``name`` imports, anywhere in its body."""
    out: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            # ``from pkg import sub`` imports the submodule when there is one
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            known = _known(target, modules)
            if known is not None and known != name:
                out.add(known)
    return out


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    modules = find_modules(root, packages)
    return {name: imports_of(name, *spec, modules) for name, spec in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges between top-level packages."""
    top = {m: m.partition(".")[0] for m in graph}
    out: dict[str, set[str]] = {p: set() for p in top.values()}
    for m, deps in graph.items():
        out[top[m]] |= {top[d] for d in deps if top[d] != top[m]}
    return out


def _describe(found: list[list[str]], graph: dict[str, set[str]]) -> str:
    lines = []
    for comp in found:
        edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp]
        lines.append(f"cycle among {', '.join(comp)}: {'; '.join(edges)}")
    return "\n".join(lines)


GRAPH = import_graph(ROOT, PACKAGES)


def test_the_scan_sees_the_imports_it_must() -> None:
    # absolute, relative, function-level and "from package import module" imports
    assert "sim.common" in GRAPH["perception._models"]  # absolute
    assert "perception._adapt" in GRAPH["perception._adapt_registry"]  # relative
    assert "sim" in GRAPH["scenarios._validate"]  # inside a function
    assert "sim.corruptions.blur" in GRAPH["sim.corruptions.catalogue"]  # from pkg import mod
    assert len(GRAPH) > 60


def test_no_import_cycle_between_modules() -> None:
    found = cycles(GRAPH)
    assert not found, _describe(found, GRAPH)


def test_no_import_cycle_between_packages() -> None:
    packages = package_graph(GRAPH)
    found = cycles(packages)
    assert not found, _describe(found, packages)


#: Which of roadshift's packages each package may import (docs/architecture.md, "Import rules").
MAY_IMPORT = {
    "sim": set(),
    "perception": {"sim.common"},  # the shared vocabulary only, never the world or corruptions
    "reports": set(),  # a report is made from the run folder alone
    "scenarios": {"sim", "perception", "reports"},
}


def test_the_package_rules_hold() -> None:
    """Each module imports only the packages its package may (see docs/architecture.md)."""
    for module, deps in GRAPH.items():
        top = module.partition(".")[0]
        allowed = MAY_IMPORT[top]
        for dep in deps:
            if dep.partition(".")[0] == top:
                continue
            ok = any(dep == a or dep.startswith(a + ".") for a in allowed)
            assert ok, f"{module} imports {dep}; {top} may import {sorted(allowed) or 'none'}"


def test_a_cycle_is_found_wherever_its_imports_hide(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "def f():\n    from .c import g\n",
        "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
        "pkg/d.py": "import pkg.a\n",
        "other/__init__.py": "",
        "other/x.py": "from pkg.d import thing\n",
        "pkg/e.py": "import other.x\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(text))
    graph = import_graph(tmp_path, ("pkg", "other"))
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert cycles(package_graph(graph)) == [["other", "pkg"]]
