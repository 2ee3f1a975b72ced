"""Imports every command module so that each registers on ``maxsim.cli.app``."""
