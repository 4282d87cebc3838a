"""Failures of scoring the clerk is told about in Chinese (the CLI maps them to exit codes).

Kept apart from scoring.model so that catching them does not import LightGBM and scikit-learn
(1.5 s here, 3.5 s without compiled bytecode).
"""

from __future__ import annotations


class CannotScore(ValueError):
    """The drop cannot support scoring the quarter asked for; the message is for the clerk."""


class HistoryTooShort(CannotScore):
    """The drop's history cannot support an out-of-time model."""


class QuarterAfterDrop(CannotScore):
    """The quarter asked for is later than the drop's latest return: its features and the
    outcome windows of the quarters before it are not in the drop."""


class SavedModelUnusable(CannotScore):
    """`--model` names a folder this tidu cannot score with."""


class RulesConfigError(CannotScore):
    """`--rules` names a city config that cannot be read, or that names rulebooks it cannot use
    (unknown ids, a tier's rulebooks in force on the same day)."""
