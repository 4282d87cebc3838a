"""scoring.treeshap.tree_predict must equal LightGBM's raw-score predict bit for bit."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pytest
from lgb_cases import categorical_case, nodes, train
from lgb_cases import data as make_data

from scoring import treeshap
from scoring.treeshap import compile_model, fallback_reason, tree_predict, tree_shap


def _train(X, y, rounds=40, **params):
    return train(X, y, rounds, **{"num_leaves": 15, "max_depth": 8, **params})


def _check(booster, X, **kw):
    ref = booster.predict(X, raw_score=True, **kw)
    got = tree_predict(booster, X, **kw)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert np.array_equal(got, ref)  # exact, not allclose ...
    assert got.tobytes() == ref.tobytes()  # ... and bit for bit (-0.0, NaN payloads)
    return got


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def booster(data):
    X, y = data
    return _train(X, y, rounds=150, learning_rate=0.3)


# --- bit-for-bit agreement with predict(raw_score=True) -----------------------------------------


def test_matches_predict_with_nans_and_default_left(data, booster):
    X, _ = data
    splits = list(nodes(booster))
    assert any(n["missing_type"] == "NaN" and n["default_left"] for n in splits)
    assert any(n["missing_type"] == "NaN" and not n["default_left"] for n in splits)
    _check(booster, X)
    _check(booster, make_data(n=700, seed=1)[0])


def test_additions_in_lightgbm_s_order(data, booster):
    """The test data is sensitive to the order of additions: summing the same leaf values
    backwards differs in the last bits for some rows, and tree_predict still matches."""
    X, _ = data
    leaves = booster.predict(X, pred_leaf=True)
    dump = booster.dump_model()["tree_info"]
    values = np.empty(leaves.shape)
    for t, tree in enumerate(dump):
        by_leaf = {}
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "leaf_index" in node:
                by_leaf[node["leaf_index"]] = node["leaf_value"]
            else:
                stack += [node["left_child"], node["right_child"]]
        values[:, t] = [by_leaf[i] for i in leaves[:, t]]
    forwards = np.zeros(len(X))
    backwards = np.zeros(len(X))
    for t in range(values.shape[1]):
        forwards += values[:, t]
        backwards += values[:, -1 - t]
    ref = booster.predict(X, raw_score=True)
    assert np.array_equal(forwards, ref)
    assert not np.array_equal(backwards, ref)
    assert np.array_equal(tree_predict(booster, X), ref)


def test_zero_as_missing_use_missing_false_and_tiny_values():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2000, 5))
    X[rng.random(X.shape) < 0.3] = 0.0
    X[rng.random(X.shape) < 0.05] = np.nan
    y = ((X[:, 0] == 0) ^ (np.nan_to_num(X[:, 1]) > 0.2)).astype(int)
    special = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, 1e-34, -1e-30, np.nan, np.inf])
    Xt = X[:600].copy()
    Xt[:200] = rng.choice(special, size=(200, 5))
    zam = _train(X, y, zero_as_missing=True)
    assert "Zero" in {n["missing_type"] for n in nodes(zam)}
    _check(zam, Xt)
    nomiss = _train(np.nan_to_num(X), y, use_missing=False)
    assert {n["missing_type"] for n in nodes(nomiss)} == {"None"}
    _check(nomiss, Xt)  # NaNs at predict time are read as 0


def test_rows_exactly_on_thresholds(data, booster):
    X, _ = data
    rows = []
    for node in list(nodes(booster))[:300]:
        r = X[len(rows) % len(X)].copy()
        r[node["split_feature"]] = node["threshold"]
        rows.append(r)
    _check(booster, np.array(rows))


def test_categorical_splits():
    booster, Xt = categorical_case(rounds=30, extra_odd=[1e-36])
    assert compile_model(booster, shap_tables=False).stats["categorical_splits"] > 0
    _check(booster, Xt)


def test_num_iteration_start_iteration_and_best_iteration(data):
    X, y = data
    Xv, yv = make_data(n=600, seed=7)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=300,
        valid_sets=[lgb.Dataset(Xv, yv)],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=True,  # else the returned model is cut at best_iteration
    )
    assert 0 < booster.best_iteration < booster.current_iteration()
    full = booster.predict(Xv, raw_score=True, num_iteration=-1)
    assert not np.array_equal(_check(booster, Xv), full)  # None -> best_iteration, like predict
    for kw in (
        {"num_iteration": 3},
        {"num_iteration": -1},
        {"num_iteration": 0},
        {"num_iteration": 10_000},
        {"start_iteration": 4},
        {"start_iteration": 2, "num_iteration": 5},
        {"start_iteration": 10_000},  # no trees: zeros
    ):
        _check(booster, Xv, **kw)


def _with_constant_trees(booster, values: dict) -> lgb.Booster:
    """A copy of ``booster`` (whose first tree has one leaf) with trees ``i`` replaced by
    single-leaf trees of value ``values[i]``. LightGBM's training drops a tree that cannot split
    after the first iteration (and stops), but a model file may hold such trees."""
    head, rest = booster.model_to_string().split("\nTree=0\n", 1)
    head = "\n".join(ln for ln in head.split("\n") if not ln.startswith("tree_sizes="))
    trees, tail = rest.split("\nend of trees", 1)
    blocks = ("Tree=0\n" + trees).strip("\n").split("\n\n\n")
    assert "\nnum_leaves=1\n" in blocks[0]
    for i, v in values.items():
        blocks[i] = "\n".join(
            f"Tree={i}" if ln.startswith("Tree=") else
            f"leaf_value={v!r}" if ln.startswith("leaf_value=") else ln
            for ln in blocks[0].split("\n")
        )  # fmt: skip
    text = head + "\n" + "\n\n\n".join(blocks) + "\n\n\nend of trees" + tail
    return lgb.Booster(model_str=text)


def test_single_leaf_trees():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(500, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) > 0).astype(int)
    # first iteration cannot split -> a constant tree holding the init score, then normal trees
    mixed = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=10,
        callbacks=[lgb.reset_parameter(min_gain_to_split=[1e9] + [0] * 9)],
    )
    n_leaves = [t["num_leaves"] for t in mixed.dump_model()["tree_info"]]
    assert n_leaves[0] == 1 and min(n_leaves[1:]) > 1
    _check(mixed, X)
    # later single-leaf trees (the kernel must add their values too)
    later = _with_constant_trees(mixed, {3: 0.1234567890123, 7: -0.0421, 9: 0.0})
    n_leaves = [t["num_leaves"] for t in later.dump_model()["tree_info"]]
    assert n_leaves[3] == n_leaves[7] == n_leaves[9] == 1 and n_leaves[4] > 1
    got = _check(later, X)
    assert not np.array_equal(got, mixed.predict(X, raw_score=True))
    _check(later, X, start_iteration=7)
    # constant label: the whole model is one single-leaf tree
    const = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, np.ones(500)), 3)
    assert const.num_trees() == 1
    _check(const, X)


def test_multiclass_and_regression(data):
    X, _y = data
    yk = (np.nan_to_num(X[:, 0]) > 0).astype(int) + (np.nan_to_num(X[:, 1]) > 0.5)
    multi = _train(X, yk, rounds=30, objective="multiclass", num_class=3)
    got = _check(multi, X[:500])
    assert got.shape == (500, 3)
    _check(multi, X[:500], start_iteration=5, num_iteration=7)
    target = np.nan_to_num(X[:, 0]) * 2 + np.nan_to_num(X[:, 3])
    reg = _train(X, target, rounds=60, objective="regression")
    assert _check(reg, X).shape == (len(X),)


def test_input_dtypes_layouts_and_frames(data, booster):
    X, _ = data
    for Xi in (np.asfortranarray(X[:300]), X[:300].astype(np.float32), X[:600:2]):
        _check(booster, Xi)
    empty = _check(booster, X[:0])
    assert empty.shape == (0,)
    with pytest.raises(ValueError):
        tree_predict(booster, X[:5, :-1])
    ref = booster.predict(X[:200], raw_score=True)
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X[:200], columns=[f"特征{i}" for i in range(X.shape[1])])
    assert fallback_reason(booster, df, predict=True) is None
    assert np.array_equal(tree_predict(booster, df), ref)
    pl = pytest.importorskip("polars")
    frame = pl.from_numpy(X[:200]).with_columns(pl.col("column_0").fill_nan(None))  # nulls
    assert np.array_equal(tree_predict(booster, frame), booster.predict(frame, raw_score=True))
    assert np.array_equal(tree_predict(booster, frame), ref)


def test_integer_input_is_read_as_float32_like_lightgbm():
    rng = np.random.default_rng(8)
    X = np.column_stack([rng.integers(2**24, 2**24 + 2, size=1000), rng.normal(size=1000)])
    y = (X[:, 0] > 2**24).astype(int)
    booster = _train(X.astype(np.float64), y, rounds=5)
    Xi = X.astype(np.int64)  # 2^24 + 1 is 2^24 in float32: left of the 2^24 + 0.5 split
    ref = booster.predict(Xi, raw_score=True)
    assert not np.array_equal(ref, booster.predict(Xi.astype(np.float64), raw_score=True))
    assert np.array_equal(tree_predict(booster, Xi), ref)
    assert np.array_equal(tree_predict(booster, Xi.tolist()), ref)


def test_threads_and_blocks_do_not_change_results(data, booster):
    X, _ = data
    ref = booster.predict(X, raw_score=True)
    for kw in ({"n_jobs": 1}, {"n_jobs": 2, "block_rows": 37}, {"n_jobs": 3, "block_rows": 1}):
        assert np.array_equal(tree_predict(booster, X, **kw), ref)


def test_shares_the_cached_parse_with_tree_shap(data):
    X, y = data
    booster = _train(X, y, rounds=5)
    tree_predict(booster, X[:10])
    parsed = treeshap._cache[booster][1]
    assert parsed.fallback.startswith("compiled without SHAP tables")
    with pytest.raises(RuntimeError, match="without SHAP tables"):
        parsed.shap_values(X[:10])
    tree_shap(booster, X[:10])  # builds the tables ...
    with_tables = treeshap._cache[booster][1]
    assert with_tables is not parsed and "tab" in with_tables.arrays
    _check(booster, X)
    assert treeshap._cache[booster][1] is with_tables  # ... which prediction then reuses


# --- fallbacks ----------------------------------------------------------------------------------


def test_fallback_random_forest_linear_trees_and_sparse(data, caplog):
    X, y = data
    rf = _train(X, y, rounds=5, boosting="rf", bagging_fraction=0.6, bagging_freq=1)
    assert "average_output" in fallback_reason(rf, predict=True)
    with caplog.at_level(logging.WARNING, logger="scoring.treeshap"):
        _check(rf, X[:100])
    assert "tree_predict: falling back" in caplog.text

    lin = _train(np.nan_to_num(X), y, rounds=3, linear_tree=True)
    assert "linear" in fallback_reason(lin, predict=True)
    _check(lin, np.nan_to_num(X[:100]))  # LightGBM predicts linear trees (unlike pred_contrib)

    sp = pytest.importorskip("scipy.sparse")
    booster = _train(X, y, rounds=5)
    Xs = sp.csr_matrix(np.nan_to_num(X[:50]))
    assert fallback_reason(booster, Xs, predict=True) == "sparse input"
    _check(booster, Xs)
    assert fallback_reason(booster, predict=True) is None


def test_leaf_set_widths_and_trees_with_more_than_64_leaves():
    X, y = make_data(n=4000, seed=9)
    big = _train(X, y, rounds=3, num_leaves=80, max_depth=-1, min_data_in_leaf=3)
    assert max(t["num_leaves"] for t in big.dump_model()["tree_info"]) > 64
    assert "> 64" in fallback_reason(big, predict=True)
    _check(big, X[:200])
    for leaves, width in ((64, np.uint64), (33, np.uint64), (32, np.uint32)):
        model = _train(X, y, rounds=3, num_leaves=leaves, max_depth=-1, min_data_in_leaf=3)
        assert max(t["num_leaves"] for t in model.dump_model()["tree_info"]) == leaves
        assert fallback_reason(model, predict=True) is None
        assert compile_model(model, shap_tables=False).arrays["n_rmask"].dtype == width
        _check(model, X)


def test_fallback_pandas_categorical():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(10)
    df = pd.DataFrame(
        {"a": rng.normal(size=800), "c": pd.Categorical(rng.choice(list("xyzw"), size=800))}
    )
    y = ((df["c"].isin(["x", "z"])) ^ (df["a"] > 0)).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_per_group": 5},
        lgb.Dataset(df, y),
        num_boost_round=10,
    )
    assert "pandas_categorical" in fallback_reason(booster, df, predict=True)
    _check(booster, df)
    codes = np.column_stack([df["a"].to_numpy(), df["c"].cat.codes.to_numpy()])
    assert fallback_reason(booster, codes, predict=True) is None
    _check(booster, codes)
