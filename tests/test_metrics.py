"""The model's metrics (scoring.model.score_metrics) against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from scoring.model import MIN_POSITIVES, score_metrics


@pytest.fixture(scope="module")
def scores() -> tuple[np.ndarray, np.ndarray]:
    """20,000 rows, ~4 % positives, probabilities rounded to two places (many ties)."""
    rng = np.random.default_rng(3)
    p = np.round(1 / (1 + np.exp(-(rng.normal(size=20_000) * 1.5 - 3.5))), 2)
    return (rng.random(p.size) < p).astype(np.int8), p


@pytest.mark.parametrize("ties", ["few", "rule points"])
def test_curves_equal_sklearn_on_the_rows_as_given(scores, ties):
    """AUC and PR-AUC are computed on the rows sorted by score; the values must be those of the
    rows in their own order, bit for bit, also where most scores tie (rule points)."""
    y, p = scores
    s = p if ties == "few" else np.floor(p * 10)
    got = score_metrics(y, s, probabilistic=False)
    assert got["auc"] == roc_auc_score(y, s)
    assert got["pr_auc"] == average_precision_score(y, s)
    assert "brier" not in got and "ece" not in got


def test_recall_in_the_top_tenth_breaks_ties_by_row_order(scores):
    y, p = scores
    s = np.floor(p * 10)                      # the top tenth ends inside a block of ties
    k = round(0.1 * len(y))
    top = sorted(range(len(y)), key=lambda i: (-s[i], i))[:k]
    assert s[top[-1]] == s[sorted(range(len(y)), key=lambda i: (-s[i], i))[k]]
    assert score_metrics(y, s, False)["recall_top10"] == y[top].sum() / y.sum()


def test_probability_metrics(scores):
    y, p = scores
    got = score_metrics(y, p)
    assert got["brier"] == brier_score_loss(y, p)
    assert got["rows"] == len(y) and got["positives"] == y.sum()
    assert 0 <= got["ece"] < 0.02              # the labels were drawn from p: well calibrated
    assert score_metrics(y, np.clip(p + 0.2, 0, 1))["ece"] > 0.15


def test_too_few_positives_gives_a_note_not_numbers():
    y = np.zeros(1000, dtype=np.int8)
    y[: MIN_POSITIVES - 1] = 1
    got = score_metrics(y, np.linspace(0, 1, 1000))
    assert "auc" not in got and "正例少于" in got["note"]
