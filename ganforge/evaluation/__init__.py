"""Evaluation: feature networks, metric maths and the evaluation protocol."""
