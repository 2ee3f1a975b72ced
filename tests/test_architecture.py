"""The package layering: no import circle among maxsim's packages (read from the source, not run)."""

import ast

from conftest import ROOT

SRC = ROOT / "src" / "maxsim"


def package_imports() -> dict[str, set[str]]:
    """package -> the other maxsim packages (or top-level modules) its modules import."""
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        here = parts[0] if len(parts) > 1 or parts[0] != "__init__" else "maxsim"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                target = name.split(".")[1] if name.startswith("maxsim.") else None
                if target and target != here:
                    edges.setdefault(here, set()).add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found = []

    def walk(node, path):
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                found.append(path[path.index(nxt):] + [nxt])
            elif len(path) < len(edges) + 1:
                walk(nxt, path + [nxt])

    for start in sorted(edges):
        walk(start, [start])
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) and not cycles({"a": {"b"}, "b": {"c"}})


def test_no_import_circle_among_packages():
    edges = package_imports()
    assert {"search", "distributed", "server", "cli", "index", "models"} <= set(edges)
    assert cycles(edges) == []
    assert "cli" not in edges["distributed"] and "distributed" not in edges["search"]
    assert not edges["index"] - {"errors", "memory"}  # the index stores arrays: it knows no model, no search
