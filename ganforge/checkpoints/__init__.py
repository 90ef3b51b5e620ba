"""Checkpoints: the file (format.py), the checks of its fields on load (fields.py), and what it holds (state.py).

Below training/ in the layering: ``sample``, ``eval`` and ``export`` read checkpoints without
building a trainer, so nothing here imports the training code; the trainer composes a checkpoint
from its parts' own state (state.py) and hands the dict to format.py.
"""
