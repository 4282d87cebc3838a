"""A battery of broken drops through the CLI: clear messages, right exit codes, never a traceback."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.synth import synthesize

runner = CliRunner()
EVIL = '=HYPERLINK("http://x","y")'


@pytest.fixture(scope="module")
def clean_drop(tmp_path_factory) -> Path:
    drop = tmp_path_factory.mktemp("clean") / "drop"
    synthesize(drop, enterprises=120, quarters=12, seed=11)
    return drop


@pytest.fixture
def drop(clean_drop, tmp_path) -> Path:
    target = tmp_path / "drop"
    shutil.copytree(clean_drop, target, ignore=shutil.ignore_patterns("_synth"))
    return target


def _validate(drop: Path, out: Path):
    result = runner.invoke(app, ["validate", str(drop), "--out", str(out)])
    assert "Traceback" not in result.output
    return result


def _quarantine(out: Path) -> pl.DataFrame:
    return pl.read_csv(out / "quarantine.csv", infer_schema=False)


def test_clean_drop_validates(drop, tmp_path):
    result = _validate(drop, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "data_docs" / "index.html").exists()


@pytest.mark.parametrize("content,needle", [
    (b"", "文件为空"),
    ("统一社会信用代码,企业名称".encode("utf-16"), "UTF-16"),
    (b"\x00\x01\x02garbage" * 500, "二进制"),
])
def test_unreadable_enterprise_file_exits_2_naming_it(drop, tmp_path, content, needle):
    (drop / "企业登记.csv").write_bytes(content)
    result = _validate(drop, tmp_path / "out")
    assert result.exit_code == 2
    assert needle in result.output and "企业登记.csv" in result.output


@pytest.mark.parametrize("breakage,column", [
    (lambda cells: cells[:2] + ['"' + cells[2]] + cells[3:], 3),        # a quote left open
    (lambda cells: cells[:1] + [cells[1][:2] + '"' + cells[1][2:]] + cells[2:], 2),  # one inside a cell
    (lambda cells: cells[:3] + [f'"{cells[3]}"x'] + cells[4:], 4),       # text after the closing quote
], ids=["open quote", "quote inside a cell", "text after a quote"])
def test_a_csv_broken_by_quotes_names_its_row_and_column(drop, tmp_path, breakage, column):
    """polars cannot parse such a file at all: the message must still lead the clerk to the cell
    (row as the spreadsheet numbers it, column by its header), exit 2, no traceback."""
    path = drop / "企业登记.csv"
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    lines[6] = ",".join(breakage(lines[6].split(",")))      # spreadsheet row 7
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    result = _validate(drop, tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert f"企业登记.csv 第 7 行, 第 {column} 列「{header[column - 1]}」" in result.output, result.output


def test_header_only_file_is_read_with_zero_rows(drop, tmp_path):
    (drop / "融资.csv").write_text("统一社会信用代码,企业名称,融资日期,轮次,融资金额(万元)\n", encoding="utf-8-sig")
    result = _validate(drop, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "融资: 读取 0 行" in result.output


def test_truncated_xlsx_exits_2(drop, tmp_path):
    path = drop / "重点项目.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    wb.add_worksheet().write_row(0, 0, ["项目名称", "项目单位", "年度"])
    wb.close()
    path.write_bytes(path.read_bytes()[:200])
    (drop / "重点项目.csv").unlink(missing_ok=True)
    result = _validate(drop, tmp_path / "out")
    assert result.exit_code == 2 and "重点项目.xlsx: Excel 文件损坏或不完整" in result.output
    assert "另存为.xlsx" in "".join(result.output.split())   # what to do, in Chinese (lines wrap)


def test_a_broken_parquet_file_exits_2_saying_what_to_do(drop, tmp_path):
    (drop / "融资.csv").unlink()
    (drop / "融资.parquet").write_bytes(b"PAR1 cut off here")
    result = _validate(drop, tmp_path / "out")
    assert result.exit_code == 2
    assert "融资.parquet:Parquet文件损坏,无法读取;请向提供数据的部门索取完整的文件" in "".join(result.output.split())


def test_no_enterprises_table_exits_2(drop, tmp_path):
    (drop / "企业登记.csv").unlink()
    result = runner.invoke(app, ["run", str(drop), "--quarter", "2025Q4", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "企业登记" in result.output and "Traceback" not in result.output


def _edit_csv(path: Path, row: int, column: str, value: str) -> None:
    """Set one cell; `row` is the spreadsheet row (header = 1)."""
    frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == row - 2).then(pl.lit(value))
                               .otherwise(pl.col(column)).alias(column))
    path.write_bytes(b"\xef\xbb\xbf" + frame.write_csv().encode())


def test_findings_name_the_column_as_the_sheet_heads_it(drop, tmp_path):
    """The clerk looks for the column by the header their own sheet has: a unit written out
    (营业收入（单位：人民币万元）) or another accepted name (注册日期 for 成立日期) is the name given,
    in the column field and in the message, for a GX check and for an unreadable cell alike."""
    returns, registry = drop / "财务快报.csv", drop / "企业登记.csv"
    _edit_csv(returns, 5, "营业收入(万元)", "-5")
    _edit_csv(registry, 4, "成立日期", "去年春天")
    for path, old, new in ((returns, "营业收入(万元)", "营业收入（单位：人民币万元）"), (registry, "成立日期", "注册日期")):
        path.write_text(path.read_text(encoding="utf-8-sig").replace(old, new, 1), encoding="utf-8-sig")
    out = tmp_path / "out"
    _validate(drop, out)
    findings = pl.concat([_quarantine(out), pl.read_csv(out / "flags.csv", infer_schema=False)])
    found = findings.filter(pl.col("check").is_in(["revenue_ytd_nonnegative", "format_date"])).sort("file")
    assert found.select("file", "row", "column").rows() == [
        ("企业登记.csv", "4", "注册日期"), ("财务快报.csv", "5", "营业收入（单位：人民币万元）")]
    assert found["message"].to_list() == [
        '企业登记.csv 第 4 行, 注册日期: "去年春天" 不是有效的日期 (如 2024-03-05 或 2024年3月5日), 记为空值, 成立年限相关条件转人工核实',
        "财务快报.csv 第 5 行, 营业收入（单位：人民币万元）: 营业收入(万元) -5 为负数"]
    # the value as the clerk wrote it (no float `.0`), neutralised as every CSV cell starting with -
    assert found.filter(pl.col("file") == "财务快报.csv")["value"].to_list() == ["'-5"]


@pytest.mark.parametrize("file,column,value,check", [
    ("财务快报.csv", "报告期", "2024Q5", "format_period"),
    ("财务快报.csv", "营业收入(万元)", "NaN", "format_number"),
    ("财务快报.csv", "研发费用(万元)", "inf", "format_number"),
    ("企业登记.csv", "成立日期", "2099-01-01", "founded_not_future"),
    ("企业登记.csv", "统一社会信用代码", "91320282MA1MXXXXX", "uscc_valid"),
])
def test_bad_cells_are_quarantined_by_row_and_column(drop, tmp_path, file, column, value, check):
    _edit_csv(drop / file, 5, column, value)
    out = tmp_path / "out"
    result = _validate(drop, out)
    assert result.exit_code == 1
    q = _quarantine(out)
    hit = q.filter((pl.col("file") == file) & (pl.col("row") == "5") & (pl.col("check") == check))
    assert hit.height == 1, q
    assert hit.get_column("column").item() == column
    assert f"{file} 第 5 行" in hit.get_column("message").item()
    # told once per cell: an unreadable cell is not also reported as empty
    cell = q.filter((pl.col("file") == file) & (pl.col("row") == "5") & (pl.col("column") == column))
    assert cell.height == 1, cell


@pytest.mark.parametrize("column,value,check,says", [
    ("年度完成投资(亿元)", "-0.3", "completed_year_nonnegative", "年度完成投资 -0.3 为负数"),
    ("年度计划投资(亿元)", "99", "planned_year_within_total", "大于计划总投资"),
    ("年度", "1990", "year_in_span", "不在起止年限"),
    ("起止年限", "2022～2029年底", "span_format", "不是 起始年-结束年 的形式"),   # named in its own column
    ("计划总投资(亿元)", "约3亿", "format_number", "不是有效的数字"),
])
def test_bad_project_cells_are_quarantined(drop, tmp_path, column, value, check, says):
    """input-format.md's rules for 重点项目: each breach quarantines its row, naming the cell."""
    _edit_csv(drop / "重点项目.csv", 3, column, value)
    out = tmp_path / "out"
    assert _validate(drop, out).exit_code == 1
    hit = _quarantine(out).filter((pl.col("file") == "重点项目.csv") & (pl.col("check") == check))
    assert hit.select("row", "column").rows() == [("3", column)], hit
    assert says in hit.get_column("message").item()


@pytest.mark.parametrize("file,column,value,other_column,check,says", [
    ("资质荣誉.csv", "有效期至", "2001-01-01", "认定日期", "valid_after_recognized",
     "有效期至 2001-01-01 不晚于认定日期 {other}"),
    ("专利.csv", "授权公告日", "1990-01-01", "申请日", "granted_after_filed",
     "授权公告日 1990-01-01 早于申请日 {other}"),
])
def test_a_date_before_its_pair_names_both_dates(drop, tmp_path, file, column, value, other_column,
                                                  check, says):
    """The message gives the cell's value and the other date of the pair, not the cell twice."""
    other = pl.read_csv(drop / file, infer_schema=False)[other_column][1]   # spreadsheet row 3
    _edit_csv(drop / file, 3, column, value)
    out = tmp_path / "out"
    assert _validate(drop, out).exit_code == 1
    hit = _quarantine(out).filter((pl.col("file") == file) & (pl.col("check") == check))
    assert hit.select("row", "column").rows() == [("3", column)], hit
    assert hit.get_column("message").item() == f"{file} 第 3 行, {column}: " + says.format(other=other)


@pytest.mark.parametrize("file,column,check,later", [
    ("资质荣誉.csv", "认定日期", "recognized_not_future", "有效期至"),
    ("融资.csv", "融资日期", "financed_not_future", None),
    ("专利.csv", "申请日", "filed_not_future", "授权公告日"),
])
def test_an_event_dated_after_today_is_quarantined(drop, tmp_path, file, column, check, later):
    """A recognition, round or application dated 2052 (for 2025) is a typo: quarantined with the
    date, where before it was accepted and silently never counted."""
    _edit_csv(drop / file, 3, column, "2052-06-01")
    if later:  # emptied, so that only the date in question fails (not its pair's order)
        _edit_csv(drop / file, 3, later, "")
    out, before = tmp_path / "out", dt.date.today()
    assert _validate(drop, out).exit_code == 1
    hit = _quarantine(out).filter(pl.col("file") == file)
    assert hit.select("row", "column", "check").rows() == [("3", column, check)], hit
    # the check day is today, written as a date (the same words when the run is re-checked later)
    checked_on = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["checked_on"]
    assert before.isoformat() <= checked_on <= dt.date.today().isoformat()
    assert hit.get_column("message").item() == f"{file} 第 3 行, {column}: {column} 2052-06-01 晚于核验日 {checked_on}"


def test_rounds_as_financing_databases_write_them_are_not_flagged(drop, tmp_path):
    """`A轮` and `天使轮` (IT桔子's spelling) are the input format's A and 天使; `种子轮` is no round of
    it and stays flagged, as written."""
    for row, written in ((3, "A轮"), (4, "天使轮"), (5, "种子轮")):
        _edit_csv(drop / "融资.csv", row, "轮次", written)
    out = tmp_path / "out"
    assert _validate(drop, out).exit_code == 0
    flagged = pl.read_csv(out / "flags.csv", infer_schema=False).filter(pl.col("check") == "round_known")
    assert flagged.select("row", "value", "message").rows() == [
        ("5", "种子轮", '融资.csv 第 5 行, 轮次: 轮次 "种子轮" 不在常见轮次中')]


def test_rows_are_conserved(drop, tmp_path):
    _edit_csv(drop / "财务快报.csv", 7, "报告期", "2024Q5")
    out = tmp_path / "out"
    _validate(drop, out)
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    for item in manifest["inputs"]:
        assert item["rows_read"] == item["rows_accepted"] + item["rows_quarantined"]
    assert {i["table"]: i["rows_quarantined"] for i in manifest["inputs"]}["filings"] == 1


def test_the_same_patent_written_another_way_is_a_copy_not_a_second_patent(drop, tmp_path):
    """input-format.md: the same rows read twice must not count twice. `CN` before the number,
    no dot before the check digit and 专利类型 `发明专利` are the same patent as the row they copy:
    the copy is set aside (duplicate_row), and `发明专利` is read as 发明, not quarantined."""
    path = drop / "专利.csv"
    frame = pl.read_csv(path, infer_schema=False)
    first = frame.row(0, named=True)
    again = {**first, "申请号": "CN" + first["申请号"].replace(".", "")}
    renamed = {**frame.row(1, named=True), "专利类型": frame.row(1, named=True)["专利类型"] + "专利"}
    frame = pl.concat([frame, pl.DataFrame([again, renamed], schema=frame.schema)])
    path.write_bytes(b"\xef\xbb\xbf" + frame.write_csv().encode())
    out = tmp_path / "out"
    _validate(drop, out)
    quarantine = _quarantine(out).filter(pl.col("table") == "patents")
    rows = {r["row"]: r for r in quarantine.iter_rows(named=True)}
    copy_row, renamed_row = str(frame.height), str(frame.height + 1)   # header = row 1
    assert rows[copy_row]["check"] == "duplicate_row" and "与第 2 行内容相同" in rows[copy_row]["message"]
    assert rows[renamed_row]["check"] == "duplicate_row"   # 实用新型专利 is 实用新型: row 3 again
    assert not quarantine.filter(pl.col("check") == "patent_type_known").height


def test_the_same_recognition_written_another_way_is_a_copy(drop, tmp_path):
    """`雏鹰` for `雏鹰企业`, `高新技术企业（复审）` for `高新技术企业`, on the same day and firm, is the
    row it repeats; a name tidu does not know is compared as written (cleaned of quote marks)."""
    path = drop / "资质荣誉.csv"
    frame = pl.read_csv(path, infer_schema=False)
    first = frame.row(0, named=True)
    variants = {"高新技术企业": "高新技术企业（复审）", "雏鹰企业": "雏鹰", "科技型中小企业": " 科技型中小企业 "}
    again = {**first, "资质名称": variants.get(first["资质名称"], "「" + first["资质名称"] + "」")}
    other = {**first, "资质名称": "某某示范企业"}
    frame = pl.concat([frame, pl.DataFrame([again, other, {**other, "资质名称": "“某某示范企业”"}],
                                           schema=frame.schema)])
    path.write_bytes(b"\xef\xbb\xbf" + frame.write_csv().encode())
    out = tmp_path / "out"
    _validate(drop, out)
    quarantine = _quarantine(out).filter(pl.col("table") == "honors")
    again_row, other_row = frame.height - 1, frame.height    # header = row 1
    copies = quarantine.filter(pl.col("check") == "duplicate_row")
    assert copies["row"].to_list() == [str(again_row), str(frame.height + 1)]
    assert "与第 2 行内容相同" in copies["message"][0]
    assert f"与第 {other_row} 行内容相同" in copies["message"][1]
    assert quarantine.filter(pl.col("check") != "duplicate_row")["check"].unique().to_list() == ["honor_known"]
    manifest = json.loads((out / "manifest.json").read_text())
    honors = {i["table"]: i for i in manifest["inputs"]}["honors"]
    assert (honors["rows_read"], honors["rows_quarantined"]) == (frame.height, 2)


@pytest.mark.parametrize("column,check", [
    ("营业收入(万元)", "ytd_decreasing"), ("主营业务收入(万元)", "main_revenue_ytd_decreasing"),
    ("研发费用(万元)", "rd_expense_ytd_decreasing"),
])
def test_a_year_to_date_flow_that_falls_within_the_year_is_flagged(drop, tmp_path, column, check):
    """input-format.md: a year-to-date value that falls from one quarter to the next is a data
    problem, whichever flow it is (profits may fall: a loss lowers the year's total)."""
    path = drop / "财务快报.csv"
    frame = pl.read_csv(path, infer_schema=False)
    q2 = frame.filter(pl.col("报告期").str.ends_with("Q2") & (pl.col(column).cast(pl.Float64) > 1)).row(0, named=True)
    q3_row = frame.with_row_index().filter((pl.col("统一社会信用代码") == q2["统一社会信用代码"])
                                           & (pl.col("报告期") == q2["报告期"][:4] + "Q3"))["index"].item()
    lower = float(q2[column]) / 2                 # below Q2's: the year's total fell
    _edit_csv(path, q3_row + 2, column, f"{lower:.2f}")    # spreadsheet row: header = 1
    if column == "营业收入(万元)":                  # keep 主营业务收入 within 营业收入
        main = float(frame.row(q3_row, named=True)["主营业务收入(万元)"] or 0)
        _edit_csv(path, q3_row + 2, "主营业务收入(万元)", f"{min(main, lower):.2f}")
    out = tmp_path / "out"
    assert _validate(drop, out).exit_code == 0
    flags = pl.read_csv(out / "flags.csv", infer_schema=False).filter(pl.col("check") == check)
    assert flags.select("row").to_series().to_list() == [str(q3_row + 2)]
    assert "本年累计" in flags["message"].item() and "低于上一报告期" in flags["message"].item()


@pytest.mark.parametrize("file,column,value,check,severity", [
    ("专利.csv", "申请人", "", "applicants_present", "error"),
    ("专利.csv", "申请人", "无", "applicants_present", "error"),
    ("专利.csv", "专利类型", "", "patent_type_present", "warn"),
    ("重点项目.csv", "项目单位", "", "company_present", "error"),
])
def test_a_row_that_cannot_be_tied_to_a_firm_or_a_kind_is_named(drop, tmp_path, file, column, value,
                                                                 check, severity):
    """An empty 申请人 or 项目单位 can never be matched to a registered firm: the row is set aside
    with its reason, not accepted in silence. An empty 专利类型 keeps the patent in the totals
    only, which the clerk is told."""
    _edit_csv(drop / file, 3, column, value)     # (the small drop has three projects)
    out = tmp_path / "out"
    _validate(drop, out)
    found = pl.concat([_quarantine(out), pl.read_csv(out / "flags.csv", infer_schema=False)],
                      how="diagonal_relaxed").filter(pl.col("check") == check)
    assert found.select("row", "column", "severity").rows() == [("3", column, severity)]


def test_a_financing_row_whose_name_is_another_firms_is_flagged(drop, tmp_path):
    """The credit code decides whose round it is; a 企业名称 that is another registered firm's is
    said in flags.csv, not passed over."""
    financing = pl.read_csv(drop / "融资.csv", infer_schema=False)
    firms = pl.read_csv(drop / "企业登记.csv", infer_schema=False)
    code = financing.row(0, named=True)["统一社会信用代码"]
    other = firms.filter(pl.col("统一社会信用代码") != code).row(0, named=True)["企业名称"]
    _edit_csv(drop / "融资.csv", 2, "企业名称", other)
    out = tmp_path / "out"
    _validate(drop, out)
    flags = pl.read_csv(out / "flags.csv", infer_schema=False).filter(pl.col("check") == "company_matches_code")
    assert flags.select("row", "column").rows() == [("2", "企业名称")]
    assert "已按信用代码" in flags["message"].item()


def test_a_project_ledger_without_its_district_column_is_refused(drop, tmp_path):
    """input-format.md lists 所属板块 among 重点项目's columns without "optional" (its cells may be
    empty): a ledger without the column stops the drop, naming it."""
    path = drop / "重点项目.csv"
    frame = pl.read_csv(path, infer_schema=False).drop("所属板块")
    path.write_bytes(b"\xef\xbb\xbf" + frame.write_csv().encode())
    result = _validate(drop, tmp_path / "out")
    assert result.exit_code == 2 and "重点项目.csv: 缺少必需的列 所属板块" in result.output.replace("\n", "")


def test_huge_cell_does_not_crash(drop, tmp_path):
    _edit_csv(drop / "专利.csv", 3, "专利名称", "专" * 17_000_000)  # ~50 MB in UTF-8
    result = _validate(drop, tmp_path / "out")
    assert result.exit_code in (0, 1), result.output


def test_formula_name_is_accepted_as_data(drop, tmp_path):
    _edit_csv(drop / "企业登记.csv", 4, "企业名称", EVIL)
    out = tmp_path / "out"
    _validate(drop, out)
    q = _quarantine(out)
    assert q.filter((pl.col("table") == "enterprises") & (pl.col("row") == "4")).height == 0
    names = q.get_column("message").to_list()
    assert all(not m.startswith(("=", "+", "-", "@")) for m in names)


def test_missing_industry_code_is_not_flagged_but_a_wrong_one_is(drop, tmp_path):
    _edit_csv(drop / "企业登记.csv", 6, "行业代码", "")
    _edit_csv(drop / "企业登记.csv", 7, "行业代码", "C6513")
    out = tmp_path / "out"
    _validate(drop, out)
    flags = pl.read_csv(out / "flags.csv", infer_schema=False).filter(pl.col("check") == "industry_code_valid")
    assert flags.get_column("row").to_list() == ["7"]
    assert "门类 I" in flags.get_column("message").item()


def test_a_return_for_a_quarter_not_yet_over_is_quarantined(drop, tmp_path):
    """2025Q4 typed as 2026Q4, checked on 2026-03-01: the quarter had not ended, so the row is a
    typo, set aside with the check day named (it was accepted, and the firm's 2025Q4 went missing)."""
    path = drop / "财务快报.csv"
    frame = pl.read_csv(path, infer_schema=False)
    row = frame.with_row_index().filter(pl.col("报告期") == "2025Q4")["index"][0] + 2
    _edit_csv(path, row, "报告期", "2026Q4")
    out = tmp_path / "out"
    result = runner.invoke(app, ["validate", str(drop), "--out", str(out), "--checked-on", "2026-03-01"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    found = _quarantine(out).filter(pl.col("check") == "period_not_future")
    assert found.select("row", "value").rows() == [(str(row), "2026Q4")]
    assert found["message"][0] == (f"财务快报.csv 第 {row} 行, 报告期: 报告期 2026Q4 在核验日 2026-03-01 时尚未结束, "
                                   "不可能已报送 (年份是否写错?)")


def test_a_key_clash_names_the_columns_that_differ(drop, tmp_path):
    """A registry row appended again with only 登记状态 changed: both rows are set aside (which is
    right cannot be told), and the message says which column differs, so the clerk need not
    compare the two rows cell by cell."""
    path = drop / "企业登记.csv"
    frame = pl.read_csv(path, infer_schema=False)
    again = {**frame.row(4, named=True), "登记状态": "注销"}
    frame = pl.concat([frame, pl.DataFrame([again], schema=frame.schema)])
    path.write_bytes(b"\xef\xbb\xbf" + frame.write_csv().encode())
    out = tmp_path / "out"
    _validate(drop, out)
    clash = _quarantine(out).filter(pl.col("check") == "duplicate_key_conflict")
    assert clash["row"].to_list() == ["6", str(frame.height + 1)]
    assert clash["message"][0].endswith(
        f"同一主键出现多行且数值不同 (第 6、{frame.height + 1} 行; 不同的列: 登记状态), 无法判断哪一行正确")


def test_a_drop_pasted_in_three_times_is_not_refused(drop, tmp_path):
    """Every file holding its rows three times over: the copies are set aside (warn), the data is
    whole, and the run goes on; an outside audit found it refused as "more than 50 % quarantined"
    while validate passed it. Rows lost to errors still count towards that line."""
    from pipelines.run import Timer, blocking_problems, check_drop

    for path in drop.glob("*.csv"):
        header, *body = path.read_text(encoding="utf-8-sig").splitlines()
        path.write_text("\n".join([header, *body, *body, *body]) + "\n", encoding="utf-8-sig")
    _, result = check_drop(drop, tmp_path / "out", None, Timer())
    counts = result.counts["enterprises"]
    assert counts["rows_quarantined"] == 2 * counts["rows_accepted"] == 240
    assert blocking_problems(result) == []
    # two firms in three with a broken code, in every copy: those rows are errors, not copies kept
    path = drop / "企业登记.csv"
    header, *body = path.read_text(encoding="utf-8-sig").splitlines()
    n = len(body) // 3
    broken = [("X" + line[1:]) if i % n < 80 else line for i, line in enumerate(body)]
    path.write_text("\n".join([header, *broken]) + "\n", encoding="utf-8-sig")
    _, result = check_drop(drop, tmp_path / "out2", None, Timer())
    assert [p for p in blocking_problems(result) if "企业登记" in p] == [
        "「企业登记」表 360 行中有 240 行被隔离 (不计完全相同的重复行), 超过 50%, 数据整体不可用"]


def test_a_comma_inside_a_name_without_quotes_quarantines_the_row_it_shifts(drop, tmp_path):
    """`江苏某某公司,分公司` typed without double quotes: every later cell moves one column on (成立日期
    reads 分公司, 注册资本 a date, the last cell — the legal representative's ID number — falls off
    the end). The row was accepted with six warnings and a wrong 所属板块; now it is quarantined
    with one message for the row, which repeats none of its cells. Trailing empty cells are no
    such thing and pass."""
    path = drop / "企业登记.csv"
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    cells = lines[4].split(",")
    person = cells[-1]
    assert re.fullmatch(r"\d{17}[\dX]", person)     # the row's 法定代表人证件号, the last column
    cells[1] += ",分公司"
    lines[4] = ",".join(cells)
    lines[6] += ",,"                                  # row 7: two empty cells after the last column
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    out = tmp_path / "out"
    result = _validate(drop, out)
    assert result.exit_code == 1
    found = pl.concat([_quarantine(out), pl.read_csv(out / "flags.csv", infer_schema=False)])
    registry = found.filter(pl.col("file") == "企业登记.csv")
    assert registry.filter(pl.col("row") == "5").select("check", "column", "value").rows() == [("extra_cells", "整行", "1")]
    assert registry.filter(pl.col("row") == "5")["message"].item().startswith(
        "企业登记.csv 第 5 行, 整行: 本行比表头多 1 个有内容的单元格; 多半是某个单元格 (如企业名称) 中的英文逗号没有用双引号括起")
    assert registry.filter(pl.col("row") == "7").height == 0
    for name in ("quarantine.csv", "flags.csv", "manifest.json"):
        assert person not in (out / name).read_text(encoding="utf-8-sig")
    counts = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["inputs"]
    ents = next(i for i in counts if i["table"] == "enterprises")
    assert ents["rows_read"] == ents["rows_accepted"] + ents["rows_quarantined"] and ents["rows_quarantined"] >= 1


def test_a_row_one_cell_short_does_not_carry_an_id_number_into_the_warehouse(drop, tmp_path):
    """The comma between 链主企业 and 曾用名 left out: the row is one cell short, and the legal
    representative's ID number, dropped by its header when the file is read, lands in 曾用名 and
    would go on to the warehouse. The row is quarantined with one finding that names the column
    and not the number, and no output of the check holds it."""
    from pipelines.run import Timer, check_drop

    path = drop / "企业登记.csv"
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    cells = lines[4].split(",")
    person = cells[header.index("法定代表人证件号")]
    assert re.fullmatch(r"\d{17}[\dX]", person)
    at = header.index("曾用名")
    lines[4] = ",".join(cells[:at] + cells[at + 1:])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    out = tmp_path / "out"
    _, result = check_drop(drop, out, None, Timer())
    row = result.quarantine.filter((pl.col("table") == "enterprises") & (pl.col("row") == 5))
    assert row.select("check", "column").rows() == [("personal_id_in_cells", "整行")] and row["value"].item() is None
    assert "「曾用名」中有形如身份证号码的内容 (不在此显示)" in row["message"].item()
    accepted = result.accepted["enterprises"]
    assert not accepted.select(pl.any_horizontal(pl.col(pl.Utf8) == person)).to_series().any()
    for written in [*out.rglob("*.csv"), *out.rglob("*.html"), *out.rglob("*.json")]:
        assert person not in written.read_text(encoding="utf-8-sig", errors="ignore"), written


def test_an_id_number_shifted_into_a_column_of_another_kind_is_caught_as_written(drop, tmp_path):
    """input-format.md's registry has no 曾用名: 链主企业 (yes/no) stands before 法定代表人证件号.
    A cell left out earlier in the row moves the number into 链主企业, where it was read as no
    yes/no and printed in full by that column's own warning (an audit found it in flags.csv and the
    PDF). The cells are now checked as written, in every column."""
    from pipelines.run import Timer, check_drop

    path = drop / "企业登记.csv"
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    cut = header.index("曾用名")
    rows = [",".join(cells[:cut] + cells[cut + 1:]) for cells in (line.split(",") for line in lines)]
    cells = rows[4].split(",")
    person = cells[-1]
    assert re.fullmatch(r"\d{17}[\dX]", person)
    rows[4] = ",".join(cells[:5] + cells[6:])      # 所属板块 left out: 链主企业 now reads the number
    path.write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    out = tmp_path / "out"
    _, result = check_drop(drop, out, None, Timer())
    row = result.quarantine.filter((pl.col("table") == "enterprises") & (pl.col("row") == 5))
    assert row.select("check").to_series().to_list() == ["personal_id_in_cells"]
    assert "「链主企业」中有形如身份证号码的内容 (不在此显示)" in row["message"].item()
    for written in [*out.rglob("*.csv"), *out.rglob("*.html"), *out.rglob("*.json")]:
        assert person not in written.read_text(encoding="utf-8-sig", errors="ignore"), written
