"""CSV and xlsx for people: BOM, formula neutralisation, one sheet per tier."""

from __future__ import annotations

import re

import fastexcel
import polars as pl
import pytest

from reports.tables import (
    CANDIDATE_HEADERS,
    FORMULA_START,
    as_typed,
    neutralize,
    write_candidates_xlsx,
    write_csv,
)

EVIL = '=HYPERLINK("http://x","y")'


def test_formula_like_text_is_neutralised_numbers_untouched():
    frame = pl.DataFrame({"name": [EVIL, "+86 电话", "-负", "@at", "正常"], "amount": [-5.0, 1.0, 2.0, 3.0, 4.0]})
    out = neutralize(frame)
    assert out.get_column("name").to_list() == ["'" + EVIL, "'+86 电话", "'-负", "'@at", "正常"]
    assert out.get_column("amount").to_list() == [-5.0, 1.0, 2.0, 3.0, 4.0]


def test_a_neutralised_csv_read_back_for_the_pdf_shows_what_was_typed(tmp_path):
    typed = pl.DataFrame({"value": [EVIL, "-5", "+86 电话", "@at", "正常", "it's", None]})
    path = write_csv(typed, tmp_path / "quarantine.csv")
    read = pl.read_csv(path, infer_schema=False, encoding="utf8")
    assert read.get_column("value").to_list()[1] == "'-5"      # the file keeps its guard
    assert as_typed(read).equals(typed)


def test_categorical_text_is_neutralised_too_and_kept_coded_when_clean():
    """The run hands the rule texts on as categoricals (they repeat; at 1M firms needs_review as
    text was 2.25 GB): one whose values read as a formula is rewritten as text, a clean one stays
    coded, and both write the same CSV as their text would."""
    frame = pl.DataFrame({"review": ["-负债率(需人工核实)", "正常", None, "正常"],
                          "gaps": ["甲", "乙", "甲", None]}).with_columns(pl.all().cast(pl.Categorical))
    out = neutralize(frame)
    assert out.get_column("review").to_list() == ["'-负债率(需人工核实)", "正常", None, "正常"]
    assert out.schema["review"] == pl.Utf8 and out.schema["gaps"] == pl.Categorical
    as_text = neutralize(frame.with_columns(pl.all().cast(pl.Utf8)))
    assert out.write_csv() == as_text.write_csv()


def test_csv_has_bom_and_neutralised_text(tmp_path):
    path = write_csv(pl.DataFrame({"name": [EVIL]}), tmp_path / "x.csv")
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert "'=HYPERLINK" in data.decode("utf-8-sig")


def test_csv_written_to_the_file_is_the_text_of_the_frame(tmp_path):
    """Written straight to the file: the same bytes as the whole CSV text with the BOM before it,
    a column without formula text left as it is, a column with one rewritten; numbers to six
    decimals without trailing zeros or exponents."""
    frame = pl.DataFrame({"name": ["甲", None, "-负", "乙,丙"], "note": ["a", "b", None, "c\nd"],
                          "p": [0.1234567891, None, 1e-9, 2.0], "amount_wan": [300.0, 12.5, 1.25e7, -0.0000004],
                          "big": [1e17, 2.5e-6, None, 123456789.1234567]})
    path = write_csv(frame, tmp_path / "x.csv")
    expected = ('name,note,p,amount_wan,big\n甲,a,0.123457,300,100000000000000000\n,b,,12.5,0.000002\n'
                '\'-负,,0,12500000,\n"乙,丙","c\nd",2,0,123456789.123457\n')
    assert path.read_bytes() == b"\xef\xbb\xbf" + expected.encode("utf-8")


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


def test_xlsx_reads_waiting_on_manual_checks_as_to_verify_and_a_failed_condition_as_no(tmp_path):
    """是否符合条件: 是 when the rulebook passes, 待核实 where only manual checks stand in the way
    (eligible false, eligible_if_unknowns_hold true) or no rulebook is in force (null), 否 when a
    condition failed (as the PDF reads them)."""
    cands = pl.DataFrame({
        "uscc": list("ABCD"), "name": list("甲乙丙丁"), "district": ["环科园"] * 4,
        "tier": ["创新型中小企业"] * 4, "eligible": [True, False, False, None],
        "eligible_if_unknowns_hold": [True, True, False, None], "points": [70.0, 65.0, 40.0, None],
        "gaps": ["", "", "评分 40 分 < 60 分", ""], "probability": [0.4, 0.3, 0.2, 0.1],
        "rank": [1, 2, 3, 4], "reasons": ["x"] * 4, "tier_key": ["innovative_sme"] * 4,
        "needs_review": ["", "一般条件(需人工核实)", "", "未收录该季度适用的规则(需人工核实)"]})
    path = write_candidates_xlsx(cands, tmp_path / "c.xlsx", {"innovative_sme": "创新型中小企业"})
    sheet = fastexcel.read_excel(str(path)).load_sheet(0, dtypes="string").to_polars()
    assert sheet.get_column("是否符合条件").to_list() == ["是", "待核实", "否", "待核实"]


# candidates.xlsx is rendered column-wise; it must be exactly what xlsxwriter writes cell by cell
# (in its constant-memory mode, whose inline strings the fast writer produces).

ODD_TEXT = [EVIL, "+86 电话", "\t制表", "a&b<c>d\"e'f", "  前导空格", "尾随空格  ", "\u3000全角", "换\n行",
            "控制\x01\x1f字符", "_x0041_ 字面", "\ufffe\uffff", "<r>富文本</r>", "😀 表情", "", None,
            "长" * 16_000 + "😀" * 500, "x" * 32_766 + "😀"]


def _cell_by_cell(candidates: pl.DataFrame, path, tiers: dict[str, str]) -> None:
    """The reference: every cell through xlsxwriter's own API, as the writer did before."""
    import xlsxwriter

    from reports.tables import _COLUMN_FORMATS, _WIDTHS, DOCUMENT_DATE

    frame = neutralize(candidates)
    options = {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    with xlsxwriter.Workbook(str(path), options) as wb:
        wb.set_properties({"created": DOCUMENT_DATE})
        fmt = {"head": wb.add_format({"bold": True, "bg_color": "#DDE6F0", "border": 1,
                                      "text_wrap": True, "valign": "vcenter"}),
               "pct": wb.add_format({"num_format": "0.0%"}),
               "pts": wb.add_format({"num_format": "0.0"}),
               "wrap": wb.add_format({"text_wrap": True, "valign": "top"})}
        for key, zh in tiers.items():
            part = frame.filter(pl.col("tier_key") == key).sort("rank")
            ws = wb.add_worksheet(zh)
            cols = list(CANDIDATE_HEADERS)
            for j, col in enumerate(cols):
                ws.write_string(0, j, CANDIDATE_HEADERS[col], fmt["head"])
                ws.set_column(j, j, _WIDTHS[col], fmt.get(_COLUMN_FORMATS.get(col, "")))
            for i, row in enumerate(part.select(cols).iter_rows(), start=1):
                for j, (col, value) in enumerate(zip(cols, row)):
                    if col == "eligible":   # null: no rule decided (no rulebook in force)
                        ws.write_string(i, j, {True: "是", False: "否", None: "待核实"}[value])
                    elif value is None:
                        continue
                    elif isinstance(value, (int, float)):
                        ws.write_number(i, j, value)
                    else:
                        ws.write_string(i, j, str(value))
            ws.freeze_panes(1, 0)
            ws.autofilter(0, 0, max(part.height, 1), len(cols) - 1)


def _members(path) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


@pytest.mark.parametrize("first_rank", [len(ODD_TEXT), 10**17])  # 10^17: %.16G writes 1E+17
def test_xlsx_is_what_xlsxwriter_writes_cell_by_cell(tmp_path, first_rank):
    n = len(ODD_TEXT)
    cands = pl.DataFrame({
        "uscc": [f"U{i:02d}" for i in range(n)], "name": ODD_TEXT, "district": ODD_TEXT[::-1],
        "tier": ["雏鹰企业"] * n, "eligible": [True, False, None] + [True] * (n - 3),
        "points": [72.0, None, -0.0, 1e-5, 1e16, 0.1 + 0.2] + [85.0] * (n - 6),
        "gaps": ODD_TEXT, "probability": [0.30000000000000004, 1 / 3, 0.0] + [0.5] * (n - 3),
        "rank": [first_rank, *range(n - 1, 0, -1)], "reasons": ODD_TEXT[3:] + ODD_TEXT[:3],
        "tier_key": ["eaglet"] * n, "needs_review": [None] * n})
    tiers = {"eaglet": "雏鹰企业", "gazelle": "瞪羚企业"}  # 瞪羚企业: no candidates, header only
    fast = write_candidates_xlsx(cands, tmp_path / "fast.xlsx", tiers)
    _cell_by_cell(cands, tmp_path / "reference.xlsx", tiers)
    assert _members(fast) == _members(tmp_path / "reference.xlsx")


def test_xlsx_tier_longer_than_a_sheet_goes_on_in_numbered_sheets(tmp_path):
    cands = pl.DataFrame({
        "uscc": [f"U{i}" for i in range(7)], "name": [f"企业{i}" for i in range(7)],
        "district": ["环科园"] * 7,
        "tier": ["雏鹰企业"] * 7, "eligible": [True] * 7, "points": [60.0] * 7, "gaps": [""] * 7,
        "probability": [0.1] * 7, "rank": [7, 6, 5, 4, 3, 2, 1], "reasons": ["x"] * 7,
        "tier_key": ["eaglet"] * 7, "needs_review": [""] * 7})
    path = write_candidates_xlsx(cands, tmp_path / "c.xlsx", {"eaglet": "雏鹰企业"}, rows_per_sheet=3)
    reader = fastexcel.read_excel(str(path))
    assert reader.sheet_names == ["雏鹰企业", "雏鹰企业 (2)", "雏鹰企业 (3)"]
    ranks = [reader.load_sheet(k).to_polars().get_column("排名").to_list() for k in range(3)]
    assert ranks == [[1, 2, 3], [4, 5, 6], [7]]


def test_sheets_are_deflated_by_isal_and_read_back_whole():
    """The sheets' entries get ISA-L's compressor (fails if a Python upgrade hides zipfile's, and
    the workbook silently falls back to zlib's 4× slower deflate); the entry reads back whole."""
    import io
    import zipfile

    from reports.tables import _deflate_with_isal

    data = ("<row>" + "有效发明专利 12 件 ↑；" * 50 + "</row>").encode() * 2000
    buffer = io.BytesIO()
    info = zipfile.ZipInfo("xl/worksheets/sheet1.xml")
    info.compress_type = zipfile.ZIP_DEFLATED   # as _entry copies it from the layout's entry
    with zipfile.ZipFile(buffer, "w") as z, z.open(info, "w") as entry:
        _deflate_with_isal(entry)
        assert type(entry._compressor).__module__.startswith("isal")
        entry.write(data)
    with zipfile.ZipFile(buffer) as z:
        assert z.testzip() is None
        info = z.getinfo("xl/worksheets/sheet1.xml")
        assert info.compress_type == zipfile.ZIP_DEFLATED and info.compress_size < len(data) // 10
        assert z.read(info) == data


def test_xlsx_categorical_texts_are_what_xlsxwriter_writes(tmp_path):
    """The run hands gaps and needs_review on as categoricals (a province's needs_review: 2.4 GB
    of text in ~100 distinct values); the writer works each distinct text out once and lays it
    out by the codes. Every odd text, repeated in another order, nulls among them."""
    clean = [t for t in ODD_TEXT if t is None or not re.match(FORMULA_START, t)]
    n = 2 * len(clean)
    cands = pl.DataFrame({
        "uscc": [f"U{i:02d}" for i in range(n)], "name": ["企业"] * n, "district": ["宜城街道"] * n,
        "tier": ["雏鹰企业"] * n, "eligible": [True] * n, "points": [70.0] * n,
        "gaps": clean + clean[::-1], "probability": [0.5] * n, "rank": list(range(1, n + 1)),
        "reasons": ["发明专利(有效) 6 件 ↑"] * n, "tier_key": ["eaglet"] * n,
        "needs_review": clean[::-1] + clean}).with_columns(pl.col("gaps", "needs_review").cast(pl.Categorical))
    assert neutralize(cands).schema["gaps"] == pl.Categorical   # the coded path is the one taken
    fast = write_candidates_xlsx(cands, tmp_path / "fast.xlsx", {"eaglet": "雏鹰企业"})
    _cell_by_cell(cands, tmp_path / "reference.xlsx", {"eaglet": "雏鹰企业"})
    assert _members(fast) == _members(tmp_path / "reference.xlsx")


def test_the_workbook_explains_its_words_in_the_header_cells_comments(tmp_path):
    """An analyst with only the workbook learns what 是 / 待核实 / 否, the rank and the factors mean,
    from the comments of the header cells, on every tier sheet; the workbook keeps outputs.md's
    shape, one sheet per tier (an outside audit flagged the first sheet 说明 the notes had been),
    and its rows are unchanged."""
    from pipelines.run import workbook_notes

    cands = pl.DataFrame({
        "uscc": ["A", "B", "C"], "name": ["甲", "乙", "丙"], "district": ["环科园", "经开区", "环科园"],
        "tier": ["雏鹰企业", "雏鹰企业", "瞪羚企业"], "eligible": [True, False, True], "points": [72.0, None, None],
        "gaps": ["", "研发费用占比 2.1% < 3%", ""], "probability": [0.42, 0.1, 0.3], "rank": [1, 2, 1],
        "reasons": ["x", "y", "z"], "tier_key": ["eaglet", "eaglet", "gazelle"], "needs_review": ["", "", ""]})
    tiers = {"eaglet": "雏鹰企业", "gazelle": "瞪羚企业"}
    notes = workbook_notes("2025Q4", "宜兴市")
    path = write_candidates_xlsx(cands, tmp_path / "c.xlsx", tiers, notes=notes)
    plain = write_candidates_xlsx(cands, tmp_path / "plain.xlsx", tiers)
    reader = fastexcel.read_excel(str(path))
    assert reader.sheet_names == ["雏鹰企业", "瞪羚企业"]
    for k in range(2):
        assert reader.load_sheet(k).to_polars().equals(fastexcel.read_excel(str(plain)).load_sheet(k).to_polars())
    for sheet in (1, 2):
        comments = {CANDIDATE_HEADERS_BY_CELL[ref]: text for ref, text in _comments(path, sheet).items()}
        assert set(comments) == {"排名", "是否符合条件", "差距", "需人工核实", "评分", "认定概率", "主要因素"}
        assert comments["是否符合条件"] == "是否符合条件：" + dict(notes)["是否符合条件"]
        assert "待核实 = “需人工核实”列中的条件核实成立后即符合" in comments["是否符合条件"]
        # 名单 names no column: it goes to the first one, beside 排名's own note
        assert comments["排名"] == f"名单：{dict(notes)['名单']}\n\n排名：{dict(notes)['排名']}"

    assert _comments(plain, 1) == {}


CANDIDATE_HEADERS_BY_CELL = {f"{chr(65 + j)}1": h for j, h in enumerate(CANDIDATE_HEADERS.values())}


def _comments(path, sheet: int) -> dict[str, str]:
    """Cell reference → comment text of one sheet of a workbook (found through the sheet's rels)."""
    import re
    import xml.etree.ElementTree as ET
    import zipfile

    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    with zipfile.ZipFile(path) as z:
        rels = f"xl/worksheets/_rels/sheet{sheet}.xml.rels"
        if rels not in z.namelist():
            return {}
        target = re.search(r'Target="\.\./(comments\d+\.xml)"', z.read(rels).decode())
        if target is None:
            return {}
        root = ET.fromstring(z.read(f"xl/{target.group(1)}"))
    return {c.get("ref"): "".join(t.text or "" for t in c.iter(f"{main}t"))
            for c in root.iter(f"{main}comment")}
