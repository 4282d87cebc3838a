"""scoring.treeshap.tree_shap must equal LightGBM's pred_contrib (1e-9) on every model shape."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import lightgbm as lgb
import numpy as np
import pytest
from lgb_cases import categorical_case, nodes, train
from lgb_cases import data as make_data

from scoring import treeshap
from scoring.treeshap import compile_model, fallback_reason, tree_shap

TOL = 1e-9


def _train(X, y, rounds=25, **params):
    return train(X, y, rounds, **{"num_leaves": 31, **params})


def _check(booster, X, **kw):
    ref = booster.predict(X, pred_contrib=True, **kw)
    got = tree_shap(booster, X, **kw)
    assert got.shape == ref.shape
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)
    return got


def _max_repeats(booster) -> int:
    """Largest (path length - distinct features on the path) over all leaves."""
    best = 0
    for tree in booster.dump_model(num_iteration=-1)["tree_info"]:
        stack = [(tree["tree_structure"], ())]
        while stack:
            node, path = stack.pop()
            if "leaf_index" in node:
                best = max(best, len(path) - len(set(path)))
                continue
            p = path + (node["split_feature"],)
            stack += [(node["left_child"], p), (node["right_child"], p)]
    return best


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def deep_model(data):
    X, y = data
    return _train(X, y, max_depth=-1)


# --- agreement with pred_contrib ----------------------------------------------------------------


@pytest.mark.parametrize("max_depth", [-1, 3, 6, 8])
def test_matches_pred_contrib_with_nans(data, max_depth):
    X, y = data
    booster = _train(X, y, max_depth=max_depth)
    Xt, _ = make_data(n=700, seed=1)
    _check(booster, Xt)
    _check(booster, X[:300])


@pytest.mark.parametrize(
    "full,compact,merge",
    [(10, 16, True), (10, 16, False), (-1, 16, True), (-1, -1, True), (2, 5, True), (4, 4, True)],
    ids=["default", "no-sibling-pairs", "compact-only", "on-the-fly-only", "mixed", "full+otf"],
)
def test_every_table_tier_is_exact(deep_model, data, full, compact, merge):
    X, _ = data
    model = compile_model(
        deep_model, full_table_depth=full, compact_table_depth=compact, merge_siblings=merge
    )
    assert model.stats["max_path_features"] > 5  # unlimited depth: some long paths
    if full < 0 and compact < 0:
        assert model.stats["leaves_on_the_fly"] == model.stats["leaves"]
    assert (model.stats["sibling_pairs"] > 0) == (merge and full >= 1)
    ref = deep_model.predict(X, pred_contrib=True)
    np.testing.assert_allclose(model.shap_values(X), ref, rtol=0, atol=TOL)
    got = tree_shap(deep_model, X, full_table_depth=full, compact_table_depth=compact)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)


def test_table_budget_pushes_leaves_to_cheaper_tiers(deep_model, data):
    X, _ = data
    model = compile_model(deep_model, table_budget_bytes=64 * 1024)
    assert model.stats["table_bytes"] <= 64 * 1024
    assert model.stats["leaves_on_the_fly"] + model.stats["leaves_compact_table"] > 0
    np.testing.assert_allclose(
        model.shap_values(X), deep_model.predict(X, pred_contrib=True), rtol=0, atol=TOL
    )


def test_repeated_features_on_a_path():
    rng = np.random.default_rng(3)
    X = rng.uniform(-3, 3, size=(3000, 3))
    y = ((np.sin(2.5 * X[:, 0]) + 0.3 * X[:, 1]) > 0).astype(int)  # x0 must be cut many times
    booster = _train(X, y, rounds=20, num_leaves=24)
    assert _max_repeats(booster) >= 3
    _check(booster, X)
    _check(booster, rng.uniform(-4, 4, size=(500, 3)))


def test_rows_exactly_on_thresholds(deep_model, data):
    X, _ = data
    rows = []
    for tree in deep_model.dump_model(num_iteration=-1)["tree_info"][:10]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "leaf_index" in node:
                continue
            r = X[len(rows) % len(X)].copy()
            r[node["split_feature"]] = node["threshold"]
            rows.append(r)
            stack += [node["left_child"], node["right_child"]]
    _check(deep_model, np.array(rows))


def test_zero_as_missing_and_tiny_values():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2000, 5))
    X[rng.random(X.shape) < 0.3] = 0.0
    X[rng.random(X.shape) < 0.05] = np.nan
    y = ((X[:, 0] == 0) ^ (np.nan_to_num(X[:, 1]) > 0.2)).astype(int)
    booster = _train(X, y, zero_as_missing=True)
    assert "Zero" in {n.get("missing_type") for n in nodes(booster)}
    special = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-35, 1e-34, -1e-30, np.nan, np.inf, -np.inf])
    Xt = X[:400].copy()
    Xt[:60] = rng.choice(special, size=(60, 5))
    _check(booster, Xt)


def test_use_missing_false_reads_nan_as_zero(data):
    X, y = data
    booster = _train(np.nan_to_num(X), y, use_missing=False)
    assert {n.get("missing_type") for n in nodes(booster)} == {"None"}
    _check(booster, X)  # NaNs at predict time


def test_categorical_splits():
    booster, Xt = categorical_case(rounds=20, extra_odd=[np.inf])
    assert compile_model(booster).stats["categorical_splits"] > 0
    _check(booster, Xt)


def test_single_leaf_trees():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(500, 4))
    y = (X[:, 0] > 0).astype(int)
    # first iteration cannot split -> a constant tree, then normal trees
    mixed = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=4,
        callbacks=[lgb.reset_parameter(min_gain_to_split=[1e9, 0, 0, 0])],
    )
    assert next(t["num_leaves"] for t in mixed.dump_model()["tree_info"]) == 1
    _check(mixed, X)
    # constant label: the whole model is one single-leaf tree
    const = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, np.ones(500)), 3)
    assert const.num_trees() == 1
    got = _check(const, X)
    assert np.all(got[:, :-1] == 0)


def test_num_iteration_start_iteration_and_best_iteration(data):
    X, y = data
    Xv, yv = make_data(n=600, seed=7)
    booster = lgb.train(
        {
            "objective": "binary",
            "num_leaves": 15,
            "verbose": -1,
            "num_threads": 1,
            "learning_rate": 0.3,
        },
        lgb.Dataset(X, y),
        num_boost_round=200,
        valid_sets=[lgb.Dataset(Xv, yv)],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=True,  # else the returned model is cut at best_iteration
    )
    assert 0 < booster.best_iteration < booster.current_iteration()
    _check(booster, Xv)  # num_iteration=None -> best_iteration, like predict
    for kw in (
        {"num_iteration": 3},
        {"num_iteration": -1},
        {"num_iteration": 0},
        {"num_iteration": 10_000},
        {"start_iteration": 4},
        {"start_iteration": 2, "num_iteration": 5},
        {"start_iteration": 10_000},
    ):
        _check(booster, Xv, **kw)


def test_additivity_row_sums_equal_raw_score(deep_model, data):
    X, _ = data
    contrib = tree_shap(deep_model, X)
    raw = deep_model.predict(X, raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, rtol=0, atol=1e-9)


def test_matches_shap_tree_explainer(data):
    shap = pytest.importorskip("shap")
    X, y = data
    booster = _train(X, y, rounds=10, max_depth=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(booster)
        sv = np.asarray(explainer.shap_values(X[:200])).reshape(200, -1)
    got = tree_shap(booster, X[:200])
    np.testing.assert_allclose(got[:, :-1], sv, rtol=0, atol=TOL)
    np.testing.assert_allclose(got[:, -1], np.ravel(explainer.expected_value)[0], atol=TOL)


def test_multiclass_and_regression(data):
    X, _y = data
    yk = (np.nan_to_num(X[:, 0]) > 0).astype(int) + (np.nan_to_num(X[:, 1]) > 0.5)
    multi = _train(X, yk, rounds=8, objective="multiclass", num_class=3)
    got = _check(multi, X[:300])
    assert got.shape == (300, 3 * (X.shape[1] + 1))
    target = np.nan_to_num(X[:, 0]) * 2 + np.nan_to_num(X[:, 3])
    _check(_train(X, target, rounds=15, objective="regression"), X[:300])


def test_input_dtypes_and_layouts(deep_model, data):
    X, _ = data
    for Xi in (np.asfortranarray(X[:200]), X[:200].astype(np.float32), X[:400:2]):
        expect = deep_model.predict(Xi, pred_contrib=True)
        np.testing.assert_allclose(tree_shap(deep_model, Xi), expect, rtol=0, atol=TOL)
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X[:200], columns=[f"特征{i}" for i in range(X.shape[1])])
    ref = deep_model.predict(X[:200], pred_contrib=True)
    np.testing.assert_allclose(tree_shap(deep_model, df), ref, rtol=0, atol=TOL)
    assert tree_shap(deep_model, X[:0]).shape == (0, X.shape[1] + 1)
    with pytest.raises(ValueError):
        tree_shap(deep_model, X[:5, :-1])


def test_threads_and_blocks_do_not_change_results(deep_model, data):
    X, _ = data
    a = tree_shap(deep_model, X, n_jobs=1)
    b = tree_shap(deep_model, X, n_jobs=2, block_rows=37)
    c = tree_shap(deep_model, X, n_jobs=3, block_rows=1)
    assert np.array_equal(a, b) and np.array_equal(a, c)


def _few_patterns(n=4000, seed=9):
    """Rows like tidu's: counts, one-hots, a few levels, zeros and NaN; they share few decision
    patterns per tree (the case _shap_kernel computes once per pattern)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.poisson(2.0, n),                      # a count
        rng.integers(0, 2, n),                    # a one-hot
        rng.integers(0, 2, n),
        np.round(rng.uniform(0, 1, n), 1),        # a share in tenths
        rng.choice([0.0, 5.0, 50.0, 500.0], n),   # amounts in a few sizes
        rng.normal(size=n),                       # one continuous feature
    ]).astype(np.float64)
    X[rng.random(X.shape) < 0.08] = np.nan
    Z = np.nan_to_num(X)
    y = (Z[:, 0] * (1 + Z[:, 1]) - 2 * Z[:, 2] + 3 * Z[:, 3] + (Z[:, 4] > 10) + 0.3 * Z[:, 5]
         + rng.logistic(size=n) > 2.5).astype(int)
    return X, y


@pytest.mark.parametrize("max_depth", [4, 8, -1])
def test_rows_sharing_decision_patterns(max_depth):
    """Per pattern (share 1: every tree) or per row (share 0): the same bits, whatever the
    blocks and threads, and LightGBM's values."""
    X, y = _few_patterns()
    booster = _train(X, y, rounds=40, max_depth=max_depth)
    model = compile_model(booster)
    ref = booster.predict(X, pred_contrib=True)
    by_row = model.shap_values(X, pattern_share=0.0, n_jobs=1)
    np.testing.assert_allclose(by_row, ref, rtol=0, atol=TOL)
    for share, block, jobs in [(1.0, 4096, 1), (1.0, 53, 2), (0.25, 1000, 2), (0.25, 1, 3)]:
        got = model.shap_values(X, pattern_share=share, block_rows=block, n_jobs=jobs)
        assert np.array_equal(got, by_row), (share, block, jobs)


def test_patterns_with_categorical_splits_and_odd_values():
    booster, Xt = categorical_case(rounds=20, extra_odd=[np.inf])
    model = compile_model(booster)
    ref = booster.predict(Xt, pred_contrib=True)
    for share in (0.0, 1.0):
        np.testing.assert_allclose(model.shap_values(Xt, pattern_share=share), ref, rtol=0, atol=TOL)


def test_trees_too_large_for_one_pattern_integer(data):
    """num_leaves 80: more internal nodes than bits in an int64 pattern; computed per row."""
    X, y = data
    booster = _train(np.vstack([X] * 4), np.concatenate([y] * 4), rounds=5, num_leaves=80,
                     min_data_in_leaf=2, max_depth=-1)
    model = compile_model(booster)
    assert model.max_int > treeshap.MAX_PATTERN_NODES
    np.testing.assert_allclose(model.shap_values(X, pattern_share=1.0),
                               booster.predict(X, pred_contrib=True), rtol=0, atol=TOL)


def test_cache_follows_booster_changes(data):
    X, y = data
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=3,
        keep_training_booster=True,
    )
    _check(booster, X[:100])
    booster.update()
    booster.update()
    # (LightGBM 4.7 aborts on pred_contrib after update(): take the reference from a reload)
    ref = lgb.Booster(model_str=booster.model_to_string()).predict(X[:100], pred_contrib=True)
    np.testing.assert_allclose(tree_shap(booster, X[:100]), ref, rtol=0, atol=TOL)


# --- fallbacks ----------------------------------------------------------------------------------


def test_fallback_random_forest_and_sparse(data, caplog):
    X, y = data
    rf = _train(X, y, rounds=5, boosting="rf", bagging_fraction=0.6, bagging_freq=1)
    assert "average_output" in fallback_reason(rf)
    with caplog.at_level(logging.WARNING, logger="scoring.treeshap"):
        _check(rf, X[:100])
    assert "falling back" in caplog.text

    sp = pytest.importorskip("scipy.sparse")
    booster = _train(X, y, rounds=5)
    Xs = sp.csr_matrix(np.nan_to_num(X[:50]))
    assert fallback_reason(booster, Xs) == "sparse input"
    got = tree_shap(booster, Xs)
    ref = booster.predict(Xs, pred_contrib=True)
    np.testing.assert_allclose(got.toarray(), ref.toarray(), rtol=0, atol=TOL)
    assert fallback_reason(booster) is None


def test_fallback_linear_trees_behaves_like_pred_contrib(data):
    X, y = data
    lin = _train(np.nan_to_num(X), y, rounds=3, linear_tree=True)
    assert "linear" in fallback_reason(lin)
    with pytest.raises(lgb.basic.LightGBMError):  # LightGBM has no SHAP for linear trees
        tree_shap(lin, X[:10])


# --- numba cache in a read-only location ----------------------------------------------------------


def test_works_when_no_numba_cache_dir_is_writable(tmp_path, data):
    """Module copied next to a ``__pycache__`` that is a *file* (cannot be created, even as
    root), HOME/XDG cache under a file, NUMBA_CACHE_DIR unset: the kernels must compile in memory
    and give the right answer, without writing cache files anywhere."""
    X, y = data
    booster = _train(X, y, rounds=5, max_depth=4)
    (tmp_path / "dump.json").write_text(json.dumps(booster.dump_model(num_iteration=-1)))
    np.save(tmp_path / "X.npy", X[:200])
    np.save(tmp_path / "ref.npy", booster.predict(X[:200], pred_contrib=True))

    pkg = tmp_path / "ro"
    pkg.mkdir()
    shutil.copy(treeshap.__file__, pkg / "treeshap_ro.py")
    (pkg / "__pycache__").write_text("not a directory")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, so nothing can be created below it")
    pkg.chmod(0o555)

    script = textwrap.dedent(
        f"""
        import json, sys, numpy as np
        sys.path.insert(0, {str(pkg)!r})
        import treeshap_ro as ts
        class Stub:
            def dump_model(self, num_iteration=None):
                return json.load(open({str(tmp_path / "dump.json")!r}))
        X = np.load({str(tmp_path / "X.npy")!r}); ref = np.load({str(tmp_path / "ref.npy")!r})
        got = ts.compile_model(Stub()).shap_values(X)
        assert np.abs(got - ref).max() <= 1e-9, np.abs(got - ref).max()
        print("OK", type(ts._shap_kernel._cache).__name__)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(HOME=str(blocker / "home"), XDG_CACHE_HOME=str(blocker / "cache"))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        pkg.chmod(0o755)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK NullCache" in proc.stdout  # numba found no cache locator: compiled in memory
    assert sorted(p.name for p in pkg.iterdir()) == ["__pycache__", "treeshap_ro.py"]
