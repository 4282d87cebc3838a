"""Failures of scoring the clerk is told about in Chinese (the CLI maps them to exit codes).

Kept apart from scoring.model so that catching them does not import LightGBM and scikit-learn
(1.5 s here, 3.5 s without compiled bytecode).
"""

from __future__ import annotations


class HistoryTooShort(ValueError):
    """The drop's history cannot support an out-of-time model; the message is for the clerk."""
