"""Reading drop files: encodings, title rows, header variants, units, and files that cannot be read."""

from __future__ import annotations

import polars as pl
import pytest
import xlsxwriter

from data_contracts.schema import ENTERPRISES, FILINGS
from pipelines.ingest import DropError, read_drop, read_table

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


def test_header_variants_units_and_extra_columns(tmp_path):
    text = ("统一社会信用代码 , 报告期,营业收入（元）,主营业务收入(万元),利润总额,净利润,研发费用（万元）,"
            "资产总计,负债合计,从业人员期末人数,研发人员数,备注\n"
            "914403001922038216,2024Q3,12345678,1000,10,8,50,900,300,40,8,无\n")
    raw = read_table(FILINGS, _write(tmp_path / "财务快报.csv", text))
    assert raw.unit_factors == {"revenue_ytd": 0.0001}
    assert raw.extra_columns == ["备注"]
    assert raw.frame.get_column("revenue_ytd").to_list() == ["12345678"]


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


def test_parquet_is_read_as_text(tmp_path):
    path = tmp_path / "enterprises.parquet"
    pl.DataFrame({"uscc": ["914403001922038216"], "name": ["甲"], "founded_on": [None],
                  "registered_capital": [12.5], "industry_code": ["C3963"], "district": ["经开区"],
                  "status": ["存续"]}).write_parquet(path)
    raw = read_table(ENTERPRISES, path)
    assert raw.frame.get_column("registered_capital").to_list() == ["12.5"]


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
