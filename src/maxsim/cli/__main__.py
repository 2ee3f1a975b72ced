"""``python -m maxsim.cli``: the same as the ``maxsim`` command."""

from maxsim.cli import main

main()
