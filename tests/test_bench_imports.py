"""The bench scripts import only names maxsim has: a script whose import went stale with a refactor
fails here, not in the middle of an hour-long run."""

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _maxsim_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from maxsim... import name`` in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("maxsim")
            for alias in node.names]


def _has(module: str, name: str) -> bool:
    """Whether ``from module import name`` works: an attribute or a submodule."""
    if hasattr(importlib.import_module(module), name):
        return True
    try:
        importlib.import_module(f"{module}.{name}")
    except ModuleNotFoundError:
        return False
    return True


@pytest.mark.parametrize("script", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_bench_script_imports_resolve(script):
    missing = [f"{module}.{name}" for module, name in _maxsim_imports(script) if not _has(module, name)]
    assert not missing, f"{script.name} imports names maxsim does not have: {missing}"


def test_the_check_sees_a_stale_import(tmp_path):
    stale = tmp_path / "stale.py"
    stale.write_text("from maxsim.index.plaid import no_such_name\nfrom maxsim.index import PlaidIndex\n")
    assert [name for module, name in _maxsim_imports(stale) if not _has(module, name)] == ["no_such_name"]
