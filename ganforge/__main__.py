"""``python -m ganforge``: the command line, as the ``ganforge`` script runs it (and torchrun starts it in each process)."""

from ganforge.cli import main

main()
