"""Data and LightGBM models shared by the tree kernels' tests (test_treeshap, test_tree_predict)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

# values a categorical split must send the way LightGBM does (NaN, negatives, fractions, words
# past the bitset, beyond int32)
ODD_CATEGORIES = [np.nan, -1.0, -0.5, 0.7, 3.9, 39.0, 40.0, 63.0, 64.0, 1e10, 2.0**31, -(2.0**31)]


def data(n=1500, F=8, nan_frac=0.1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, F))
    X[:, 2] = np.round(X[:, 2] * 2)  # ties and exact zeros
    X[rng.random((n, F)) < nan_frac] = np.nan
    Z = np.nan_to_num(X)
    logit = Z[:, 0] + Z[:, 1] * Z[:, 2] + np.sin(3 * Z[:, 3]) + 0.5 * np.isnan(X[:, 4])
    y = (logit + rng.logistic(size=n) > 0).astype(int)
    return X, y


def train(X, y, rounds, **params):
    base = {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5}
    return lgb.train({**base, **params}, lgb.Dataset(X, y), num_boost_round=rounds)


def nodes(booster):
    """Every split node of every tree, from the model dump."""
    for tree in booster.dump_model(num_iteration=-1)["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "leaf_index" not in node:
                yield node
                stack += [node["left_child"], node["right_child"]]


def categorical_case(rounds, extra_odd):
    """A booster with categorical splits on features 1 and 2, and 600 rows to check it on whose
    first rows hold ODD_CATEGORIES (and `extra_odd`) in those features."""
    rng = np.random.default_rng(5)
    n = 3000
    X = rng.normal(size=(n, 4))
    X[:, 1] = rng.integers(0, 40, n)
    X[:, 2] = rng.integers(0, 6, n)
    X[rng.random(n) < 0.1, 1] = np.nan
    y = ((np.isin(X[:, 1], [3, 7, 11, 19, 33]) ^ (X[:, 2] % 2 == 0)) | (X[:, 0] > 1.2)).astype(int)
    params = {"min_data_per_group": 5, "cat_smooth": 1, "cat_l2": 1, "max_cat_to_onehot": 4}
    booster = lgb.train(
        dict(objective="binary", num_leaves=15, verbose=-1, num_threads=1, **params),
        lgb.Dataset(X, y, categorical_feature=[1, 2]),
        num_boost_round=rounds,
    )
    odd = [*ODD_CATEGORIES, *extra_odd]
    Xt = X[:600].copy()
    Xt[: len(odd), 1] = odd
    Xt[len(odd) : 2 * len(odd), 2] = odd
    return booster, Xt
