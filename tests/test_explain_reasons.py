"""reasons(): the vectorised text equals the row-by-row definition, value for value; the run's
explanations computed in slices equal those of one slice."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from scoring.explain import (
    AbsoluteSum,
    global_importance,
    importance_table,
    label,
    reasons,
    value_text,
)


def row_by_row(contrib, x, names, n=3):
    """The definition, one row at a time (the implementation before vectorisation)."""
    usable = np.array([not nm.startswith("tier_") for nm in names] + [False])
    magnitude = np.where(usable[None, : contrib.shape[1]], np.abs(contrib), -1.0)
    top = np.argsort(-magnitude, axis=1, kind="stable")[:, :n]
    return ["；".join(f"{label(names[j])} {value_text(names[j], x[i, j])} "
                     f"{'↑' if contrib[i, j] > 0 else '↓'}"
                     for j in idx if not magnitude[i, j] <= 0)
            for i, idx in enumerate(top)]


NAMES = ["revenue_ttm", "rd_intensity_py", "invention_granted_valid", "age_years", "employees",
         "district=环科园", "rule_eligible", "rule_points", "holds_tech_sme", "post_money_last_yi",
         "tier_little_giant", "tier_eaglet"]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [1, 3, 20])
def test_vectorised_reasons_equal_the_row_by_row_text(seed, n):
    rng = np.random.default_rng(seed)
    rows, width = 500, len(NAMES)
    x = rng.normal(0, 1000, (rows, width))
    odd = rng.random((rows, width)) < 0.3  # values where formatting rounds or reads 未知/—
    x[odd] = rng.choice([0.0, -0.0, np.nan, 1.0, 0.05, 149.95, 99.95, 0.00049999], odd.sum())
    contrib = rng.normal(0, 1, (rows, width + 1))
    tied = rng.random(contrib.shape) < 0.4  # ties, zeros and NaN contributions
    contrib[tied] = rng.choice([0.0, -0.0, 0.5, -0.5, np.nan], tied.sum())
    assert reasons(contrib, x, NAMES, n) == row_by_row(contrib, x, NAMES, n)


def test_no_rows_no_reasons():
    assert reasons(np.zeros((0, len(NAMES) + 1)), np.zeros((0, len(NAMES))), NAMES) == []


@pytest.mark.parametrize("chunk", [AbsoluteSum.CHUNK, 97])
def test_sum_over_slices_gives_the_mean_of_the_whole_matrix_bit_for_bit(chunk, monkeypatch):
    """global importance is accumulated slice by slice in the run (and each slice a chunk of rows
    at a time); it must equal NumPy's mean over the whole (n × F+1) matrix exactly, not just to
    rounding."""
    monkeypatch.setattr(AbsoluteSum, "CHUNK", chunk)
    rng = np.random.default_rng(5)
    contrib = rng.normal(0, 1, (10_007, len(NAMES) + 1)) * np.exp(rng.normal(0, 4, (10_007, 1)))
    contrib[rng.random(contrib.shape) < 0.1] = 0.0
    whole = global_importance(contrib, NAMES)
    total = AbsoluteSum(len(NAMES))
    for start in range(0, len(contrib), 999):
        total.add(contrib[start:start + 999])
    assert total.rows == len(contrib)
    assert np.array_equal(total.mean(), np.abs(contrib[:, : len(NAMES)]).mean(axis=0))
    assert_frame_equal(importance_table(total.mean(), NAMES), whole, check_exact=True)
    # a plain sum of per-slice sums is not the same float: the order of additions matters
    # (this is what makes the test above able to fail)
    naive = sum(np.abs(contrib[s:s + 999, : len(NAMES)]).sum(axis=0) for s in range(0, len(contrib), 999))
    assert not np.array_equal(naive / len(contrib), total.mean())


class _StubModel:
    """contributions() of a fixed linear "model" on the rows' features: per row, SHAP value of
    column j = weight_j × x_j (NaN stays NaN), base value last; calibrate() a logistic of the
    rounded sum. What score_and_explain reads."""

    features = ("revenue_ttm", "rd_intensity_py", "invention_granted_valid", "age_years")

    def contributions(self, rows: pl.DataFrame):
        from scoring.model import design_matrix

        x, names = design_matrix(rows, list(self.features))
        weights = np.linspace(-1.0, 2.0, x.shape[1])
        # C order, as tree_shap and pred_contrib return it (the order NumPy's mean adds in)
        contrib = np.ascontiguousarray(np.column_stack([np.nan_to_num(x * weights), np.full(len(x), -1.5)]))
        return contrib, x, names

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        # coarse, so that many rows tie and the tie-break (points, credit code) is exercised
        return np.round(1.0 / (1.0 + np.exp(-np.clip(margin / 1000.0, -50, 50))), 2)


def _city(n_firms: int, quarter: str):
    """The scored quarter's keys, panel and rule verdicts of a made-up city."""
    from scoring.tiers import TIERS

    rng = np.random.default_rng(3)
    uscc = [f"91320282MA{i:08d}" for i in range(n_firms)]
    panel = pl.DataFrame({
        "uscc": uscc, "quarter": quarter, "name": [f"企业{i}" for i in range(n_firms)],
        "district": rng.choice(["环科园", "丁蜀镇", None], n_firms).tolist(),
        "revenue_ttm": np.round(rng.lognormal(6, 2, n_firms), 1),
        "rd_intensity_py": np.where(rng.random(n_firms) < 0.2, np.nan, rng.random(n_firms) / 10),
        "invention_granted_valid": rng.integers(0, 9, n_firms).astype(float),
        "age_years": rng.random(n_firms) * 30,
    })
    tiers = list(TIERS)[:3]
    keys = pl.DataFrame({"uscc": [u for u in uscc for _ in tiers], "quarter": quarter,
                         "tier": tiers * n_firms})
    m = keys.height
    rules = keys.with_columns(
        pl.Series("eligible", rng.random(m) < 0.3),
        pl.Series("eligible_if_unknowns_hold", rng.random(m) < 0.5),
        pl.Series("points", rng.integers(0, 100, m)).cast(pl.Float64),
        pl.lit("").alias("gaps"), pl.lit(False).alias("needs_review"))
    return keys, panel, rules


def test_score_and_explain_in_slices_equals_one_slice(tmp_path, monkeypatch):
    """Slicing the scored rows (SLICE) changes none of probabilities, ranks, reasons, global
    importance, the SHAP sample and the top rows' waterfalls; and they are the stub model's
    values: each probability the calibrated sum of the row's SHAP values."""
    from pipelines import run

    keys, panel, rules = _city(1_700, "2025Q4")
    outputs = {}
    for slice_rows in (10**9, 997, 1_000):
        out = tmp_path / str(slice_rows)
        (out / "tables").mkdir(parents=True)
        monkeypatch.setattr(run, "SLICE", slice_rows)
        candidates = run.score_and_explain(_StubModel(), keys, panel, rules, out)
        outputs[slice_rows] = (candidates, *(pl.read_parquet(out / "tables" / f"shap_{t}.parquet")
                                              for t in ("global", "sample", "top")))
    for slice_rows in (997, 1_000):
        for whole, sliced in zip(outputs[10**9], outputs[slice_rows], strict=True):
            assert_frame_equal(whole, sliced, check_exact=True)
    candidates, glob, sample, top = outputs[10**9]
    assert candidates.height == keys.height and sample.get_column("row_id").n_unique() == 2_000
    # the values are the stub's: reasons and probability of a row, the sample's SHAP = weight × value
    contrib, x, names = _StubModel().contributions(keys.join(panel.drop("name", "district"),
                                                             on=["uscc", "quarter"], how="left",
                                                             maintain_order="left"))
    probability = _StubModel().calibrate(contrib.sum(axis=1))
    expected = dict(zip(zip(keys["uscc"], keys["tier"]), zip(reasons(contrib, x, names), probability), strict=True))
    got = dict(zip(zip(candidates["uscc"], candidates["tier_key"]),
                   zip(candidates["reasons"], candidates["probability"]), strict=True))
    assert got == expected and len(set(candidates["reasons"])) > 100
    # ties in probability (the stub is coarse) are broken by points, then credit code
    ranked = candidates.with_columns(pl.when(pl.col("eligible")).then(0)
                                     .when(pl.col("eligible_if_unknowns_hold")).then(1).otherwise(2).alias("g"))
    assert candidates.get_column("probability").n_unique() <= 101
    for _, part in ranked.group_by("tier_key"):
        part = part.sort("rank")
        assert part.get_column("rank").to_list() == list(range(1, part.height + 1))
        assert_frame_equal(part, part.sort(["g", "probability", "points", "uscc"],
                                           descending=[False, True, True, False], maintain_order=True))
    row = sample.filter(pl.col("row_id") == sample["row_id"][0])
    i = int(row["row_id"][0])
    assert row["shap"].to_list() == [contrib[i, names.index(f)] for f in row["feature"]]
    assert np.array_equal(glob.sort("feature")["mean_abs_shap"].to_numpy(),
                          np.abs(contrib[:, : len(names)]).mean(axis=0)[np.argsort(names)], equal_nan=True)
    # the top rows' waterfalls: computed apart for the top rows the sample missed, same values
    assert top.height > 0 and set(top["rank"].to_list()) <= {1, 2, 3}
    assert (top["base_value"] == -1.5).all()
    position = {k: j for j, k in enumerate(zip(keys["uscc"], keys["tier"]))}
    for uscc, tier_key, feature, shap in top.select("uscc", "tier_key", "feature", "shap").iter_rows():
        assert shap == contrib[position[(uscc, tier_key)], names.index(feature)]
