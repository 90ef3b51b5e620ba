"""The defensive layer: what keeps third parties' code, the user's Ctrl-C and the machine's limits from
breaking a command, kept out of the core it guards.

- ``startup.py``: the Ctrl-C guard of the ``ganforge`` command, from its first import to its exit.
- ``third_party.py``: the one door through which ganforge runs a plugin's code (importing it, its
  hooks, its factories), telling the user's Ctrl-C from what the plugin's code raised.
- ``memory.py``: what this machine has free, and a request (images to read, to sample) refused
  before it is taken when it would not fit.
- ``machine.py``: a run's memory estimated before anything large is allocated, and the warnings
  ``ganforge validate`` prints for a config this machine would refuse.
- ``preflight.py``: the pre-flight check, one small batch through the run's own components before
  the run folder exists.
- ``blame.py``: the note on an exception that names the component it was raised inside.
- ``allocation.py``: an allocation that fails while a run trains or evaluates, named like the memory
  estimate's refusal, with the setting to lower.

This ``__init__`` imports nothing: ``startup`` must be importable before torch (it imports the
standard library alone), and ``third_party`` and ``memory`` sit below the registry, while
``machine``, ``preflight``, ``blame`` and ``allocation`` read a resolved config and the run's components.
"""
