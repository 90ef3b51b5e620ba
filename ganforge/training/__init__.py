"""The generic trainer and what it writes into a run folder."""
