"""The package layering: no import circle among maxsim's packages (read from the source, not run);
and what a one-off search imports (run)."""

import ast
import subprocess
import sys

import pytest

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
    assert not edges["index"] - {"errors", "memory", "cache"}  # the index stores arrays: it knows no model, no search


def test_a_one_off_search_loads_neither_torch_nor_the_other_commands_and_kinds():
    """What ``maxsim search`` imports before it encodes (a frozen model runs in OpenVINO) and scans an
    exact index (numpy): not torch (~1 s), not the PLAID kind, nor the other commands. (With GPU
    drivers installed, ``frozen_precision`` asks torch whether it sees a GPU.)"""
    from maxsim.models.precision import GPU_DRIVERS

    if any(path.exists() for path in GPU_DRIVERS):
        pytest.skip("GPU drivers installed: torch is asked whether it sees a GPU")
    script = ("import sys\n"
              "from maxsim.cli.registry import load_commands\n"
              "load_commands('search')\n"
              "import maxsim.opener, maxsim.models.frozen, maxsim.models.precision, maxsim.search.retriever\n"
              "from maxsim.index import KINDS\n"
              "KINDS['exact']\n"
              "from maxsim.cli.search import frozen_precision\n"
              "frozen_precision()\n"
              "print(sorted(m for m in sys.modules if m in ('torch', 'maxsim.index.plaid', 'maxsim.index.exact_scan',"
              " 'maxsim.cli.train', 'maxsim.cli.serve', 'maxsim.scoring.maxsim', 'transformers')))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"MAXSIM_CPU_FLAGS": "", "PATH": ""})
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
