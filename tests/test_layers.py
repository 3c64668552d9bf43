"""The layering of the package: data flows manifest -> tasks -> engine -> store -> report, and
lower layers never import upper ones; no import cycles between modules.

Every import counts, including those inside functions (a lazy import is still a dependency);
imports under ``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import hpc_nst

ROOT = Path(hpc_nst.__file__).parent

#: Package -> rank. A module may import from its own rank or lower ones only.
RANKS = {
    "errors": 0, "registry": 0, "fsutil": 0, "config": 1, "config_validation": 1,
    "audio": 2, "models": 2, "losses": 2, "data": 3,
    "engine": 4, "train": 5, "metrics": 6, "batch": 6, "report": 7, "export": 7, "cli": 8,
    "__main__": 9,
}


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("hpc_nst"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("hpc_nst"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def _rank(module: str) -> int:
    parts = module.split(".")
    return RANKS[parts[1]] if len(parts) > 1 else 0


def test_every_package_has_a_rank():
    top = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
           if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.stem != "__init__"}
    assert top <= set(RANKS), top - set(RANKS)


def test_no_upward_imports():
    bad = [f"{m} imports {d}" for m, deps in _graph().items() for d in deps
           if _rank(d) > _rank(m)]
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _graph()
    # package __init__ modules re-export their children: an edge child -> parent package
    # through "from hpc_nst.x import y" is the child's own package, not a cycle
    for m in graph:
        graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    """The rule is not vacuous: an engine module importing the batch layer is caught."""
    assert _rank("hpc_nst.batch.store") > _rank("hpc_nst.engine.transfer")
    assert "hpc_nst.batch.store" in _imports(_write(tmp_path, "from hpc_nst.batch import store\n"
                                                              "from hpc_nst.batch.store import x"))
    assert not _imports(_write(tmp_path, "from typing import TYPE_CHECKING\n"
                                         "if TYPE_CHECKING:\n    import hpc_nst.cli\n"))


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.py"
    p.write_text(text)
    return p
