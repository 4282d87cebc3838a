"""The promotion model: out-of-time windows, the pooled + per-tier blend, its explanations, saving,
and `tidu run --model` scoring with a saved model."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from data_contracts.periods import Quarter
from features.catalog import load_catalog, model_features
from pipelines.cli import app
from pipelines.run import Timer, apply_rules, build_features, check_drop, load_warehouse, model_rows
from pipelines.synth import synthesize
from scoring.model import (
    DEFAULT_PARAMS,
    HORIZON,
    MIN_TIER_POSITIVES,
    PromotionModel,
    _quarter_index,
    make_labels,
    quarter_text,
    with_features,
)

END = Quarter(2025, 4)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A 1,500-firm city: its folder, drop, panel, rules and honours."""
    base = tmp_path_factory.mktemp("model")
    drop = base / "drop"
    synthesize(drop, enterprises=1500, quarters=14, seed=11, end_quarter=END, fmt="parquet")
    tables, report = check_drop(drop, base / "check", None, Timer())
    tables = load_warehouse(base / "w.duckdb", tables, report)
    panel = build_features(tables, END)
    rules, _ = apply_rules(panel, END)
    return base, drop, panel, rules, tables["honors"]


@pytest.fixture(scope="module")
def city(inputs):
    """The model trained from text keys (model_rows with make_labels) and the panel."""
    base, drop, panel, rules, honors = inputs
    keys = model_rows(panel, rules).join(make_labels(panel, honors, END), on=["uscc", "quarter", "tier"], how="left")
    catalog = load_catalog()
    monotone = {n: f.monotone for n, f in catalog.items() if f.monotone}
    model = PromotionModel(model_features(), monotone, dict(DEFAULT_PARAMS)).fit(keys, END, panel=panel)
    return base, drop, with_features(keys, panel), model


def _tables(base):
    """The tables the run reads, back from the fixture's warehouse."""
    from pipelines import warehouse

    con = warehouse.connect(base / "w.duckdb", read_only=True)
    try:
        return warehouse.read_tables(con)
    finally:
        con.close()


@pytest.fixture(scope="module")
def panel_files(inputs):
    """The fixture's panel as the run keeps it: on disk, built two quarters at a time."""
    from pipelines.panel_files import PanelFiles
    from pipelines.run import panel_quarters

    base, _, _, _, _ = inputs
    tables = _tables(base)
    folder = base / "panel"
    folder.mkdir()
    files = PanelFiles.build(tables, panel_quarters(tables, END), folder, at_once=2)
    assert tables == {}   # the last part takes them
    return files


def test_panel_files_hold_the_panel_and_give_back_what_each_stage_reads(inputs, panel_files):
    """Built two quarters at a time, the files hold the panel's rows (a quarter's features read no
    other quarter); read back whole, by quarter, or at some (firm, quarter) pairs."""
    _, _, panel, _, _ = inputs
    quarters = panel.get_column("quarter").unique().sort()
    assert len(panel_files.files) == (len(quarters) + 1) // 2 >= 4
    assert panel_files.sorted(panel.columns).equals(panel)
    scored = pl.col("quarter") == str(END)
    assert panel_files.read(scored).equals(panel.filter(scored))
    pairs = panel.select("uscc", "quarter").sample(500, seed=2)
    at = panel_files.at(pairs, ["uscc", "quarter", "revenue_ttm", "not_a_column"])
    assert at.columns == ["uscc", "quarter", "revenue_ttm"]
    assert at.sort("uscc", "quarter").equals(
        panel.join(pairs, on=["uscc", "quarter"], how="semi").select(at.columns))


def test_the_panel_can_let_its_tables_go_as_it_reads_them(inputs):
    """With release, each table leaves the dict as the panel reads it; the panel is the same."""
    base, _, panel, _, _ = inputs
    tables = _tables(base)
    assert {"enterprises", "filings", "patents", "honors"} <= set(tables)
    assert build_features(tables, END, release=True).equals(panel)
    assert tables == {}
    # A table read a second time is an error, not an empty table (typed_input reads with .get).
    from features.panel import _Taken

    taken = _Taken({"patents": panel})
    assert taken.get("patents") is panel and taken.get("projects") is None
    with pytest.raises(RuntimeError, match="read twice"):
        taken.get("patents")


def _qi(q: str) -> int:
    return Quarter.parse(q).index


def test_windows_are_out_of_time(city):
    _, _, rows, model = city
    w = model.window_
    train_last, tune, valid = w["train_quarters"][1], w["tuning_quarters"], w["validation_quarters"]
    assert tune[0] == tune[1] and valid[0] == valid[1]
    # A training row's four-quarter outcome window closes before the tuning quarter begins.
    assert _qi(train_last) + HORIZON <= _qi(tune[0])
    assert _qi(valid[0]) == _qi(tune[0]) + 1
    # The validation quarter is the last one whose outcome window is complete.
    assert _qi(valid[0]) == END.index - HORIZON
    assert w["refit_quarters"][1] == valid[0]


def test_keys_with_a_panel_train_the_same_model_as_wide_rows(city):
    """The run hands fit() keys and the panel (features joined after subsampling, so a province's
    firms × quarters × tiers are never held at full width); that must change nothing."""
    _, _, rows, model = city
    wide = PromotionModel(model.features, model.monotone, dict(model.params)).fit(rows, END)
    assert wide.model_id == model.model_id
    assert wide.calibrator_.a_ == model.calibrator_.a_ and wide.calibrator_.b_ == model.calibrator_.b_


def test_fit_refuses_rows_without_the_features(city):
    _, _, rows, model = city
    keys = rows.select("uscc", "quarter", "tier", "label")
    with pytest.raises(ValueError, match="missing"):
        PromotionModel(model.features, model.monotone, dict(model.params)).fit(keys, END)


def test_tiers_get_their_own_model_only_with_enough_positives(city):
    _, _, rows, model = city
    w = model.window_
    labeled = rows.filter(pl.col("label").is_not_null() & (pl.col("quarter") <= w["train_quarters"][1]))
    positives = dict(labeled.group_by("tier").agg(pl.col("label").sum()).iter_rows())
    assert w["tiers_with_own_model"], "no tier had enough positives for its own model"
    for tier in w["tiers_with_own_model"]:
        assert positives[tier] >= MIN_TIER_POSITIVES
        assert tier in model.boosters_
    for tier, reason in w["tiers_pooled_only"].items():
        assert tier not in model.boosters_ and str(positives.get(tier, 0)) in reason
    assert None in model.boosters_  # the pooled model is always there


def test_margin_is_the_mean_of_pooled_and_own_tier_model(city):
    _, _, rows, model = city
    now = rows.filter(pl.col("quarter") == str(END))
    x, _ = model.design(now)
    pooled = model.boosters_[None].predict(x, raw_score=True)
    margin = model.margin(now)
    tiers = now.get_column("tier").to_numpy()
    for tier in model.window_["tiers_with_own_model"]:
        idx = tiers == tier
        own = model.boosters_[tier].predict(x[idx], raw_score=True)
        # bit for bit: tree_predict gives LightGBM's raw scores, mixed as written here
        np.testing.assert_array_equal(margin[idx], 0.5 * pooled[idx] + 0.5 * own)
    alone = ~np.isin(tiers, model.window_["tiers_with_own_model"])
    assert alone.any()
    # a pooled-only tier with enough recognitions has its level: an offset on the pooled log-odds
    offsets = np.array([model.level_offsets_.get(t, 0.0) for t in tiers[alone]])
    assert (offsets != 0).any() and (offsets == 0).any()
    np.testing.assert_array_equal(margin[alone], pooled[alone] + offsets)


def test_a_large_sample_trains_the_pooled_booster_at_the_faster_rate(city, monkeypatch):
    """From LARGE_SAMPLE_ROWS training rows (a province's sample) the pooled booster learns at
    LARGE_SAMPLE_POOLED_RATE and the tiers' own boosters at the model's rate; below, all at the
    model's rate. The rates are the boosters' own (their model text) and in the window."""
    import re

    import scoring.model as model_module

    _, _, rows, small = city

    def rate(booster) -> float:
        return float(re.search(r"\[learning_rate: ([0-9.e+-]+)\]", booster.model_to_string()).group(1))

    assert {rate(b) for b in small.boosters_.values()} == {DEFAULT_PARAMS["learning_rate"]}
    assert set(small.window_["learning_rate"].values()) == {DEFAULT_PARAMS["learning_rate"]}
    # the city's training sample just reaches the line
    monkeypatch.setattr(model_module, "LARGE_SAMPLE_ROWS", small.window_["rows_train"])
    large = PromotionModel(small.features, small.monotone, dict(DEFAULT_PARAMS)).fit(rows, END)
    assert large.window_["rows_train"] == small.window_["rows_train"]
    assert rate(large.boosters_[None]) == model_module.LARGE_SAMPLE_POOLED_RATE != DEFAULT_PARAMS["learning_rate"]
    assert len(large.boosters_) > 1
    assert {rate(b) for t, b in large.boosters_.items() if t is not None} == {DEFAULT_PARAMS["learning_rate"]}
    assert large.window_["learning_rate"]["pooled"] == model_module.LARGE_SAMPLE_POOLED_RATE


def test_contributions_are_exact_and_add_up_to_the_margin(city):
    _, _, rows, model = city
    now = rows.filter(pl.col("quarter") == str(END)).sample(3000, seed=1)
    contrib, x, names = model.contributions(now)
    assert contrib.shape == (now.height, len(names) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), model.margin(now), rtol=0, atol=1e-9)
    # Against LightGBM's own pred_contrib, blended the same way.
    reference = model.boosters_[None].predict(x, pred_contrib=True)
    tiers = now.get_column("tier").to_numpy()
    for tier in model.window_["tiers_with_own_model"]:
        idx = tiers == tier
        assert idx.any()
        reference[idx] = 0.5 * reference[idx] + 0.5 * model.boosters_[tier].predict(x[idx], pred_contrib=True)
    for tier, offset in model.level_offsets_.items():   # a pooled-only tier's level: in its base value
        reference[tiers == tier, -1] += offset
    np.testing.assert_allclose(contrib, reference, rtol=0, atol=1e-9)


def test_more_invention_patents_never_lower_the_score(city):
    _, _, rows, model = city
    now = rows.filter(pl.col("quarter") == str(END)).sample(2000, seed=2)
    assert model.monotone.get("invention_granted_valid") == 1
    base = model.margin(now)
    more = model.margin(now.with_columns(pl.col("invention_granted_valid").fill_null(0) + 3))
    filled = model.margin(now.with_columns(pl.col("invention_granted_valid").fill_null(0)))
    assert (more >= filled - 1e-12).all()
    assert (more > filled + 1e-9).any(), "the feature never moved the score"
    assert base.shape == more.shape


def test_a_pooled_only_tier_gets_the_level_of_its_recognitions(inputs, city):
    """The one calibration is fitted mostly on the blended tiers; a tier the pooled model scores
    alone gets an offset on its log-odds that brings its probabilities over the training and
    tuning quarters nearer its recognitions there (the penalised fit moves their sum towards the
    count, not onto it), and only with MIN_LEVEL_POSITIVES recognitions there. The offsets come
    from the validation model, so the same fit without the refit has the same ones."""
    from scoring.model import MIN_LEVEL_POSITIVES

    _, _, panel, rules, honors = inputs
    _, _, rows, model = city
    window = model.window_
    assert window["level_offsets"] == {t: round(c, 6) for t, c in model.level_offsets_.items()}
    first, last = (_quarter_index_of(window["train_quarters"][0]), _quarter_index_of(window["tuning_quarters"][-1]))
    seen = rows.filter(pl.col("label").is_not_null() & _quarter_index().is_between(first, last))
    counts = dict(seen.group_by("tier").agg(pl.col("label").sum()).iter_rows())
    pooled_only = set(window["tiers_pooled_only"])
    assert set(model.level_offsets_) == {t for t in pooled_only if counts.get(t, 0) >= MIN_LEVEL_POSITIVES}
    assert model.level_offsets_ and set(model.level_offsets_) != pooled_only   # both cases in this city
    keys = model_rows(panel, rules).join(make_labels(panel, honors, END), on=["uscc", "quarter", "tier"], how="left")
    study = PromotionModel(model.features, model.monotone, dict(DEFAULT_PARAMS)).fit(keys, END, refit=False, panel=panel)
    assert study.level_offsets_ == model.level_offsets_
    a, b = study.calibrator_.a_, study.calibrator_.b_
    for tier, offset in study.level_offsets_.items():
        part = seen.filter(pl.col("tier") == tier)
        margin = study.margin(part)   # the pooled log-odds with the offset
        before = (1 / (1 + np.exp(-(a * (margin - offset) + b)))).sum()
        after = (1 / (1 + np.exp(-(a * margin + b)))).sum()
        assert abs(after - counts[tier]) < abs(before - counts[tier]), (tier, before, after, counts[tier])


def test_the_refit_model_adds_up_to_the_recognitions_it_was_trained_on(city):
    """The slope of the calibration is fitted out of time; its intercept is fitted again for the
    refit boosters, so that over the quarters they were trained on the probabilities add up to
    the recognitions (the tuning quarter's intercept, made for the older validation boosters,
    counted a move in the rates twice). The window records both intercepts."""
    _, _, rows, model = city
    first, last = (_quarter_index_of(q) for q in model.window_["refit_quarters"])
    refit = rows.filter(pl.col("label").is_not_null() & _quarter_index().is_between(first, last))
    expected = model.predict_proba(refit).sum()
    assert expected == pytest.approx(refit.get_column("label").sum(), rel=1e-9)
    calibration = model.window_["calibration"]
    assert calibration["a"] == round(model.calibrator_.a_, 6) and calibration["b_refit"] == round(model.calibrator_.b_, 6)
    assert calibration["b_refit"] != calibration["b_tuning"]


def _quarter_index_of(text: str) -> int:
    return Quarter.parse(text).index


def test_saved_model_predicts_identically(city, tmp_path):
    _, _, rows, model = city
    model.save(tmp_path / "m")
    loaded = PromotionModel.load(tmp_path / "m")
    now = rows.filter(pl.col("quarter") == str(END))
    np.testing.assert_array_equal(loaded.predict_proba(now), model.predict_proba(now))
    assert loaded.model_id == model.model_id
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert set(meta["boosters"]) == {"pooled", *model.window_["tiers_with_own_model"]}
    assert meta["data_hash"] == model.data_hash_ and meta["window"] == model.window_
    assert meta["level_offsets"] == model.level_offsets_ == loaded.level_offsets_
    for spec in meta["boosters"].values():
        booster = lgb.Booster(model_file=str(tmp_path / "m" / spec["file"]))
        assert booster.current_iteration() == spec["rounds"]


def test_run_with_a_saved_model_does_not_retrain(city):
    base, drop, _, _ = city
    runner = CliRunner()
    first, second = base / "run1", base / "run2"
    result = runner.invoke(app, ["run", str(drop), "--quarter", str(END), "--out", str(first), "--no-pdf"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["run", str(drop), "--quarter", str(END), "--out", str(second), "--no-pdf",
                                 "--model", str(first / "model")])
    assert result.exit_code == 0, result.output
    m1 = json.loads((first / "manifest.json").read_text())
    m2 = json.loads((second / "manifest.json").read_text())
    assert m2["model"]["id"] == m1["model"]["id"]
    assert not (second / "model").exists() or not any((second / "model").glob("booster*.txt"))
    c1 = pl.read_parquet(first / "tables" / "candidates.parquet").sort("uscc", "tier_key")
    c2 = pl.read_parquet(second / "tables" / "candidates.parquet").sort("uscc", "tier_key")
    assert c1.get_column("probability").to_list() == c2.get_column("probability").to_list()
    # Scoring builds the scored quarter's panel alone, and the lists and the allocation are the
    # same byte for byte as those of the run that built every quarter and trained.
    for name in ("candidates.csv", "allocation.csv", "memo.md"):
        assert (second / name).read_bytes() == (first / name).read_bytes(), name


def test_predicting_in_slices_changes_nothing(city, monkeypatch):
    import scoring.model as model_module

    _, _, rows, model = city
    now = rows.filter(pl.col("quarter") == str(END))
    whole = model.margin(now)
    monkeypatch.setattr(model_module, "PREDICT_CHUNK", 997)
    assert now.height > 3 * 997
    np.testing.assert_array_equal(model.margin(now), whole)


def test_subsampling_keeps_every_positive_and_reweights_negatives(city):
    from scoring.model import ModelKeys, _subsample

    _, _, rows, _ = city
    keys = ModelKeys.from_rows(rows.filter(pl.col("label").is_not_null()))
    labeled = keys.frame.with_columns(keys.draws(keys.frame, seed=3))
    kept = _subsample(labeled, cap=20_000)
    positives = int(labeled.get_column("label").sum())
    assert int(kept.get_column("label").sum()) == positives
    negatives = kept.filter(pl.col("label") == 0)
    n_neg = labeled.height - positives
    # Weighted, the negatives stand for all of them (within the hash's sampling noise).
    assert abs(negatives.get_column("_w").sum() / n_neg - 1) < 0.05
    assert 0.9 * (20_000 - positives) < negatives.height < 1.1 * (20_000 - positives)
    assert _subsample(labeled, cap=labeled.height).get_column("_w").unique().to_list() == [1.0]
    # The draws are the rows' own: made in slices, or for another seed, the subsample is re-drawn
    # from the keys alone.
    assert keys.draws(keys.frame, seed=3, chunk=997).equals(labeled.get_column("_u"))
    other = _subsample(keys.frame.with_columns(keys.draws(keys.frame, seed=4)), cap=20_000)
    assert not other.get_column("_row").equals(kept.get_column("_row"))
    # A window thins the rows inside it, the same rows as thinning a copy of them.
    window = pl.col("_qi") <= pl.col("_qi").median()
    inside = _subsample(labeled, cap=8_000, window=window)
    assert inside.equals(_subsample(labeled.filter(window), cap=8_000))
    assert 0 < inside.height < labeled.filter(window).height


@pytest.mark.parametrize("share", [1e-7, 0.0123457, 1 / 3, 0.5, 0.999999, 0.9999995, 1.0, 3 / 7])
def test_a_share_keeps_the_draws_below_it(share):
    """The integer bound keeps the same draws as comparing each draw / 10⁶ with the share."""
    from scoring.model import _draws_below

    assert _draws_below(share) == np.count_nonzero(np.arange(1_000_000) / 1_000_000 < share)


@pytest.fixture(scope="module")
def integer_keys(inputs):
    """The run's integer keys of the same city (model_keys), with the rules as their verdict."""
    from pipelines.run import model_keys

    _, _, panel, rules, honors = inputs
    return model_keys(panel, rules, honors, END), panel


def test_integer_keys_are_the_text_keys_row_for_row(city, integer_keys):
    """model_keys builds, tier by tier, exactly the rows, order and labels of model_rows with
    make_labels (what the model was trained on before the keys became integers)."""
    _, _, rows, _ = city
    keys, _ = integer_keys
    text = keys.text(keys.frame)
    assert text.height == rows.height
    assert text.equals(rows.select("uscc", "quarter", "tier", pl.col("label").cast(pl.Int8)))
    assert keys.frame.schema["_f"] == pl.UInt32 and keys.frame.schema["_t"] == pl.UInt8


def test_integer_keys_of_a_panel_out_of_order_are_the_same_keys(inputs, integer_keys):
    """The run's panel comes sorted by credit code (a firm's number is then its run); a panel in
    another order is numbered by a join instead, to the same keys and labels."""
    from pipelines.run import model_keys

    _, _, panel, rules, honors = inputs
    keys, _ = integer_keys
    shuffled = model_keys(panel.sample(fraction=1.0, shuffle=True, seed=5), rules, honors, END)
    assert shuffled.firms.equals(keys.firms)
    on = ["uscc", "quarter", "tier"]
    assert shuffled.text(shuffled.frame).sort(on).equals(keys.text(keys.frame).sort(on))


def test_integer_keys_train_the_same_model_as_text_keys(city, integer_keys):
    _, _, _, model = city
    keys, panel = integer_keys
    again = PromotionModel(model.features, model.monotone, dict(model.params)).fit(keys, END, panel=panel)
    assert again.model_id == model.model_id
    assert again.data_hash_ == model.data_hash_
    assert again.window_ == model.window_
    assert again.metrics_ == model.metrics_
    # the validation rows carry the rule verdict joined from the rules, as the text keys carried it
    assert again.validation_.equals(model.validation_)


def test_a_panel_cut_to_the_plans_pairs_trains_the_same_model(city, integer_keys, panel_files, monkeypatch):
    """The run keeps only the panel rows the training plan reads (plan.pairs) and lets the rest go.
    With caps small enough that the negatives are subsampled, that cut is a fraction of the labelled
    quarters' rows, and the model fitted on it is the one fitted on the whole panel."""
    import scoring.model as sm

    monkeypatch.setattr(sm, "MAX_TRAIN_ROWS", 5_000)
    monkeypatch.setattr(sm, "MAX_TUNE_ROWS", 2_000)
    _, _, _, model = city
    keys, panel = integer_keys

    def fresh() -> PromotionModel:
        return PromotionModel(model.features, model.monotone, dict(model.params))

    plan = fresh().plan(keys, END)
    # the caps bind (a draw per row: about the cap, not exactly)
    labelled = keys.frame.filter(pl.col("label").is_not_null()).height
    assert plan.full.height < 1.1 * 5_000 < 0.1 * labelled and plan.tune.height < 1.1 * 2_000
    cut = panel.join(plan.pairs(), on=["uscc", "quarter"], how="semi")
    labelled_quarters = panel.filter(pl.col("quarter") <= str(Quarter.from_index(plan.last_labeled)))
    assert cut.height < 0.7 * labelled_quarters.height
    # every pair is a panel row the plan reads, once
    assert plan.pairs().height == cut.height
    on_cut = fresh().fit_plan(plan, cut)
    with pytest.raises(ValueError, match="already been fitted"):   # its labelled keys are gone
        fresh().fit_plan(plan, cut)
    # the cut attached to the plan (as the run does): the same model, and the plan lets it go
    attached = fresh().plan(keys, END)
    attached.panel = cut
    assert fresh().fit_plan(attached).model_id == on_cut.model_id and attached.panel is None
    # a cut without one of the model's columns is refused by name, as fit refuses a whole panel
    with pytest.raises(ValueError, match=f"missing from rows and panel: \\['{model.features[0]}'\\]"):
        fresh().fit_plan(fresh().plan(keys, END), cut.drop(model.features[0]))
    whole = fresh().fit(keys, END, panel=panel)
    assert on_cut.model_id == whole.model_id
    assert on_cut.window_ == whole.window_ and on_cut.window_["rows_refit"] == plan.full.height
    assert on_cut.validation_.equals(whole.validation_)
    assert on_cut.data_hash_ == whole.data_hash_ == model.data_hash_
    # the run reads the cut and the scored quarter from the panel's files (test_panel_files)
    history = panel_files.at(plan.pairs(), ["uscc", "quarter", *model.features])
    assert history.sort("uscc", "quarter").equals(cut.select("uscc", "quarter", *model.features))


def test_data_hash_is_the_sorted_csv_of_the_labelled_keys(city):
    """The digest streamed in slices from integer keys equals its definition: sha256 of the CSV of
    (uscc, quarter, tier, label) sorted by every column, in one piece."""
    import hashlib

    _, _, rows, model = city
    labeled = rows.filter(pl.col("label").is_not_null()).select("uscc", "quarter", "tier",
                                                                 pl.col("label").cast(pl.Int8))
    expected = hashlib.sha256(labeled.sort(labeled.columns).write_csv().encode()).hexdigest()[:16]
    assert model.data_hash_ == expected
    from scoring.model import ModelKeys

    keys = ModelKeys.from_rows(labeled)
    assert keys.data_hash(keys.frame, chunk=1009) == expected
    assert keys.data_hash(keys.frame.filter(pl.col("_t") != 0)) != expected


def test_design_matrix_is_the_rows_as_floats_row_major(city):
    """The matrix written a column at a time equals, bit for bit (NaN for null), the rows cast to
    floats as one Polars frame, and is row-major: what LightGBM and TreeSHAP read without a copy."""
    from scoring.model import TIERS, design_matrix, learn_categories

    _, _, rows, model = city
    rows = rows.sample(5000, seed=3)
    features = [*model.features, "not_in_the_rows"]
    categories = learn_categories(rows, features)
    assert categories and rows.select(pl.col(model.features[5:]).null_count()).sum_horizontal().item() > 0
    x, names = design_matrix(rows, features, categories)
    cols = []
    for f in features:
        if f in categories:
            cols += [(pl.col(f) == v).fill_null(False).cast(pl.Float64).alias(f"{f}={v}") for v in categories[f]]
        elif f in rows.columns:
            cols.append(pl.col(f).cast(pl.Float64))
        else:
            cols.append(pl.lit(None, pl.Float64).alias(f))
    cols += [(pl.col("tier") == t).cast(pl.Float64).alias(f"tier_{t}") for t in TIERS]
    reference = rows.select(cols)
    assert names == reference.columns
    assert x.flags.c_contiguous and x.dtype == np.float64
    assert np.array_equal(x.view(np.int64), reference.to_numpy().view(np.int64))
    assert np.isnan(x[:, names.index("not_in_the_rows")]).all()


def test_with_features_is_the_left_join_on_firm_and_quarter(inputs):
    """The panel cut to the rows' pairs first, then joined: the same frame as the plain left join
    — rows in their order, repeated pairs (one per tier), pairs the panel lacks left null."""
    _, _, panel, _, _ = inputs
    keys = panel.select("uscc", "quarter").sample(2_000, seed=5)
    rows = (pl.concat([keys.with_columns(pl.lit(t).alias("tier")) for t in ("eaglet", "gazelle")])
            .vstack(pl.DataFrame({"uscc": ["91320282MA00000000"], "quarter": [str(END)], "tier": ["eaglet"]}))
            .sample(fraction=1.0, shuffle=True, seed=6))
    got = with_features(rows, panel)
    plain = rows.join(panel, on=["uscc", "quarter"], how="left", maintain_order="left")
    assert_frame_equal(got, plain)
    assert got.height == rows.height and got.get_column("uscc").to_list() == rows.get_column("uscc").to_list()
    assert got.filter(pl.col("uscc") == "91320282MA00000000").get_column("name").to_list() == [None]


def test_quarter_text_inverts_the_quarter_index():
    quarters = [Quarter(2019, 4), Quarter(2025, 1), None, Quarter(2022, 3), Quarter(2019, 4)]
    qi = pl.Series("_qi", [q.index if q else None for q in quarters], dtype=pl.Int32)
    text = quarter_text(qi)
    assert text.to_list() == [str(q) if q else None for q in quarters]
    assert pl.DataFrame({"quarter": text}).select(_quarter_index()).to_series().to_list() == qi.to_list()
    assert quarter_text(pl.Series([], dtype=pl.Int32)).to_list() == []
    assert quarter_text(pl.Series([None], dtype=pl.Int32)).to_list() == [None]
