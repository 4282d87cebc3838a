"""Real registry rows through `tidu validate`: nothing lost, every quarantined row explained.

The Jiangsu registration samples in ../shared/research-data/js-enterprise-registry (SOURCES.md) are
converted at test time, in tmp_path, into a drop holding one `企业登记.csv`; the data is never copied
into the repository. Registered capital keeps its real texts (`105(万元人民币)`, `5万人民币`,
`100万美元`, …) under a `注册资本` header without a unit. Source rows are counted here with the csv
module, independently of tidu's reader.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl

REGISTRY = "js-enterprise-registry"
FILE = "企业登记.csv"
HEADER = ["企业名称", "统一社会信用代码", "成立日期", "注册资本", "行业代码", "所属板块", "登记状态"]
LABELS = {"企业名称", "统一社会信用代码", "成立日期", "注册资本(万元)", "行业代码", "所属板块", "登记状态",
          "整行"}  # 整行: a duplicate row or key is about the whole row
LEGACY = "旧版 15 位"


@dataclass
class Converted:
    drop: Path
    codes: list[str]          # credit code of each data row, in file order (row = index + 2)
    capital: list[str]        # registered-capital text of each data row


@dataclass
class Outcome:
    exit_code: int
    counts: dict
    quarantine: pl.DataFrame


def _convert(research_data: Path, years: tuple[int, ...], drop: Path) -> Converted:
    """Write the registry samples of these years as one 企业登记.csv (UTF-8 with BOM)."""
    drop.mkdir(parents=True)
    codes, capital = [], []
    with open(drop / FILE, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for year in years:
            with open(research_data / REGISTRY / f"jiangsu_{year}.csv", encoding="utf-8", newline="") as f:
                for r in csv.DictReader(f):
                    writer.writerow([r["企业名称"], r["统一社会信用代码"], r["注册日期"], r["注册资金"], "",
                                     r["地区"], "存续"])
                    codes.append(r["统一社会信用代码"])
                    capital.append(r["注册资金"])
    return Converted(drop, codes, capital)


def _validate(drop: Path, out: Path) -> Outcome:
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["validate", str(drop), "--out", str(out)])
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    counts = next(i for i in manifest["inputs"] if i["table"] == "enterprises")
    q = pl.read_csv(out / "quarantine.csv", infer_schema=False).with_columns(pl.col("row").cast(pl.Int64))
    return Outcome(result.exit_code, counts, q)


def _assert_conserved_and_explained(conv: Converted, got: Outcome) -> None:
    c = got.counts
    assert c["rows_read"] == len(conv.codes), "rows lost or invented between the source files and tidu"
    assert c["rows_read"] == c["rows_accepted"] + c["rows_quarantined"]
    assert got.exit_code == (1 if c["rows_quarantined"] else 0)
    q = got.quarantine
    assert set(q.get_column("table")) <= {"enterprises"} and set(q.get_column("file")) <= {FILE}
    assert q.get_column("row").n_unique() == c["rows_quarantined"]
    errors = q.filter(_stops())
    assert errors.get_column("row").n_unique() == c["rows_quarantined"], "a quarantined row without a reason"
    for row, column, message in errors.select("row", "column", "message").iter_rows():
        assert 2 <= row <= len(conv.codes) + 1
        assert column in LABELS, column
        assert message.startswith(f"{FILE} 第 {row} 行, {column}: "), message


def _stops() -> pl.Expr:
    """The findings that quarantine a row: errors, and the copies of a duplicated row."""
    from data_contracts.suites import QUARANTINE_ON_WARN

    return (pl.col("severity") == "error") | pl.col("check").is_in(list(QUARANTINE_ON_WARN))


def _by_check(q: pl.DataFrame) -> dict[str, int]:
    """Quarantined rows per check that set them aside (a row may fail more than one)."""
    errors = q.filter(_stops())
    return dict(errors.group_by("check").agg(pl.col("row").n_unique()).iter_rows())


def test_registry_2018_2019_is_read_whole_and_every_credit_code_passes(research_data, tmp_path):
    conv = _convert(research_data, (2018, 2019), tmp_path / "drop")
    got = _validate(conv.drop, tmp_path / "out")
    _assert_conserved_and_explained(conv, got)
    q = got.quarantine
    assert q.filter(pl.col("check").is_in(["uscc_valid", "uscc_present"])).height == 0
    assert {len(code) for code in conv.codes} == {18}
    # A quarantined capital text is shown to the clerk exactly as the source file has it.
    capital = q.filter(pl.col("check") == "format_number")
    for row, value in capital.select("row", "value").iter_rows():
        assert value == conv.capital[row - 2]
    # Duplicate credit codes (none in this sample): every copy after the first is set aside.
    repeated = {code for code, n in Counter(conv.codes).items() if n > 1}
    set_aside = set(q.filter(pl.col("check").str.starts_with("duplicate")).get_column("row"))
    for code in repeated:
        rows = [i + 2 for i, c in enumerate(conv.codes) if c == code]
        assert set(rows[1:]) <= set_aside, code
    print(f"\n2018+2019: read {got.counts['rows_read']}, accepted {got.counts['rows_accepted']}, "
          f"quarantined {got.counts['rows_quarantined']} by check {_by_check(q)}; "
          f"duplicate codes {len(repeated)}; capital texts quarantined "
          f"{sorted(Counter(capital.get_column('value')).items())}")


def test_legacy_15_digit_numbers_are_quarantined_with_the_legacy_message(research_data, tmp_path):
    conv = _convert(research_data, (2008, 2010, 2011), tmp_path / "drop")
    got = _validate(conv.drop, tmp_path / "out")
    _assert_conserved_and_explained(conv, got)
    uscc = got.quarantine.filter(pl.col("check") == "uscc_valid")
    legacy_rows = {i + 2 for i, code in enumerate(conv.codes) if len(code) == 15}
    assert legacy_rows, "the 2008–2011 samples should hold 15-digit 工商注册号"
    assert set(uscc.get_column("row")) == legacy_rows, "only and all 15-digit numbers fail the code check"
    assert uscc.get_column("message").str.contains(LEGACY).all()
    assert uscc.get_column("column").unique().to_list() == ["统一社会信用代码"]
    print(f"\n2008+2010+2011: read {got.counts['rows_read']}, accepted {got.counts['rows_accepted']}, "
          f"quarantined {got.counts['rows_quarantined']} by check {_by_check(got.quarantine)}; "
          f"legacy numbers {len(legacy_rows)}")

