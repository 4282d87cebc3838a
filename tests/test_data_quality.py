"""Data quality in CI: the GX suites run on the demo drop and on the test fixtures, and an
error-severity breach fails."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.synth import synthesize


def _validate(drop: Path, out: Path):
    result = CliRunner().invoke(app, ["validate", str(drop), "--out", str(out)])
    assert "Traceback" not in result.output
    return result


def test_demo_drop_passes_every_error_check(demo_drop, tmp_path):
    result = _validate(demo_drop, tmp_path / "dq")
    assert result.exit_code == 0, result.output
    docs = tmp_path / "dq" / "data_docs"
    assert (docs / "index.html").exists()
    pages = list((docs / "validations").rglob("*.html"))
    assert len(pages) == 6  # one validation page per table suite
    manifest = json.loads((tmp_path / "dq" / "manifest.json").read_text())
    assert all(i["rows_quarantined"] == 0 for i in manifest["inputs"])


def test_dirty_fixture_breaches_and_fails(tmp_path):
    drop = tmp_path / "dirty"
    synthesize(drop, enterprises=300, quarters=12, seed=9, dirty=True)
    out = tmp_path / "dq"
    result = _validate(drop, out)
    assert result.exit_code == 1
    quarantine = pl.read_csv(out / "quarantine.csv", infer_schema=False)
    faults = pl.read_csv(drop / "_synth" / "faults.csv", infer_schema=False)
    meant = faults.filter(pl.col("expect") == "quarantine").select("file", "row")
    caught = quarantine.filter(pl.col("severity") == "error").select("file", "row").unique()
    missed = meant.join(caught, on=["file", "row"], how="anti")
    assert missed.height == 0, missed  # every fault the generator meant to be quarantined is
    # the console counts rows as the files do: rows with an error, rows quarantined, rows warned
    said = " ".join(result.output.split())
    quarantined = quarantine.select("file", "row").n_unique()
    flags = pl.read_csv(out / "flags.csv", infer_schema=False)
    assert quarantined > caught.height   # copies of rows are quarantined without an error
    assert f"{caught.height} 行有错误, 未通过核验 (另有 {quarantined - caught.height} 行重复等也已隔离, 共 {quarantined} 行)" in said
    assert f"{flags.select('file', 'row').n_unique()} 行有警告 ({flags.height} 条;" in said


def _filings(rows: list[tuple]) -> pl.DataFrame:
    """Typed filings from (credit code, period, revenue, total assets) rows."""
    from data_contracts.coerce import coerce
    from data_contracts.schema import FILINGS

    raw = pl.DataFrame([(i + 2, *(None if v is None else str(v) for v in r)) for i, r in enumerate(rows)],
                       schema=["_row", "uscc", "period", "revenue_ytd", "total_assets"], orient="row")
    return coerce(FILINGS, raw, "财务快报.csv")[0]


def test_filing_checks_do_not_rely_on_credit_codes_hashing_apart():
    """With one hash bit every firm collides: the codes themselves order the rows, same verdicts."""
    from data_contracts import derive

    a, b = "914403001922038216", "91320282MA2UFF1N5L"
    frame = _filings([
        (a, "2024Q1", 100, 50), (a, "2024Q2", 250, 50), (a, "2024Q3", 200, 50), (a, "2024Q3", 260, 50),
        (a, None, 5, 50), (b, "2024Q1", 10, 5), (b, "2024Q2", 10_000_000, 5), (b, "2024Q3", 30, 5),
        (None, "2024Q1", 50, 1), (None, "2024Q2", 40, 1), (b, "2025Q1", 3, 5), (a, "2025Q2", 1, 50),
    ])
    order, codes = derive._by_firm(frame)
    by_codes, same_codes = derive._by_firm(frame, hash_bits=1)
    assert by_codes.get_column("_firm").dtype == pl.Utf8  # the collision was noticed
    distinct = sorted([a, b, None], key=str)
    assert sorted(codes.to_list(), key=str) == sorted(same_codes.to_list(), key=str) == distinct
    yuan, fall = derive._correct_yuan(frame, order), derive._ytd_decrease(frame, order)
    assert yuan.equals(derive._correct_yuan(frame, by_codes))
    assert fall.equals(derive._ytd_decrease(frame, by_codes))
    assert yuan.get_column("_p_unit_yuan").is_not_null().arg_true().to_list() == [6]
    assert fall.get_column("_p_ytd_decrease").is_not_null().arg_true().to_list() == [2, 7, 9]  # not 3: a revision


def test_a_row_in_yuan_has_only_its_out_of_scale_columns_converted():
    """Row 3 has its revenue typed in 元 and its assets in 万元: the revenue is divided by 10,000
    and the assets are kept (they were divided too, 19270.71 → 1.93); row 5 is in 元 throughout,
    and both are converted. The message names what was converted."""
    from data_contracts import derive

    a = "914403001922038216"
    frame = _filings([
        (a, "2024Q1", 1000.0, 19000.0), (a, "2024Q2", 21_000_000.0, 19270.71), (a, "2024Q3", 3100.0, 19400.0),
        (a, "2024Q4", 41_000_000.0, 195_000_000.0), (a, "2025Q1", 1050.0, 19600.0),
    ])
    order, _ = derive._by_firm(frame)
    fixed = derive._correct_yuan(frame, order)
    assert fixed.get_column("revenue_ytd").to_list() == [1000.0, 2100.0, 3100.0, 4100.0, 1050.0]
    assert fixed.get_column("total_assets").to_list() == [19000.0, 19270.71, 19400.0, 19500.0, 19600.0]
    messages = fixed.get_column("_p_unit_yuan")
    assert messages.is_not_null().arg_true().to_list() == [1, 3]
    assert "已将 营业收入 除以 10000" in messages[1] and "已将 营业收入、资产总计 除以 10000" in messages[3]
    assert fixed.get_column("original_values")[1].startswith("原值(元): revenue_ytd=21000000.0;")


def test_a_firm_in_yuan_throughout_is_flagged_by_its_size():
    """Every row of firm b in 元: nothing to compare with, so the size itself (over 100亿元) is
    flagged; firm a's one converted row is not flagged twice, and a's other rows are not."""
    from data_contracts import derive

    a, b = "914403001922038216", "91320282MA2UFF1N5L"
    frame = _filings([
        (a, "2024Q1", 1000.0, 19000.0), (a, "2024Q2", 21_000_000.0, 195_000_000.0), (a, "2024Q3", 3100.0, 19400.0),
        (b, "2024Q1", 3_200_000.0, 176_669_000.0), (b, "2024Q2", 6_400_000.0, 176_669_000.0),
    ])
    checked = derive.filing_checks(frame, frame.get_column("uscc").unique(), pl.Series([], dtype=pl.Utf8))
    scale = checked.get_column("_p_amount_scale")
    assert scale.is_not_null().arg_true().to_list() == [3, 4]
    assert scale[3].startswith("营业收入或资产总计超过 100 亿元 (176669000 万元)")


def test_gx_reads_only_the_columns_of_its_expectations_and_lets_them_go():
    import gc

    import pandas as pd

    from data_contracts import gx_runner
    from data_contracts.suites import SUITES

    n = 4321
    frame = pl.DataFrame({"_row": range(2, n + 2), "application_no": ["202310123456.X"] * n,
                          "title": ["甲"] * n, "patent_type": ["发明"] * n, "filed_on": [None] * n,
                          "_p_unmatched": [None] * n},
                         schema_overrides={"filed_on": pl.Date, "_p_unmatched": pl.Utf8})
    checks = [c for c in SUITES["patents"] if gx_runner._columns_present(c, frame)]
    data = gx_runner._to_pandas(frame, checks)
    assert set(data.columns) == {"_row", "application_no", "patent_type", "filed_on", "_p_unmatched"}
    assert isinstance(data["patent_type"].dtype, pd.CategoricalDtype)
    del data
    outcome = gx_runner.ContractRun(None).run({"patents": frame})
    failing = {c.id: rows for c, rows, _ in outcome["patents"]}
    assert failing["filed_present"] == list(range(2, n + 2)) and failing["patent_type_known"] == []
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, pd.DataFrame) and len(o) == n]


def test_each_check_gets_its_own_failing_rows_whatever_order_gx_returns_them_in(monkeypatch):
    """GX returns a suite's results grouped by the column they read, not in the suite's order:
    a suite that checks a column twice, with another check between, once gave one check's
    failing rows to its neighbour. Each result is matched to its check by the check's id."""
    from data_contracts import gx_runner
    from data_contracts.suites import _e

    frame = pl.DataFrame({"_row": list(range(2, 8)), "t": [None, "发明", "发明", "X", "发明", "发明"],
                          "v": ["x", "x", None, "x", "x", "x"], "_p_a": [None, None, None, None, "坏", None]})
    checks = [_e("a_ok", "error", "v", "", "null", {"derived": "_p_a"}),
              _e("t_known", "error", "t", "", "in_set", {"values": ("发明", "实用新型")}),
              _e("v_present", "error", "v", "", "not_null"),
              _e("t_present", "warn", "t", "", "not_null")]
    monkeypatch.setitem(gx_runner.SUITES, "interleaved", checks)
    failing = {c.id: rows for c, rows, _ in gx_runner.ContractRun(None).run({"interleaved": frame})["interleaved"]}
    assert failing == {"a_ok": [6], "t_known": [5], "v_present": [4], "t_present": [2]}


def test_check_ids_are_unique_within_each_suite():
    from data_contracts.suites import SUITES

    for table, checks in SUITES.items():
        ids = [c.id for c in checks]
        assert len(ids) == len(set(ids)), table


def test_a_flag_for_a_row_typed_in_yuan_shows_the_value_the_clerk_typed(tmp_path):
    """flags.csv's `value` for a row converted from 元 is the revenue as typed (10429300), the
    cell the clerk looks for, not the 万元 the warehouse keeps (1042.93)."""
    drop = tmp_path / "drop"
    drop.mkdir()
    code = "914403001922038216"
    (drop / "企业登记.csv").write_text(
        "统一社会信用代码,企业名称,成立日期,注册资本(万元),行业代码,所属板块,登记状态\n"
        f"{code},宜兴市示例科技有限公司,2015-03-05,500,C3963,环科园,存续\n", encoding="utf-8-sig")
    returns = [("2024Q1", "1000"), ("2024Q2", "2100"), ("2024Q3", "31000000"), ("2024Q4", "4100"), ("2025Q1", "1050")]
    (drop / "财务快报.csv").write_text(
        "统一社会信用代码,报告期,营业收入(万元),主营业务收入(万元),利润总额(万元),净利润(万元),研发费用(万元),"
        "资产总计(万元),负债合计(万元),从业人员期末人数,研发人员数\n"
        + "".join(f"{code},{p},{r},,,,,19000,,50,5\n" for p, r in returns), encoding="utf-8-sig")
    out = tmp_path / "out"
    result = _validate(drop, out)
    assert result.exit_code == 0, result.output
    flags = pl.read_csv(out / "flags.csv", infer_schema=False).filter(pl.col("check") == "unit_yuan")
    assert flags.select("row", "column", "value").rows() == [("4", "营业收入(万元)", "31000000")]
