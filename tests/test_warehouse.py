"""The DuckDB warehouse: one file, idempotent loads, revisions kept, one transaction per drop."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines import warehouse


def _filings(value: float, period: str = "2024Q3") -> pl.DataFrame:
    return pl.DataFrame({"_row": [2], "uscc": ["914403001922038216"], "period": [period],
                         "revenue_ytd": [value]})


def _load(con, files, frame):
    did = warehouse.drop_id(files)
    return warehouse.load_drop(con, did, "drop", files, {}, {"filings": frame}, pl.DataFrame())


def test_same_drop_twice_changes_nothing(tmp_path):
    con = warehouse.connect(tmp_path / "w.duckdb")
    assert _load(con, {"财务快报.csv": "aaa"}, _filings(100.0)) is True
    assert _load(con, {"财务快报.csv": "aaa"}, _filings(100.0)) is False
    assert con.sql("SELECT count(*) FROM filings_history").fetchall()[0][0] == 1


def test_revision_replaces_for_scoring_and_both_stay(tmp_path):
    con = warehouse.connect(tmp_path / "w.duckdb")
    _load(con, {"财务快报.csv": "first"}, _filings(100.0))
    _load(con, {"财务快报.csv": "second"}, _filings(120.0))
    latest = warehouse.read_tables(con)["filings"]
    assert latest.get_column("revenue_ytd").to_list() == [120.0]
    history = con.sql("SELECT revenue_ytd, drop_id FROM filings_history ORDER BY drop_seq").fetchall()
    assert [h[0] for h in history] == [100.0, 120.0]
    assert history[0][1] == warehouse.drop_id({"财务快报.csv": "first"})


def test_failed_load_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "w.duckdb"
    con = warehouse.connect(path)
    _load(con, {"a": "1"}, _filings(100.0))
    bad = pl.DataFrame({"_row": [2], "uscc": ["X"], "period": ["2024Q4"], "revenue_ytd": ["not a number"]})
    with pytest.raises(Exception):
        _load(con, {"a": "2"}, bad)
    con.close()
    con = warehouse.connect(path, read_only=True)
    assert con.sql("SELECT count(*) FROM drops").fetchall()[0][0] == 1
    assert con.sql("SELECT count(*) FROM filings_history").fetchall()[0][0] == 1


def test_drop_id_is_content_addressed():
    assert warehouse.drop_id({"a.csv": "1", "b.csv": "2"}) == warehouse.drop_id({"b.csv": "2", "a.csv": "1"})
    assert warehouse.drop_id({"a.csv": "1"}) != warehouse.drop_id({"a.csv": "2"})


def test_a_column_added_by_a_later_version_is_added_to_an_older_warehouse(tmp_path):
    con = warehouse.connect(tmp_path / "w.duckdb")
    _load(con, {"财务快报.csv": "old"}, _filings(100.0))
    newer = _filings(120.0, "2024Q4").with_columns(pl.lit("美元").alias("currency_note"))
    _load(con, {"财务快报.csv": "new"}, newer)
    rows = con.sql("SELECT period, currency_note FROM filings_history ORDER BY drop_seq").fetchall()
    assert rows == [("2024Q3", None), ("2024Q4", "美元")]


def test_one_drop_is_read_from_its_history_and_equals_the_latest_view(tmp_path):
    """With one drop the history is read directly (no window); its rows are those of the
    latest-value view, sorted by key. A second drop brings the view back."""
    con = warehouse.connect(tmp_path / "w.duckdb")
    first = pl.DataFrame({"_row": [2, 3, 4], "uscc": ["B", "A", "A"], "period": ["2024Q3", "2024Q4", "2024Q3"],
                          "revenue_ytd": [1.0, 2.0, 3.0]})
    _load(con, {"财务快报.csv": "first"}, first)
    assert "FROM filings_history ORDER BY" in warehouse.latest_query(con, "filings")
    stored = warehouse.read_tables(con)["filings"]
    assert stored.select("uscc", "period").rows() == [("A", "2024Q3"), ("A", "2024Q4"), ("B", "2024Q3")]
    assert stored.equals(con.sql("SELECT * FROM filings ORDER BY uscc, period").pl())
    _load(con, {"财务快报.csv": "second"}, _filings(9.0, period="2024Q3").with_columns(uscc=pl.lit("A")))
    assert "FROM filings ORDER BY" in warehouse.latest_query(con, "filings")
    latest = warehouse.read_tables(con)["filings"]
    assert latest.select("uscc", "period", "revenue_ytd").rows() == [
        ("A", "2024Q3", 9.0), ("A", "2024Q4", 2.0), ("B", "2024Q3", 1.0)]


def test_a_drop_is_read_alone_whatever_the_file_holds(tmp_path):
    """A, then B (a revised value, a new firm), then A again: reading A gives A's rows and values;
    the view gives each key's latest value over every drop."""
    con = warehouse.connect(tmp_path / "w.duckdb")
    a = pl.DataFrame({"_row": [2, 3], "uscc": ["A", "B"], "period": ["2024Q3", "2024Q3"], "revenue_ytd": [1.0, 2.0]})
    b = pl.DataFrame({"_row": [2, 3], "uscc": ["A", "C"], "period": ["2024Q3", "2024Q3"], "revenue_ytd": [5.0, 7.0]})
    _load(con, {"财务快报.csv": "a"}, a)
    _load(con, {"财务快报.csv": "b"}, b)
    assert _load(con, {"财务快报.csv": "a"}, a) is False   # loaded before: not stored twice
    rows = warehouse.read_tables(con, drop=warehouse.drop_id({"财务快报.csv": "a"}))["filings"]
    assert rows.select("uscc", "revenue_ytd").rows() == [("A", 1.0), ("B", 2.0)]
    latest = warehouse.read_tables(con)["filings"]
    assert latest.select("uscc", "revenue_ytd").rows() == [("A", 5.0), ("B", 2.0), ("C", 7.0)]


def test_a_drop_checked_otherwise_now_replaces_its_rows(tmp_path):
    """The same files, loaded again when the checks accept other rows (a newer tidu, or a date no
    longer in the future): the drop's rows become what is accepted now, in its place among the
    drops; with the same counts a second load changes nothing."""
    con = warehouse.connect(tmp_path / "w.duckdb")
    files = {"财务快报.csv": "same"}
    did = warehouse.drop_id(files)

    def load(frame, quarantined):
        counts = {"filings": {"rows_read": 2, "rows_accepted": frame.height, "rows_quarantined": quarantined}}
        return warehouse.load_drop(con, did, "drop", files, counts, {"filings": frame}, pl.DataFrame())

    two = pl.DataFrame({"_row": [2, 3], "uscc": ["A", "B"], "period": ["2024Q3", "2024Q3"], "revenue_ytd": [1.0, 2.0]})
    _load(con, {"财务快报.csv": "earlier"}, _filings(9.0))
    assert load(two, 0) is True
    assert load(two.head(1), 1) is True
    assert load(two.head(1), 1) is False
    assert warehouse.read_tables(con, drop=did)["filings"].get_column("uscc").to_list() == ["A"]
    assert con.sql("SELECT drop_seq FROM drops ORDER BY drop_seq").fetchall() == [(1,), (2,)]
    assert con.sql("SELECT count(*) FROM filings_history WHERE drop_id = ?", params=[did]).fetchall() == [(1,)]


def test_the_latest_views_give_their_rows_in_key_order(tmp_path):
    """An analyst's `SELECT * FROM filings` gives the rows sorted by key, the same each time (the
    window alone gave them in the order its threads finished: an auditors' audit saw two identical
    runs' views differ in order)."""
    con = warehouse.connect(tmp_path / "w.duckdb")
    n = 60_000
    codes = [f"9132028200000{i % 977:05d}" for i in range(n)]
    periods = [f"20{20 + i % 5}Q{1 + i % 4}" for i in range(n)]
    frame = pl.DataFrame({"_row": range(2, n + 2), "uscc": codes, "period": periods,
                          "revenue_ytd": [float(i) for i in range(n)]}).unique(["uscc", "period"], keep="first")
    _load(con, {"财务快报.csv": "many"}, frame.sample(fraction=1.0, shuffle=True, seed=3))
    rows = con.sql("SELECT uscc, period FROM filings").fetchall()
    assert rows == sorted(rows) and len(rows) == frame.height
