"""``python -m ganforge``: the command line, as the ``ganforge`` script runs it (torchrun starts this)."""

from ganforge.cli import main

main()
