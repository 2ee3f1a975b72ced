"""Imports every command module so that each registers on ``maxsim.cli.app``."""
from maxsim.cli import train  # noqa: E402,F401
from maxsim.cli import encode, index, quickstart, search, serve  # noqa: F401
from maxsim.cli import evaluate  # noqa: F401
from maxsim.cli import rerank  # noqa: F401
from maxsim.cli import add  # noqa: F401
