"""Package exports imported on first use (PEP 562), so that importing a package costs only what its
caller touches (``maxsim search`` does not load transformers, ``maxsim --help`` does not load torch)."""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, exports: dict[str, str | tuple[str, str]]):
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a name to the module holding it
    (or to ``(module, attribute)`` when the attribute is named otherwise), imported on first access."""
    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = exports[name] if isinstance(exports[name], tuple) else (exports[name], name)
        value = getattr(importlib.import_module(module), attribute)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted([*vars(sys.modules[package]), *exports])

    return __getattr__, __dir__
