"""CSV and xlsx for people: BOM, formula neutralisation, one sheet per tier."""

from __future__ import annotations

import fastexcel
import polars as pl

from reports.tables import neutralize, write_candidates_xlsx, write_csv

EVIL = '=HYPERLINK("http://x","y")'


def test_formula_like_text_is_neutralised_numbers_untouched():
    frame = pl.DataFrame({"name": [EVIL, "+86 电话", "-负", "@at", "正常"], "amount": [-5.0, 1.0, 2.0, 3.0, 4.0]})
    out = neutralize(frame)
    assert out.get_column("name").to_list() == ["'" + EVIL, "'+86 电话", "'-负", "'@at", "正常"]
    assert out.get_column("amount").to_list() == [-5.0, 1.0, 2.0, 3.0, 4.0]


def test_csv_has_bom_and_neutralised_text(tmp_path):
    path = write_csv(pl.DataFrame({"name": [EVIL]}), tmp_path / "x.csv")
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert "'=HYPERLINK" in data.decode("utf-8-sig")


def test_xlsx_one_sheet_per_tier_with_chinese_headers(tmp_path):
    cands = pl.DataFrame({
        "uscc": ["A", "B"], "name": [EVIL, "乙"], "district": ["环科园", "经开区"],
        "tier": ["专精特新中小企业", "雏鹰企业"], "eligible": [True, False], "points": [72.0, None],
        "gaps": ["", "研发费用占比 2.1% < 3%"], "probability": [0.42, 0.1], "rank": [1, 1],
        "reasons": ["x", "y"], "tier_key": ["specialised_sme", "eaglet"], "needs_review": ["", ""]})
    path = write_candidates_xlsx(cands, tmp_path / "c.xlsx", {"specialised_sme": "专精特新中小企业", "eaglet": "雏鹰企业"})
    reader = fastexcel.read_excel(str(path))
    assert reader.sheet_names == ["专精特新中小企业", "雏鹰企业"]
    sheet = reader.load_sheet(0).to_polars()
    assert sheet.columns[:3] == ["排名", "统一社会信用代码", "企业名称"]
    assert sheet.get_column("企业名称").to_list() == ["'" + EVIL]
    assert sheet.get_column("是否符合条件").to_list() == ["是"]
