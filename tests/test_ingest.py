"""Reading drop files: encodings, title rows, header variants, units, and files that cannot be read."""

from __future__ import annotations

import datetime as dt
import re

import polars as pl
import pytest
import xlsxwriter

from data_contracts import coerce as coerce_module
from data_contracts.coerce import coerce
from data_contracts.schema import (
    CODE,
    ENTERPRISES,
    FILINGS,
    FINANCING,
    PATENTS,
    PERIOD,
    TEXT,
    USCC,
    Column,
    Table,
)
from data_contracts.validate import TableInput, validate
from pipelines.ingest import DropError, drop_notes, read_drop, read_table
from pipelines.synth import synthesize

HEADER = "统一社会信用代码,企业名称,成立日期,注册资本(万元),行业代码,所属板块,登记状态"
ROW = "914403001922038216,宜兴市示例科技有限公司,2015-03-05,500,C3963,环科园,存续"


def _write(path, text, encoding="utf-8-sig"):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gb18030"])
def test_csv_encodings_are_detected(tmp_path, encoding):
    raw = read_table(ENTERPRISES, _write(tmp_path / "企业登记.csv", f"{HEADER}\n{ROW}\n", encoding))
    assert raw.frame.get_column("name").to_list() == ["宜兴市示例科技有限公司"]
    assert raw.frame.get_column("_row").to_list() == [2]
    assert raw.encoding == {"utf-8-sig": "utf-8-sig", "utf-8": "utf-8", "gb18030": "gb18030"}[encoding]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8"])
def test_utf8_checked_in_chunks_keeps_characters_split_across_chunks(tmp_path, encoding):
    """UTF-8 is checked a megabyte at a time: a character cut by a chunk's end is not an error."""
    rows = [ROW.replace("示例", f"示例{i:06d}") for i in range(30_000)]  # ≈ 2.5 MB, 3-byte characters
    for pad in range(3):  # shift the text until the first megabyte ends inside a character
        rows[0] = ROW.replace("示例", "示例" + "0" * pad)
        path = _write(tmp_path / "企业登记.csv", "\n".join([HEADER, *rows]) + "\n", encoding)
        if 0x80 <= path.read_bytes()[1 << 20] < 0xC0:
            break
    assert 0x80 <= path.read_bytes()[1 << 20] < 0xC0
    raw = read_table(ENTERPRISES, path)
    assert raw.encoding == encoding
    assert raw.frame.height == 30_000
    assert raw.frame.get_column("name").to_list()[-1] == "宜兴市示例029999科技有限公司"


def test_bom_file_with_a_bad_byte_names_its_offset(tmp_path):
    body = f"{HEADER}\n{ROW}\n".encode()
    path = tmp_path / "企业登记.csv"
    path.write_bytes(b"\xef\xbb\xbf" + body + b"\xff" + ROW.encode() + b"\n")
    with pytest.raises(DropError, match=f"企业登记.csv: 文件标明为 UTF-8 但第 {len(body)} 字节处无法解码"):
        read_table(ENTERPRISES, path)


def test_header_variants_units_and_extra_columns(tmp_path):
    text = ("统一社会信用代码 , 报告期,营业收入（元）,主营业务收入(万元),利润总额,净利润,研发费用（万元）,"
            "资产总计,负债合计,从业人员期末人数,研发人员数,备注\n"
            "914403001922038216,2024Q3,12345678,1000,10,8,50,900,300,40,8,无\n")
    raw = read_table(FILINGS, _write(tmp_path / "财务快报.csv", text))
    assert raw.unit_factors == {"revenue_ytd": 0.0001}
    assert raw.extra_columns == ["备注"]
    assert raw.frame.get_column("revenue_ytd").to_list() == ["12345678"]


@pytest.mark.parametrize("revenue_header,factor", [
    ("营业收入（人民币万元）", None), ("营业收入（单位：万元）", None), ("营业收入(万)", None),
    ("营业收入(本年累计)", None), ("营业收入/万元", None), ("营业收入_万元", None),
    ("营业收入（本年累计，元）", 0.0001), ("营业收入（单位：亿元）", 10_000.0),
])
def test_units_as_clerks_write_them_in_headers(tmp_path, revenue_header, factor):
    """`（单位：人民币万元）`, `(万)`, `/万元` name the unit; `(本年累计)` names none (the column's
    own, 万元); 元 and 亿元 are converted as before."""
    text = (f"统一社会信用代码,报告期,{revenue_header},主营业务收入,利润总额,净利润,研发费用,"
            "资产总计,负债合计,从业人员期末人数,研发人员数\n"
            "914403001922038216,2024Q3,1000,900,10,8,50,900,300,40,8\n")
    raw = read_table(FILINGS, _write(tmp_path / "财务快报.csv", text))
    assert raw.unit_factors == ({} if factor is None else {"revenue_ytd": factor})
    assert raw.frame.get_column("revenue_ytd").to_list() == ["1000"]


def test_a_unit_that_is_no_money_unit_still_stops_the_drop(tmp_path):
    text = ("统一社会信用代码,报告期,营业收入(万美元),主营业务收入,利润总额,净利润,研发费用,"
            "资产总计,负债合计,从业人员期末人数,研发人员数\n914403001922038216,2024Q3,1,1,1,1,1,1,1,1,1\n")
    with pytest.raises(DropError, match="单位「万美元」无法换算为万元"):
        read_table(FILINGS, _write(tmp_path / "财务快报.csv", text))


@pytest.mark.parametrize("title", ["2025年四季度企业登记台账\n", "2025年四季度企业登记台账\n\n",
                                   "2025年四季度企业登记台账,,,,,,\n"])
def test_csv_title_lines_above_the_header_are_counted_in_row_numbers(tmp_path, title):
    """A title typed above the header with no commas after it made polars read the file as one
    column (it takes the width from the first line), and the header was not found."""
    path = _write(tmp_path / "企业登记.csv", f"{title}{HEADER}\n{ROW}\n")
    raw = read_table(ENTERPRISES, path)
    header_row = title.count("\n") + 1
    assert raw.title_rows == header_row - 1
    assert raw.frame.get_column("_row").to_list() == [header_row + 1]
    assert raw.frame.get_column("uscc").to_list() == [ROW.split(",")[0]]


def test_xlsx_title_rows_are_counted_in_row_numbers(tmp_path):
    path = tmp_path / "企业登记.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    ws.merge_range(0, 0, 0, 6, "2025年四季度企业登记台账")
    ws.write_row(1, 0, HEADER.split(","))
    ws.write_row(2, 0, ROW.split(","))
    ws.write_row(3, 0, ROW.replace("示例", "样本").split(","))
    wb.close()
    raw = read_table(ENTERPRISES, path)
    assert raw.title_rows == 1
    assert raw.frame.get_column("_row").to_list() == [3, 4]  # title row 1, header row 2


def _workbook(path, sheets: dict[str, list[str]]) -> None:
    """An .xlsx file with the named sheets, each holding the given comma-separated rows."""
    wb = xlsxwriter.Workbook(str(path))
    for name, lines in sheets.items():
        ws = wb.add_worksheet(name)
        for i, line in enumerate(lines):
            ws.write_row(i, 0, line.split(","))
    wb.close()


@pytest.mark.parametrize("name", ["企业登记", " enterprises ", "Enterprises"])
def test_xlsx_sheet_named_for_the_table_is_read_before_a_first_sheet_of_notes(tmp_path, name):
    path = tmp_path / "企业登记.xlsx"
    _workbook(path, {"填报说明": ["本表由市场监管局提供", "联系人: 张三"], "Sheet2": ["某,其他,表"],
                     name: [HEADER, ROW]})
    raw = read_table(ENTERPRISES, path)
    assert raw.sheet == name
    assert raw.frame.get_column("name").to_list() == ["宜兴市示例科技有限公司"]
    assert raw.frame.get_column("_row").to_list() == [2]


def test_xlsx_without_a_named_sheet_reads_the_first_and_says_which(tmp_path):
    path = tmp_path / "企业登记.xlsx"
    _workbook(path, {"填报说明": ["本表由市场监管局提供"], "Sheet2": [HEADER, ROW]})
    with pytest.raises(DropError, match="读取的工作表: 「填报说明」.*命名为「企业登记」"):
        read_table(ENTERPRISES, path)
    _workbook(path, {"Sheet1": [HEADER, ROW], "企业登记汇总": ["合计,1"]})   # not the table's own name
    assert read_table(ENTERPRISES, path).sheet == "Sheet1"


def test_parquet_numbers_and_dates_stay_typed_the_rest_is_read_as_text(tmp_path):
    path = tmp_path / "enterprises.parquet"
    pl.DataFrame({"uscc": ["914403001922038216"], "name": ["甲"], "founded_on": [dt.date(2015, 3, 5)],
                  "registered_capital": [12.5], "industry_code": ["C3963"], "district": ["经开区"],
                  "status": ["存续"], "chain_leader": [True],
                  "former_names": pl.Series([1.5], dtype=pl.Float32)}).write_parquet(path)
    raw = read_table(ENTERPRISES, path)
    assert raw.frame.get_column("registered_capital").to_list() == [12.5]
    assert raw.frame.get_column("founded_on").to_list() == [dt.date(2015, 3, 5)]
    assert raw.frame.get_column("name").to_list() == ["甲"]
    assert raw.frame.get_column("chain_leader").to_list() == ["true"]
    assert raw.frame.get_column("former_names").to_list() == ["1.5"]


def test_parquet_cells_are_typed_exactly_as_their_text(tmp_path):
    """Numbers and dates kept as they are give the values and findings their text would."""
    filings = pl.DataFrame({
        "统一社会信用代码": ["914403001922038216"] * 7,
        "报告期": ["2024Q1", "2024Q2", "2024Q3", "2024Q4", None, "2023Q1", "2023Q2"],
        "营业收入(万元)": [1.5, float("nan"), float("inf"), -0.0, None, 1e-7, 123456789.123456789],
        "从业人员期末人数": [12.0, 12.5, None, 2.0**60, float("nan"), -3.0, float("-inf")],
        "研发人员数": pl.Series([1, 2**62, None, -5, 2**53 + 1, 0, -(2**63)], dtype=pl.Int64),
        "出口额(万元)": pl.Series([1, 2**53 + 1, None, -7, 0, 3, 4], dtype=pl.Int64),
        **{f"{c.header_zh}(万元)": [0.5, 1.0, 2.0, None, 3.0, 4.0, 5.0] for c in FILINGS.columns
           if c.unit and c.required and c.name != "revenue_ytd"},
    })
    patents = pl.DataFrame({
        "申请号": ["202310123456.X"] * 4, "专利名称": ["甲"] * 4, "专利类型": ["发明"] * 4,
        "法律状态": ["有效"] * 4, "申请人": ["甲"] * 4,
        "申请日": [dt.date(2023, 1, 5), dt.date(1700, 1, 1), dt.date(2300, 1, 1), None],
    })
    for table, frame in ((FILINGS, filings), (PATENTS, patents)):
        frame.write_parquet(tmp_path / f"{table.stem_zh}.parquet")
        frame.select(pl.all().cast(pl.Utf8)).write_csv(tmp_path / f"{table.stem_zh}.csv")
        typed = [coerce(table, read_table(table, tmp_path / f"{table.stem_zh}.{suffix}").frame, "f")
                 for suffix in ("parquet", "csv")]
        assert read_table(table, tmp_path / f"{table.stem_zh}.parquet").frame.dtypes != \
            read_table(table, tmp_path / f"{table.stem_zh}.csv").frame.dtypes
        assert typed[0][0].equals(typed[1][0]) and typed[0][1].equals(typed[1][1])
        assert typed[0][1].height > 0  # NaN, infinities, 12.5 people, years out of range


CHECKED_KINDS = Table("cells", "cells", ("text",), (
    Column("text", "文本", TEXT, nullable=True), Column("code", "代码", USCC, nullable=True),
    Column("period", "报告期", PERIOD, nullable=True), Column("industry", "行业代码", CODE, nullable=True)))


def test_cells_kept_as_written_are_what_the_parser_returns():
    """Clean cells skip the parser: what is kept must be what the parser would have returned."""
    cells = ["甲", " 甲", "甲 ", "\ufeff甲", "甲\u3000", "a\nb", "NA", "NULL", "null", "", "—", "无",
             "91440300192203821X", "91440300192203821x", " 91440300192203821X", "９１４４", "NA1",
             "2024Q3", "2024q3", "2024Q5", "2024年三季度", "２０２４Q3", "2024-09", "12024Q3", None]
    names = ("text", "code", "period", "industry")
    raw = pl.DataFrame({"_row": list(range(2, len(cells) + 2)), **{c: cells for c in names}},
                       schema_overrides={c: pl.Utf8 for c in names})
    typed, findings = coerce(CHECKED_KINDS, raw, "cells.csv")
    for col in CHECKED_KINDS.columns:
        value, ok = coerce_module._parse(col.kind, raw.get_column(col.name))
        assert typed.get_column(col.name).to_list() == value.to_list(), col.kind
        bad = raw.select("_row", col.name).filter(True if ok is None else ~ok)
        found = findings.filter(pl.col("column") == col.label)
        assert found.select("row", "value").rows() == (bad.rows() if ok is not None else [])


def test_an_industry_code_is_read_as_a_code_whatever_width_case_or_spaces():
    """行业代码 typed in a Chinese spreadsheet: full-width, lower case, a space inside."""
    raw = pl.DataFrame({"_row": [2, 3, 4, 5, 6], "uscc": ["914403001922038216"] * 5, "name": ["甲"] * 5,
                        "industry_code": ["Ｃ３９６３", "c3963", " I 6513 ", "6513", None]})
    typed, findings = coerce(ENTERPRISES, raw, "企业登记.csv")
    assert typed.get_column("industry_code").to_list() == ["C3963", "C3963", "I6513", "6513", None]
    assert findings.filter(pl.col("column") == "行业代码").height == 0


def test_a_credit_code_with_excels_apostrophe_or_an_invisible_character_is_read():
    """`'91320200…` (Excel's text prefix typed into the cell) and a zero-width space after the code
    were "not in the registry"; they are the codes they look like."""
    raw = pl.DataFrame({"_row": [2, 3, 4], "name": ["甲", "乙", "丙"],
                        "uscc": ["'914403001922038216", "91320282MA2UFF1N5L\u200b", "\u200b91320200723623492B"]})
    typed, findings = coerce(ENTERPRISES, raw, "企业登记.csv")
    assert typed.get_column("uscc").to_list() == ["914403001922038216", "91320282MA2UFF1N5L", "91320200723623492B"]
    assert findings.height == 0


def test_a_drop_checks_the_same_as_parquet_and_as_csv(tmp_path):
    results = {}
    for fmt in ("csv", "parquet"):
        synthesize(tmp_path / fmt, enterprises=300, quarters=12, seed=5, fmt=fmt)
        drop = read_drop(tmp_path / fmt)
        inputs = {n: TableInput(r.table, r.frame, r.path.name, r.unit_factors)
                  for n, r in drop.tables.items()}
        results[fmt] = validate(inputs, as_of=dt.date(2026, 1, 1))
    csv, parquet = results["csv"], results["parquet"]
    assert csv.accepted.keys() == parquet.accepted.keys()
    for name, frame in csv.accepted.items():
        assert frame.equals(parquet.accepted[name]), name
    assert csv.patent_owners.equals(parquet.patent_owners) and csv.patent_owners.height > 0
    assert csv.counts == parquet.counts


def test_blank_rows_of_a_parquet_file_are_skipped_and_counted(tmp_path):
    path = tmp_path / "enterprises.parquet"
    pl.DataFrame({"uscc": ["914403001922038216", None, " "], "name": ["甲", None, None],
                  "founded_on": [dt.date(2015, 3, 5), None, None], "registered_capital": [12.5, None, None],
                  "industry_code": ["C3963", None, ""], "district": ["经开区", None, None],
                  "status": ["存续", None, None]}).write_parquet(path)
    raw = read_table(ENTERPRISES, path)
    assert raw.frame.get_column("_row").to_list() == [2]
    assert raw.blank_rows_skipped == 2


def test_personal_column_is_dropped(tmp_path):
    text = f"{HEADER},法定代表人证件号\n{ROW},320282199001011234\n"
    raw = read_table(ENTERPRISES, _write(tmp_path / "企业登记.csv", text))
    assert "legal_rep_id" not in raw.frame.columns
    assert raw.personal_columns_dropped == ["法定代表人证件号"]


@pytest.mark.parametrize("content,needle", [
    (b"", "文件为空"),
    ("\ufeff统一社会信用代码,企业名称\n".encode("utf-16"), "UTF-16"),
    (bytes(range(256)) * 40, "二进制"),
    ("名称,金额\n甲,1\n".encode(), "找不到表头"),
])
def test_unreadable_files_raise_a_clear_message(tmp_path, content, needle):
    path = tmp_path / "企业登记.csv"
    path.write_bytes(content)
    with pytest.raises(DropError) as info:
        read_table(ENTERPRISES, path)
    assert needle in str(info.value) and "企业登记.csv" in str(info.value)


def test_missing_required_column_lists_what_was_expected(tmp_path):
    path = _write(tmp_path / "企业登记.csv", "统一社会信用代码,成立日期\n914403001922038216,2020-01-01\n")
    with pytest.raises(DropError) as info:
        read_table(ENTERPRISES, path)
    assert "缺少必需的列 企业名称" in str(info.value) and "应有列" in str(info.value)


def test_truncated_xlsx(tmp_path):
    path = tmp_path / "企业登记.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    wb.add_worksheet().write_row(0, 0, HEADER.split(","))
    wb.close()
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DropError, match="Excel 文件损坏"):
        read_table(ENTERPRISES, path)


def test_drop_folder_maps_stems_and_ignores_the_rest(tmp_path):
    _write(tmp_path / "企业登记.csv", f"{HEADER}\n{ROW}\n")
    _write(tmp_path / "readme.txt", "hello")
    (tmp_path / "_synth").mkdir()
    drop = read_drop(tmp_path)
    assert list(drop.tables) == ["enterprises"]
    assert drop.ignored_files == ["readme.txt"]
    assert "filings" in drop.missing_tables


def test_two_files_for_one_table_are_refused(tmp_path):
    _write(tmp_path / "企业登记.csv", f"{HEADER}\n{ROW}\n")
    _write(tmp_path / "enterprises.csv", f"{HEADER}\n{ROW}\n")
    with pytest.raises(DropError, match="都像是"):
        read_drop(tmp_path)


def test_blank_spreadsheet_rows_are_skipped_and_counted(tmp_path):
    text = f"{HEADER}\n{ROW}\n,,,,,,\n{ROW.replace('示例', '样本')}\n"
    raw = read_table(ENTERPRISES, _write(tmp_path / "企业登记.csv", text))
    assert raw.frame.get_column("_row").to_list() == [2, 4]
    assert raw.blank_rows_skipped == 1


def test_registered_capital_in_another_currency_or_unreadable_is_flagged_not_quarantined(tmp_path):
    """The firm stays (its filings and honours with it); the clerk sees a warn row in flags.csv."""
    codes = ["914403001922038216", "91320282MA2UFF1N5L", "91320200723623492B"]
    capitals = ["105(万元人民币)", "100万美元", "很多"]
    text = HEADER + "\n" + "\n".join(
        ROW.replace("914403001922038216", c).replace(",500,", f",{cap},").replace("示例", f"示例{i}")
        for i, (c, cap) in enumerate(zip(codes, capitals))) + "\n"
    raw = read_table(ENTERPRISES, _write(tmp_path / "企业登记.csv", text))
    result = validate({"enterprises": TableInput(ENTERPRISES, raw.frame, "企业登记.csv")}, as_of=dt.date(2026, 1, 1))
    accepted = result.accepted["enterprises"].sort("_row")
    assert accepted.get_column("uscc").to_list() == codes
    assert accepted.get_column("registered_capital").to_list() == [105.0, 100.0, None]
    assert accepted.get_column("registered_capital_currency").to_list() == ["人民币", "美元", None]
    flags = result.flags.filter(pl.col("column").str.starts_with("注册资本")).sort("row")
    assert flags.select("row", "value", "check", "severity").rows() == [
        (3, "100万美元", "capital_in_yuan", "warn"), (4, "很多", "capital_readable", "warn")]
    assert "「100万美元」以美元登记" in flags.get_column("message")[0]
    assert "「很多」不是可识别的金额" in flags.get_column("message")[1]
    assert result.quarantine.height == 0


def test_an_unreadable_chain_leader_mark_or_founding_day_is_flagged_and_read_as_unknown(tmp_path):
    """链主企业 `也许` and 成立日期 `2016.09` do not take the firm (and its returns) out: they are
    read as not marked and as unknown (age conditions then go to review), and flags.csv says so.
    """
    codes = ["914403001922038216", "91320282MA2UFF1N5L", "91320200723623492B"]
    marks, founded = ["是", "也许", ""], ["2015-03-05", "2015-03-05", "2016.09"]
    text = f"{HEADER},链主企业\n" + "\n".join(
        f"{ROW},{m}".replace("914403001922038216", c).replace("2015-03-05", f).replace("示例", f"示例{i}")
        for i, (c, m, f) in enumerate(zip(codes, marks, founded))) + "\n"
    raw = read_table(ENTERPRISES, _write(tmp_path / "企业登记.csv", text))
    result = validate({"enterprises": TableInput(ENTERPRISES, raw.frame, "企业登记.csv")}, as_of=dt.date(2026, 1, 1))
    accepted = result.accepted["enterprises"].sort("_row")
    assert accepted.select("uscc", "chain_leader", "founded_on").rows() == [
        (codes[0], True, dt.date(2015, 3, 5)), (codes[1], None, dt.date(2015, 3, 5)), (codes[2], None, None)]
    assert result.flags.select("row", "column", "value", "check", "severity").rows() == [
        (3, "链主企业", "也许", "format_bool", "warn"), (4, "成立日期", "2016.09", "format_date", "warn")]
    assert result.flags["message"][0].endswith("\"也许\" 不是有效的是/否, 记为空值, 按未标注链主处理")
    assert result.flags["message"][1].endswith("\"2016.09\" 不是有效的日期 (如 2024-03-05 或 2024年3月5日), 记为空值, 成立年限相关条件转人工核实")
    assert result.quarantine.height == 0
    assert result.counts["enterprises"] == {"rows_read": 3, "rows_accepted": 3, "rows_quarantined": 0}


def test_financing_amounts_with_their_unit_are_read_in_wan():
    """融资金额 is in 万元; `1.5亿`, `3000万` and `800万元` are amounts with their unit, read as
    15000, 3000 and 800 (they were kept as text, i.e. as undisclosed); `数千万` and `未披露` stay
    undisclosed, and so does an amount in another currency written into the cell."""
    written = ["1.5亿", "3000万", "800万元", "数千万", "未披露", "1200", "500万美元"]
    raw = pl.DataFrame({"_row": list(range(2, 2 + len(written))), "financed_on": ["2024-03-01"] * len(written),
                        "company_name": ["甲公司"] * len(written), "amount": written})
    typed, findings = coerce(FINANCING, raw, "融资.csv")
    assert typed.get_column("amount").to_list() == [15000.0, 3000.0, 800.0, None, None, 1200.0, None]
    assert typed.get_column("amount_text").to_list() == [None, None, None, "数千万", "未披露", None, "500万美元"]
    assert findings.filter(pl.col("column") == "融资金额").height == 0


@pytest.mark.parametrize("title", ["", "2025年专利清单\n", "2025年专利清单,,,\n"])
def test_a_broken_quote_is_named_by_the_header_below_any_title(tmp_path, title):
    """The column of a malformed quote is named by the file's header line, not by a title above
    it (with or without commas after it)."""
    rows = [f"2023101234{i:02d}.1,发明,2023-01-05,甲公司" for i in range(5)]
    rows[3] = '202310123403.1,发"明,2023-01-05,甲公司'
    path = _write(tmp_path / "专利.csv", title + "申请号,专利类型,申请日,申请人\n" + "\n".join(rows) + "\n")
    line = title.count("\n") + 5
    with pytest.raises(DropError, match=f"专利.csv 第 {line} 行, 第 2 列「专利类型」: 英文双引号使用不规范"):
        read_table(PATENTS, path)


def test_the_drop_notes_name_a_missing_optional_column_beside_an_unknown_header(tmp_path):
    """授权时间 is not a name tidu knows for 授权公告日: the patents would all count as not granted,
    so the notes say the column is missing and name the header that may be it. 授权日 and
    有效期截止日期 are known names. An .xls file and a table not given are named too."""
    _write(tmp_path / "企业登记.csv", f"{HEADER}\n{ROW}\n")
    _write(tmp_path / "专利.csv", "申请号,专利名称,专利类型,申请日,授权时间,法律状态,申请人\n"
                                 "202310123456.7,一种装置,发明,2023-01-05,2024-02-01,有效,宜兴市示例科技有限公司\n")
    _write(tmp_path / "资质荣誉.csv", "统一社会信用代码,资质名称,级别,认定日期,有效期截止日期\n"
                                   "914403001922038216,高新技术企业,国家级,2023-11-01,2026-11-01\n")
    (tmp_path / "重点项目.xls").write_bytes(b"\xd0\xcf\x11\xe0old excel")
    drop = read_drop(tmp_path)
    assert drop.tables["honors"].missing_optional == []        # 有效期截止日期 is 有效期至
    assert drop.tables["patents"].missing_optional == ["授权公告日", "主分类号"]
    notes = drop_notes(drop)
    assert notes[0] == ("专利.csv: 没有可选列「授权公告日」、「主分类号」, 按空值处理; 未识别的列「授权时间」已忽略"
                        " — 若其中某列就是所缺的列, 请把表头改成所缺的列名")
    assert "重点项目.xls: .xls (Excel 97-2003) 格式无法读取, 已忽略; 请在 Excel 中另存为 .xlsx" in notes
    assert notes[-1].startswith("未提供的表: 财务快报、重点项目、融资")
    renamed = tmp_path / "专利.csv"
    renamed.write_text(renamed.read_text(encoding="utf-8-sig").replace("授权时间", "授权日"), encoding="utf-8-sig")
    assert read_drop(tmp_path).tables["patents"].missing_optional == ["主分类号"]


def test_a_missing_required_column_is_told_beside_the_headers_tidu_did_not_know(tmp_path):
    """营业总收入 for 营业收入: the message names the header that may be the missing column."""
    header = "统一社会信用代码,报告期,营业总收入(万元),主营业务收入(万元),利润总额(万元),净利润(万元),研发费用(万元)," \
             "资产总计(万元),负债合计(万元),从业人员期末人数,研发人员数"
    path = _write(tmp_path / "财务快报.csv", header + "\n914403001922038216,2024Q1,1,1,1,1,1,1,1,1,1\n")
    with pytest.raises(DropError) as caught:
        read_table(FILINGS, path)
    assert str(caught.value).startswith("财务快报.csv: 缺少必需的列 营业收入(万元);")
    assert str(caught.value).endswith("文件中未识别的列: 「营业总收入(万元)」 — 若其中有所缺的列, 请把它的表头改成所缺列的名称")


@pytest.mark.parametrize("sep,name", [("\t", "制表符 (Tab)"), (";", "分号")])
def test_a_csv_saved_with_another_separator_says_so(tmp_path, sep, name):
    path = _write(tmp_path / "企业登记.csv", f"{HEADER}\n{ROW}\n{ROW}\n".replace(",", sep))
    with pytest.raises(DropError, match=f"企业登记.csv: 各列以{re.escape(name)}分隔, 不是英文逗号"):
        read_table(ENTERPRISES, path)


def test_a_totals_line_is_left_out_and_said_to_be(tmp_path):
    """`合计` under the last firm is the sheet's sum, not a firm: not read (it used to fail three
    checks and the whole validation), named in the drop notes and the manifest."""
    _write(tmp_path / "企业登记.csv", f"{HEADER}\n{ROW}\n合 计,,,1500,,,\n")
    drop = read_drop(tmp_path)
    raw = drop.tables["enterprises"]
    assert raw.frame.height == 1 and raw.total_rows == [3]
    assert "企业登记.csv: 第 3 行是合计行, 不是企业数据, 未读入" in drop_notes(drop)


def test_a_column_converted_by_its_headers_unit_is_said_to_be(tmp_path):
    """营业收入(元) over figures that are in fact 万元 made every row fail 主营业务收入 ≤ 营业收入 with
    no word of the unit: the notes say the column was converted, and how to undo it."""
    header = "统一社会信用代码,报告期,营业收入(元),主营业务收入(万元),利润总额(万元),净利润(万元),研发费用(万元)," \
             "资产总计(万元),负债合计(万元),从业人员期末人数,研发人员数"
    _write(tmp_path / "企业登记.csv", f"{HEADER}\n{ROW}\n")
    _write(tmp_path / "财务快报.csv", header + "\n914403001922038216,2024Q1,100,90,1,1,1,1,1,1,1\n")
    drop = read_drop(tmp_path)
    assert drop.tables["filings"].unit_factors == {"revenue_ytd": 0.0001}
    assert ("财务快报.csv: 列「营业收入(元)」按表头的单位换算为万元 (×0.0001); 若表中数字其实已是万元, 请改正表头"
            in drop_notes(drop))


def test_a_two_row_header_with_merged_cells_is_read(tmp_path):
    """统一社会信用代码 and 报告期 merged over two header rows (their text in the top row), the money
    columns under a group title: the columns are found, and the first firm is on row 3."""
    path = tmp_path / "财务快报.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("财务快报")
    ws.merge_range(0, 0, 1, 0, "统一社会信用代码")
    ws.merge_range(0, 1, 1, 1, "报告期")
    ws.merge_range(0, 2, 0, 8, "财务指标（万元）")
    money = ["营业收入", "主营业务收入", "利润总额", "净利润", "研发费用", "资产总计", "负债合计"]
    for j, name in enumerate([*money, "从业人员期末人数", "研发人员数"]):
        ws.write(1, 2 + j, name)
    ws.write_row(2, 0, ["914403001922038216", "2024Q1", 100, 90, 10, 8, 5, 500, 200, 30, 5])
    wb.close()
    raw = read_table(FILINGS, path)
    assert raw.title_rows == 1 and raw.missing_optional == ["出口额(万元)"]
    assert raw.frame.select("_row", "uscc", "period", "revenue_ytd").rows() == [(3, "914403001922038216", "2024Q1", "100")]


def test_report_periods_typed_as_dates_in_a_workbook_read_as_excel_shows_them(tmp_path):
    """A clerk who types `2024-09` in an Excel cell gets a date (the 1st of September, shown as
    `2024-09` or `2024年9月`); a report date `2024-09-30` is a date cell too. Both are 2024Q3, as
    the text forms are. An outside audit found every such row quarantined as no period."""
    from data_contracts.parsing import parse_period

    path = tmp_path / "财务快报.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("财务快报")
    ws.write_row(0, 0, ["统一社会信用代码", "报告期", "营业收入(万元)", "主营业务收入(万元)", "利润总额(万元)",
                        "净利润(万元)", "研发费用(万元)", "资产总计(万元)", "负债合计(万元)",
                        "从业人员期末人数", "研发人员数"])
    formats = {"yyyy-mm": wb.add_format({"num_format": "yyyy-mm"}),
               "yyyy年m月": wb.add_format({"num_format": 'yyyy"年"m"月"'}),
               "yyyy-mm-dd": wb.add_format({"num_format": "yyyy-mm-dd"})}
    cells = [(dt.datetime(2024, 9, 1), "yyyy-mm"), (dt.datetime(2024, 12, 1), "yyyy年m月"),
             (dt.datetime(2024, 6, 30), "yyyy-mm-dd"), (dt.datetime(2024, 8, 1), "yyyy-mm")]
    for i, (day, shown) in enumerate(cells, start=1):
        ws.write(i, 0, "914403001922038216")
        ws.write_datetime(i, 1, day, formats[shown])
        ws.write_row(i, 2, [100, 90, 10, 8, 5, 500, 200, 30, 5])
    wb.close()
    raw = read_table(FILINGS, path)
    periods, ok = parse_period(raw.frame.get_column("period"))
    # August is no quarter's end: still no period, and said so
    assert periods.to_list() == ["2024Q3", "2024Q4", "2024Q2", None]
    assert ok.to_list() == [True, True, True, False]
    # typed as text, the 1st of a month is a day, not a month
    assert parse_period(pl.Series(["2024-09-01"]))[0].to_list() == [None]


def test_filled_cells_under_a_column_without_header_are_noted(tmp_path):
    """A remark column the clerk added without a header, or a header cell cleared by mistake:
    nothing reads its cells, and the drop's notes say which column and how many cells (they
    used to go without a word). An empty unnamed column says nothing."""
    _workbook(tmp_path / "企业登记.xlsx", {"企业登记": [HEADER + ",,", ROW + ",,已电话确认", ROW.replace("示例", "样本") + ",,"]})
    drop = read_drop(tmp_path)
    assert drop.tables["enterprises"].unheaded == {9: 1}
    assert "企业登记.xlsx: 第 9 列 (I 列) 没有表头, 其中 1 个单元格有内容, 未读入; 若是数据, 请补上表头" in drop_notes(drop)


def test_a_title_padded_with_fewer_commas_than_the_header_leaves_the_header_whole(tmp_path):
    """`宜兴市企业登记表（2025年四季度）,,,` above an 11-column header: Polars took the table's width
    from the title (4 cells), cutting the header and, since long records are now told, sending
    every row with a 链主企业 or later cell to quarantine (an audit's 770 of 800 firms)."""
    title = "宜兴市企业登记表（2025年四季度）,,,"
    raw = read_table(ENTERPRISES, _write(tmp_path / "企业登记.csv", f"{title}\n{HEADER},链主企业\n{ROW},是\n"))
    assert raw.title_rows == 1
    assert raw.frame.select("_row", "status", "chain_leader").rows() == [(3, "存续", "是")]
    assert "_extra_cells" not in raw.frame.columns


def test_a_required_header_cleared_by_mistake_is_pointed_to(tmp_path):
    """企业名称's header cell cleared: the file lacks a required column, and the message points at
    column B, which holds the names without a header (it named only the missing column)."""
    header = HEADER.replace("企业名称", "")
    with pytest.raises(DropError, match=r"缺少必需的列 企业名称.*第 2 列 \(B 列\) 有内容但没有表头"):
        read_table(ENTERPRISES, _write(tmp_path / "企业登记.csv", f"{header}\n{ROW}\n"))


def test_rows_excel_wrote_without_their_trailing_empty_cells_are_read_in_their_columns(tmp_path):
    """Excel saving a sheet as CSV may leave out the separators of empty cells at the end of a row
    (it writes the sheet in blocks and drops an empty last column per block; StataCorp's FAQ "How
    Excel writes empty cells"), so `…,存续` arrives for `…,存续,,`. Such a row is one Excel opens with
    the same cells in the same columns; it is read so, without a finding. (A comma left out in the
    middle of a row gives the same short row: it cannot be told from this by the count of cells,
    and it shows shifted in Excel too; the type checks and the ID-number check catch what they can.)
    """
    header = f"{HEADER},产业链环节,链主企业"
    codes = ["914403001922038216", "91320282MA2UFF1N5L", "91320200723623492B"]
    rows = [ROW.replace("914403001922038216", c).replace("示例", f"示例{i}") for i, c in enumerate(codes)]
    text = f"{header}\n{rows[0]},技术产品层,是\n{rows[1]}\n{rows[2]},应用示范层\n"
    raw = read_table(ENTERPRISES, _write(tmp_path / "企业登记.csv", text))
    assert raw.frame.select("_row", "status", "chain_layer", "chain_leader").rows() == [
        (2, "存续", "技术产品层", "是"), (3, "存续", None, None), (4, "存续", "应用示范层", None)]
    result = validate({"enterprises": TableInput(ENTERPRISES, raw.frame, "企业登记.csv")}, as_of=dt.date(2026, 1, 1))
    assert result.quarantine.height == 0 and result.flags.height == 0
    assert result.accepted["enterprises"].sort("_row").get_column("chain_leader").to_list() == [True, None, None]
