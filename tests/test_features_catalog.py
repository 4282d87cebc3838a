"""The catalog describes exactly the panel's columns, with the panel's dtypes, and formats
values for people."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from data_contracts.periods import Quarter
from features.catalog import (
    categorical_features,
    format_value,
    label,
    load_catalog,
    model_features,
)
from features.panel import INPUT_SCHEMAS, KEYS, build_panel


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    enterprises = pl.DataFrame([{"uscc": "A", "founded_on": dt.date(2020, 1, 1)}],
                               schema=INPUT_SCHEMAS["enterprises"])
    return build_panel({"enterprises": enterprises}, [Quarter(2024, 1)])


def test_catalog_lists_every_panel_column_but_the_keys_and_nothing_else(panel):
    catalog = load_catalog()
    columns = [c for c in panel.columns if c not in KEYS]
    assert sorted(set(columns) - set(catalog)) == []
    assert sorted(set(catalog) - set(columns)) == []
    assert list(catalog) == columns                   # same order as the panel


def test_catalog_dtypes_match_the_panel(panel):
    for name, feature in load_catalog().items():
        assert panel.schema[name] == getattr(pl, feature.dtype), name


def test_model_features_exclude_identity_text_and_mark_categories():
    used = model_features()
    assert "name" not in used and "status" not in used and "uscc" not in used
    assert {"district", "chain_layer"} <= set(used)
    assert categorical_features() == ["district", "chain_layer"]
    catalog = load_catalog()
    assert catalog["ip_class_1"].monotone == 1 and catalog["rd_intensity_py"].monotone == 1
    assert catalog["debt_ratio"].monotone == 0


def test_labels_and_formatting():
    assert label("rd_intensity_py") == "研发费用占比(上年)"
    assert format_value("rd_intensity_py", 0.031) == "3.1%"
    assert format_value("revenue_growth_yoy", -0.05) == "-5.0%"
    assert format_value("revenue_py", 1234.4) == "1,234 万元"
    assert format_value("rd_expense_py", 99.62) == "99.6 万元"
    assert format_value("post_money_last_yi", 3.256) == "3.26 亿元"
    assert format_value("post_money_last_usd_yi", 0.5) == "0.5 亿美元"
    assert format_value("ip_class_1", 6) == "6 件"
    assert format_value("employees", 1234) == "1,234 人"
    assert format_value("holds_little_giant", True) == "是"
    assert format_value("chain_leader_tie", False) == "否"
    assert format_value("age_years", 3.46) == "3.5 年"
    assert format_value("district", "环科园") == "环科园"
    assert format_value("revenue_py", None) == "未知"
    assert format_value("revenue_py", float("nan")) == "未知"
    with pytest.raises(KeyError, match="not in catalog.yaml"):
        label("no_such_feature")


def test_a_missing_value_says_what_it_means_where_the_catalog_knows():
    """years_since_<title> and months_since_last_round are null when the firm never held the title
    or never raised a round: the reasons say 从未认定 / 从未融资, not 未知 (an audit found
    "距最近一次雏鹰企业认定 未知 ↓" in 1,168 rows). A missing return stays 未知; a title recognised
    days before the quarter's end reads 不足 0.1 年, not 0.0 年."""
    from features.catalog import format_value, load_catalog

    catalog = load_catalog()
    since = [n for n in catalog if n.startswith("years_since_")]
    assert since and all(catalog[n].missing_text == "从未认定" for n in since)
    assert format_value("years_since_eaglet", None) == "从未认定"
    assert format_value("months_since_last_round", float("nan")) == "从未融资"
    assert format_value("rd_staff_share", None) == "未知"
    assert (format_value("years_since_eaglet", 0.02), format_value("years_since_eaglet", 0.05)) == ("不足 0.1 年", "0.1 年")


def test_a_null_from_a_table_the_drop_lacks_is_unknown_not_never():
    """Without a 融资 table, a firm's months since its last round are not known: 未知, not 从未融资
    (a review found the waterfalls saying 从未融资 for 24 bars of a drop without 融资.csv)."""
    from pathlib import Path

    from features.catalog import format_value
    from pipelines.ingest import Drop
    from pipelines.run import unknown_when_missing
    from scoring.explain import value_text

    assert format_value("months_since_last_round", None, source_given=False) == "未知"
    unknown = unknown_when_missing(Drop(Path("."), {}, [], ["financing"]))
    assert "months_since_last_round" in unknown and not any(n.startswith("years_since_") for n in unknown)
    assert value_text("months_since_last_round", float("nan"), unknown) == "未知"
    assert value_text("years_since_eaglet", float("nan"), unknown) == "从未认定"
