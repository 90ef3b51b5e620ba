"""Contract checks for components: the same checks for ganforge's built-ins and any plugin's.

Each check is a small function ``check_x(component) -> None`` that raises ``ContractViolation`` with a
message saying what was expected and what happened. Everything runs on the CPU, seeded, in a second
or so per component; checks that need a GPU run only where one is present. One module per kind
(``architectures.py``, ``losses.py``, ``datasets.py``, ``metrics.py``, ``augmentations.py``,
``loggers.py``), the checks every kind takes in ``common.py``, and running them in ``runner.py``;
``ganforge.testing`` is where a plugin's tests import them from.
"""
