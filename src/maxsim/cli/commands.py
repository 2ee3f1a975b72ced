"""Imports every command module so that each registers on ``maxsim.cli.app``."""
from maxsim.cli import (  # noqa: F401
    add,  # noqa: F401
    encode,
    evaluate,  # noqa: F401
    index,
    quickstart,
    rerank,  # noqa: F401
    search,
    serve,
    train,  # noqa: E402,F401
)
