"""Imports every command module so that each registers on ``maxsim.cli.app``."""

from maxsim.cli import add, check, encode, evaluate, index, listing, mcp, quickstart, rerank, search, serve, train  # noqa: F401
