"""CSV and Excel files for people: UTF-8 with BOM, Chinese headers, formula-like text made inert.

Text that starts with `=`, `+`, `-`, `@` (or a tab / carriage return) would run as a formula
when a clerk opens the file in a spreadsheet; every such cell gets a leading apostrophe.

candidates.xlsx holds up to a million rows per tier, too many to write cell by cell (xlsxwriter
spends about 5 µs on a cell). xlsxwriter still lays the workbook out — sheets, headers, formats,
widths, frozen header row, filter — with the header rows only; the data rows are rendered a
column at a time with Polars into exactly the XML xlsxwriter's constant-memory mode writes for
them (inline strings), and streamed into each sheet of the package.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import polars as pl

FORMULA_START = r"^[=+\-@\t\r]"

CANDIDATE_HEADERS = {
    "rank": "排名", "uscc": "统一社会信用代码", "name": "企业名称", "district": "所属板块",
    "tier": "层级", "eligible": "是否符合条件", "points": "评分", "probability": "认定概率",
    "gaps": "差距", "needs_review": "需人工核实", "reasons": "主要因素",
}
SHEET_ROWS = 1_048_576  # Excel's limit, header row included
DOCUMENT_DATE = dt.datetime(2000, 1, 1)  # the workbook's date when the caller gives none
ROWS_PER_CHUNK = 50_000  # data rows rendered at a time
# zlib level of the package's small parts, and of the sheets where ISA-L's compressor cannot be
# put in (see below). Measured when zlib deflated the sheets: their XML is ~1 kB a row; level 1
# compresses it 4× faster than zlib's default 6 for a file 34 % larger (835 MB of sheets at 100k
# firms: 2.8 s and 95 MB against 11.4 s and 71 MB).
DEFLATE_LEVEL = 1
# The sheets themselves are deflated by ISA-L (python-isal) at its level 1: the same format, a
# file of the same size (−0.7 %), ~4× less CPU than zlib's level 1 (300 MB of rows' XML: 0.17 s
# against 0.69 s). With both cores rendering, the workbook of 7.4M rows takes 27 s, against 41 s.
SHEET_DEFLATE_LEVEL = 1
# Sheets rendered at once ahead of the one being compressed (each holds its rows' XML on disk
# until it is compressed: ~0.9 GB for a sheet of a million rows).
RENDER_AHEAD = 2


def neutralize(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text cell that a spreadsheet would read as a formula, prefixed with `'`. Only the
    columns that hold such a cell are rewritten (a province's candidates have gigabytes of text).
    Categorical columns (texts that repeat, such as the rule texts) are checked on their distinct
    values and, when one reads as a formula, rewritten as text."""
    text = [c for c, dtype in frame.schema.items() if dtype == pl.Utf8]
    coded = [c for c, dtype in frame.schema.items() if isinstance(dtype, (pl.Categorical, pl.Enum))]
    checks = [*(pl.col(c).str.contains(FORMULA_START).any() for c in text),
              *(pl.col(c).unique().cast(pl.Utf8).str.contains(FORMULA_START).any() for c in coded)]
    flagged = frame.select(checks).row(0) if checks else ()
    hits = [c for c, hit in zip([*text, *coded], flagged, strict=True) if hit]
    return frame.with_columns(
        pl.when(v.str.contains(FORMULA_START)).then(pl.lit("'") + v).otherwise(v).alias(c)
        for c in hits for v in [pl.col(c).cast(pl.Utf8)])


def as_typed(frame: pl.DataFrame) -> pl.DataFrame:
    """`neutralize` undone, for a CSV read back to be shown where no formula can run (the PDF):
    a cell written `'-5` reads `-5` again, as the clerk typed it. A cell typed with its own `'`
    before a formula character would lose that `'` (one character, shown only)."""
    marked = r"^'" + FORMULA_START.removeprefix("^")
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(marked)).then(pl.col(c).str.slice(1)).otherwise(pl.col(c)).alias(c)
        for c, dtype in frame.schema.items() if dtype == pl.Utf8)


CSV_DECIMALS = 6   # scoring.ranking.PROBABILITY_DECIMALS: probabilities are compared as printed


def _as_printed(column: str) -> pl.Expr:
    """A float column rounded to CSV_DECIMALS (below 10⁹, where rounding is exact enough; no
    figure of tidu's comes near), with −0 written as 0."""
    x = pl.col(column)
    rounded = pl.when(x.abs() < 1e9).then(x.round(CSV_DECIMALS)).otherwise(x)
    return pl.when(rounded == 0).then(0.0).otherwise(rounded).alias(column)


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    """UTF-8 with BOM so that spreadsheet software in Chinese offices opens it correctly. Numbers
    are rounded to CSV_DECIMALS and written without trailing zeros or exponents (`300`,
    `0.76681`, not `300.000000`). Written straight to the file (as one string, a province's 2.4 GB
    candidates.csv was held three times)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rounded = neutralize(frame).with_columns(_as_printed(c) for c, t in frame.schema.items() if t.is_float())
    with open(path, "wb") as out:
        out.write(b"\xef\xbb\xbf")
        rounded.write_csv(out, float_scientific=False)
    return path


VERDICTS = ("是", "待核实", "否")


def verdict(columns) -> pl.Expr:
    """A candidate's verdict as the workbook and the PDF write it, as `eligible`: 是 where the
    rulebook passes, 待核实 where no rule decided (no rulebook in force: a null eligible) or only
    manual checks stand between the firm and the tier (eligible_if_unknowns_hold, where `columns`
    has it), else 否 (candidates.csv keeps true/false: `candidates_csv_view`)."""
    waiting = pl.col("eligible").is_null()
    if "eligible_if_unknowns_hold" in columns:
        waiting = waiting | pl.col("eligible_if_unknowns_hold").fill_null(False)
    return (pl.when(pl.col("eligible")).then(pl.lit("是")).when(waiting).then(pl.lit("待核实"))
            .otherwise(pl.lit("否")).cast(pl.Enum(VERDICTS)).alias("eligible"))


def candidates_csv_view(candidates: pl.DataFrame) -> pl.DataFrame:
    """candidates.csv's columns (outputs.md: `eligible` is true or false, `gaps` what an
    ineligible firm lacks). The file has no column of manual checks, as the xlsx and the PDF
    have, so where a firm is not found eligible and no failed condition is named, `gaps` says
    what waits on a person (`needs_review`: each item ends 需人工核实, or 未收录该季度适用的…规则 for a
    tier with no rulebook in force, whose verdict the xlsx and the PDF show as 待核实 and the
    file as false)."""
    eligible, gaps, review = pl.col("eligible").fill_null(False), pl.col("gaps"), pl.col("needs_review")

    def blank(text: pl.Expr) -> pl.Expr:   # compared as they are: a province's texts stay categorical
        return text.is_null() | (text == "")

    return candidates.select(
        "uscc", "name", "district", "tier", eligible, "points",
        pl.when(~eligible & blank(gaps) & ~blank(review)).then(review).otherwise(gaps).alias("gaps"),
        "probability", "rank", "reasons",
    )


def write_candidates_xlsx(candidates: pl.DataFrame, path: Path, tiers: dict[str, str],
                          rows_per_sheet: int = SHEET_ROWS - 1, created: dt.datetime = DOCUMENT_DATE,
                          notes: list[tuple[str, str]] | None = None) -> Path:
    """One sheet per tier in rank order, Chinese headers, frozen header row, widths and number
    formats. A tier with more rows than a sheet holds goes on in sheets `<tier> (2)`, `(3)`, …,
    so that the workbook keeps every row of candidates.csv. `created` is the workbook's date in
    its properties (the run passes its quarter's last day), never the time of writing: the same
    lists give the same bytes. `notes`, (heading, text) pairs, say what the columns and words
    mean, for a reader who has only the workbook: each is the comment of the header cell it names
    on every tier sheet (a heading that names no column goes to the first one), so the workbook
    keeps outputs.md's shape, one sheet per tier (a first sheet 说明 broke it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = neutralize(candidates)
    frame = frame.with_columns(verdict(frame.columns))   # 是 / 待核实 / 否, a three-word Enum
    sheets = [page for key, zh in tiers.items()
              for page in _pages(zh, frame.filter(pl.col("tier_key") == key).sort("rank")
                                 .select(list(CANDIDATE_HEADERS)), rows_per_sheet)]
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        layout = Path(tmp) / "layout.xlsx"
        _write_layout(layout, sheets, created, notes)
        _fill_sheets(layout, path, [part for _, part in sheets], Path(tmp))
    return path


def _pages(title: str, part: pl.DataFrame, rows_per_sheet: int) -> list[tuple[str, pl.DataFrame]]:
    """(sheet name, rows) of one tier; an empty tier still gets its sheet."""
    starts = range(0, max(part.height, 1), rows_per_sheet)
    return [((title if k == 0 else f"{title} ({k + 1})")[:31], part.slice(start, rows_per_sheet))
            for k, start in enumerate(starts)]


# ── the layout, by xlsxwriter ─────────────────────────────────────────────────────────────

_WIDTHS = {"rank": 6, "uscc": 21, "name": 30, "district": 10, "tier": 16, "eligible": 10, "points": 7,
           "probability": 9, "gaps": 48, "needs_review": 36, "reasons": 48}
_COLUMN_FORMATS = {"probability": "pct", "points": "pts", "gaps": "wrap", "needs_review": "wrap",
                   "reasons": "wrap"}


def header_comments(notes: list[tuple[str, str]]) -> dict[int, str]:
    """Column position → its header cell's comment: the notes whose heading names the column,
    and those that name none on the first column; each note as `heading：text`."""
    headers = list(CANDIDATE_HEADERS.values())
    comments: dict[int, list[str]] = {}
    for heading, text in notes:
        j = headers.index(heading) if heading in headers else 0
        comments.setdefault(j, []).append(f"{heading}：{text}")
    return {j: "\n\n".join(texts) for j, texts in sorted(comments.items())}


HEADER_CELL = {"bold": True, "bg_color": "#DDE6F0", "border": 1, "text_wrap": True, "valign": "vcenter"}   # both workbooks


def _write_layout(path: Path, sheets: list[tuple[str, pl.DataFrame]], created: dt.datetime,
                  notes: list[tuple[str, str]] | None = None) -> None:
    """The workbook with its header rows only; the filter covers the rows to come; the notes as
    the header cells' comments (`header_comments`)."""
    import xlsxwriter

    options = {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    with xlsxwriter.Workbook(str(path), options) as wb:
        wb.set_properties({"created": created})
        fmt = {"head": wb.add_format(HEADER_CELL),
               "pct": wb.add_format({"num_format": "0.0%"}),
               "pts": wb.add_format({"num_format": "0.0"}),
               "wrap": wb.add_format({"text_wrap": True, "valign": "top"})}
        comments = header_comments(notes or [])
        for title, part in sheets:
            ws = wb.add_worksheet(title)
            for j, col in enumerate(CANDIDATE_HEADERS):
                ws.write_string(0, j, CANDIDATE_HEADERS[col], fmt["head"])
                ws.set_column(j, j, _WIDTHS[col], fmt.get(_COLUMN_FORMATS.get(col, "")))
                if j in comments:
                    ws.write_comment(0, j, comments[j], {"x_scale": 4, "y_scale": 3, "font_name": "宋体",
                                                         "font_size": 10})
            ws.freeze_panes(1, 0)
            ws.autofilter(0, 0, max(part.height, 1), len(CANDIDATE_HEADERS) - 1)


def _fill_sheets(layout: Path, path: Path, parts: list[pl.DataFrame], tmp: Path) -> None:
    """Copy the layout's package to `path`, each sheet with its data rows after the header.
    RENDER_AHEAD worker threads render the next sheets' rows while this one is compressed
    (Polars and the deflaters release the GIL). With zlib's deflate the two cores were busy with
    one worker already; with ISA-L's (4× less CPU) a second worker turns the freed core into
    rendering: 7.4M rows 27 s, against 37 s with one worker and 41 s with one and zlib."""
    with zipfile.ZipFile(layout) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    sheets = {int(found.group(1)) - 1: data for info, data in members
              if (found := _SHEET.fullmatch(info.filename))}

    def render(k: int) -> tuple[Path, int]:
        rows = tmp / f"rows{k}.xml"
        return rows, _render_rows(parts[k], _column_styles(sheets[k]), rows)

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst, \
            ThreadPoolExecutor(max_workers=RENDER_AHEAD) as worker:
        rendering = {k: worker.submit(render, k) for k in sorted(sheets)[:RENDER_AHEAD]}
        for info, data in members:
            found = _SHEET.fullmatch(info.filename)
            if found is None or int(found.group(1)) - 1 not in sheets:
                dst.writestr(_entry(info), data)
                continue
            k = int(found.group(1)) - 1
            rows, last_row = (rendering.pop(k, None) or worker.submit(render, k)).result()
            if k + RENDER_AHEAD in sheets:
                rendering[k + RENDER_AHEAD] = worker.submit(render, k + RENDER_AHEAD)
            head, tail = data.split(b"</sheetData>")
            head, tail = _with_dimension(head, last_row), b"</sheetData>" + tail
            size = len(head) + rows.stat().st_size + len(tail)
            with dst.open(_entry(info), "w", force_zip64=size > zipfile.ZIP64_LIMIT) as out, \
                    rows.open("rb") as body:
                _deflate_with_isal(out)
                out.write(head)
                shutil.copyfileobj(body, out, 1 << 20)
                out.write(tail)
            rows.unlink()


_SHEET = re.compile(r"xl/worksheets/sheet(\d+)\.xml")


def _deflate_with_isal(entry) -> None:
    """Have a zip entry opened for writing, before its first byte, deflated by ISA-L instead of
    zlib: zipfile makes its compressor when the entry is opened, a zlib compressobj (raw deflate,
    `compress` and `flush`), and python-isal's is a drop-in one. Python's zipfile keeps it in a
    private attribute; where that is not there, the entry stays with zlib (slower, same format)."""
    from isal import isal_zlib

    info = getattr(entry, "_zinfo", None)
    if getattr(info, "compress_type", None) == zipfile.ZIP_DEFLATED and getattr(entry, "_compressor", None):
        entry._compressor = isal_zlib.compressobj(SHEET_DEFLATE_LEVEL, isal_zlib.DEFLATED, -15)


def _entry(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """A fresh entry with the layout entry's name, time stamp, mode and compression method, at DEFLATE_LEVEL."""
    entry = zipfile.ZipInfo(info.filename, info.date_time)
    entry.compress_type, entry.external_attr = info.compress_type, info.external_attr
    entry._compresslevel = DEFLATE_LEVEL  # what ZipFile.open(entry, "w") compresses at (3.11 has no public name)
    entry.create_system = info.create_system
    return entry


def _column_styles(sheet_xml: bytes) -> dict[int, str]:
    """The style (xf index) of each formatted column, 0-based: a data cell written without a
    format of its own takes its column's, as xlsxwriter does."""
    namespace = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    styles = {}
    for col in ElementTree.fromstring(sheet_xml).iterfind("m:cols/m:col", namespace):
        if "style" in col.attrib:
            for j in range(int(col.get("min")) - 1, int(col.get("max"))):
                styles[j] = col.get("style")
    return styles


def _with_dimension(head: bytes, last_row: int) -> bytes:
    """The sheet's `<dimension>` extended from the header row to the last row written."""
    return re.sub(rb'<dimension ref="([A-Z]+)1:([A-Z]+)1"/>',
                  lambda m: b'<dimension ref="%s1:%s%d"/>' % (m.group(1), m.group(2), last_row),
                  head, count=1) if last_row > 1 else head


# ── the data rows, rendered column-wise ───────────────────────────────────────────────────

def _render_rows(part: pl.DataFrame, styles: dict[int, str], path: Path) -> int:
    """Write the `<row>` elements of the data rows (sheet rows 2, 3, …) to `path`; returns the
    number of the last sheet row with a cell (1 when there is none)."""
    last_row = 1
    with path.open("wb") as out:
        for start in range(0, part.height, ROWS_PER_CHUNK):
            chunk = part.slice(start, ROWS_PER_CHUNK).with_columns(
                (pl.int_range(pl.len(), dtype=pl.Int64) + start + 2).alias("_row"))
            rows = chunk.select(_row_xml(chunk, styles)).to_series()
            out.write(_back_to_back(rows))
            written = chunk["_row"].filter(rows.is_not_null())
            last_row = written[-1] if len(written) else last_row
    return last_row


def _back_to_back(text: pl.Series) -> memoryview:
    """The strings one after another, a null leaving nothing: Arrow's character buffer between the
    first string's start and the last one's end, not copied (joined into one string, then copied
    out to Python bytes, this took a quarter of the rendering)."""
    array = text.to_arrow(compat_level=pl.CompatLevel.oldest())   # large_string: 64-bit offsets
    _, offsets, characters = array.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)
    start, stop = ends[array.offset], ends[array.offset + len(array)]
    return memoryview(characters)[start:stop] if stop > start else memoryview(b"")


def _row_xml(chunk: pl.DataFrame, styles: dict[int, str]) -> pl.Expr:
    """Each data row's `<row>` element (null for a row without a cell). A column without nulls
    has its cells' pieces laid straight into the row; one with nulls makes each cell whole
    first, so that a null leaves no trace."""
    number = pl.col("_row").cast(pl.Utf8)
    pieces, present = [], []
    for j, col in enumerate(CANDIDATE_HEADERS):
        cell = _cell_pieces(chunk[col], chr(ord("A") + j), number, styles.get(j))
        if chunk[col].null_count() and col != "eligible":   # a null verdict reads 待核实
            pieces.append(pl.when(pl.col(col).is_not_null()).then(pl.concat_str(cell)))
        else:
            pieces.extend(cell)
        present.append(pl.col(col).is_not_null())
    return pl.when(pl.any_horizontal(present)).then(pl.concat_str(
        [pl.lit('<row r="'), number, pl.lit('">'), *pieces, pl.lit("</row>")], ignore_nulls=True))


def _cell_pieces(values: pl.Series, letter: str, number: pl.Expr, style: str | None
                 ) -> list[pl.Expr]:
    """The pieces of one column's `<c>` elements: a number, or an inline string (a categorical's,
    such as the verdict's three words, worked out once per distinct value)."""
    start = [pl.lit(f'<c r="{letter}'), number, pl.lit('"' + (f' s="{style}"' if style else ""))]
    if values.dtype.is_numeric() or values.dtype == pl.Boolean:
        return [*start, pl.lit("><v>"), pl.lit(_number_text(values)), pl.lit("</v></c>")]
    if isinstance(values.dtype, (pl.Categorical, pl.Enum)):
        return [*start, pl.lit(' t="inlineStr">'), pl.lit(_inline_coded(values)), pl.lit("</c>")]
    return [*start, pl.lit(' t="inlineStr">'), _inline_string(values.cast(pl.Utf8)),
            pl.lit("</c>")]


def _inline_coded(values: pl.Series) -> pl.Series:
    """`_inline_string` of a categorical column, worked out once per distinct value and laid out
    by the values' codes (a province's needs_review holds 2.4 GB of text in 102 distinct values:
    checked and escaped row by row, these columns took 8.5 of the workbook's 45.5 CPU seconds)."""
    distinct = values.drop_nulls().unique()
    bodies = pl.select(_inline_string(distinct.cast(pl.Utf8))).to_series()
    return values.to_physical().replace_strict(distinct.to_physical(), bodies, default=None,
                                               return_dtype=pl.Utf8)


def _number_text(values: pl.Series) -> pl.Series:
    """Each number as xlsxwriter writes it (`%.16G`), each distinct value formatted once. Whole
    numbers under 10^15 (ranks) read the same in %.16G as in Polars' own text."""
    if values.dtype.is_integer() and values.drop_nulls().is_between(-10**15, 10**15).all():
        return values.cast(pl.Utf8)
    key = values
    if values.dtype.is_float():
        if not values.is_finite().fill_null(True).all():
            raise ValueError(f"candidates.xlsx: {values.name} holds NaN or an infinity, "
                             "which no spreadsheet cell can hold")
        # keyed by their bits: −0.0 is written "-0", not "0"
        bits = pl.Series(values.cast(pl.Float64).fill_null(0.0).to_numpy().view(np.int64))
        key = pl.select(pl.when(values.is_not_null()).then(bits)).to_series()
    distinct = key.drop_nulls().unique()
    numbers = (distinct.to_numpy().view(np.float64).tolist() if values.dtype.is_float()
               else distinct.to_list())
    return key.replace_strict(distinct, [f"{v:.16G}" for v in numbers], default=None,
                              return_dtype=pl.Utf8)


# What xlsxwriter does to a string it writes in constant-memory mode (worksheet._write_string,
# _write_cell and XMLwriter's escapes): cut to 32,767 UTF-16 units, control characters and
# literal `_xHHHH_` escaped, `<r>…</r>` (rich text) passed through, `xml:space="preserve"` for
# leading or trailing whitespace, `& < >` escaped. Text that needs none of it but the last —
# almost all — is handled column-wise; the rest (`_ODD` is a superset: Rust's \s lacks only
# \x1c–\x1f, caught as control characters) goes through `_inline_body`, once per distinct value.
_ODD = r"[\x00-\x08\x0B-\x1F\x{FFFE}\x{FFFF}]|_x[0-9a-fA-F]{4}_|^\s|\s$|^<r>"
_MAX_UTF16 = 32_767
_ESCAPED_ESCAPE = re.compile("(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile(r"([\x00-\x08\x0b-\x1f])")
_EDGE_SPACE = re.compile(r"^\s|\s$")


def _inline_string(text: pl.Series) -> pl.Expr:
    """The `<is>` element of each string."""
    odd = text.str.contains(_ODD) | (text.str.len_chars() > _MAX_UTF16 // 2)
    plain = pl.concat_str([pl.lit("<is><t>"), _escape(text), pl.lit("</t></is>")])
    unusual = text.filter(odd).unique()
    if unusual.is_empty():
        return plain
    bodies = [_inline_body(s) for s in unusual.to_list()]
    return pl.when(pl.lit(odd)).then(pl.lit(text).replace_strict(unusual, bodies, default=None)
                                     ).otherwise(plain)


def _escape(text: pl.Series) -> pl.Expr:
    """`& < >` as XML entities (skipped for a column that has none)."""
    if not text.str.contains("[&<>]").any():
        return pl.lit(text)
    return (pl.lit(text).str.replace_all("&", "&amp;", literal=True)
            .str.replace_all("<", "&lt;", literal=True).str.replace_all(">", "&gt;", literal=True))


def _inline_body(text: str) -> str:
    """The `<is>` element xlsxwriter writes for one string, step by step."""
    if len(text.encode("utf-16-le", "surrogatepass")) // 2 > _MAX_UTF16:
        units = 0
        for i, char in enumerate(text):  # cut without splitting a character above U+FFFF
            units += 2 if ord(char) > 0xFFFF else 1
            if units > _MAX_UTF16:
                text = text[:i]
                break
    text = _ESCAPED_ESCAPE.sub(r"_x005F\1", text)
    text = _CONTROL.sub(lambda m: f"_x{ord(m.group(1)):04X}_", text)
    text = text.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    if text.startswith("<r>") and text.endswith("</r>"):
        return f"<is>{text}</is>"
    space = ' xml:space="preserve"' if _EDGE_SPACE.search(text) else ""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<is><t{space}>{text}</t></is>"


ALLOCATION_HEADERS = {"uscc": "统一社会信用代码", "name": "企业名称", "tier": "层级", "instrument": "资助工具",
                      "amount_wan": "金额(万元)", "rationale": "理由 (入选、工具、金额、期望价值的算式)"}
_ALLOCATION_WIDTHS = {"uscc": 21, "name": 34, "tier": 16, "instrument": 16, "amount_wan": 11, "rationale": 90}


def write_allocation_xlsx(allocation: pl.DataFrame, path: Path, created: dt.datetime = DOCUMENT_DATE) -> Path:
    """allocation.csv for people: one sheet 资金分配, Chinese headers, the credit codes as text
    (a double-clicked CSV shows an all-digit code as 9.13203E+17 and loses its last digits for
    good), amounts as numbers, a total row. `created` as for candidates.xlsx: the same allocation
    gives the same bytes."""
    import xlsxwriter

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = neutralize(allocation.select(list(ALLOCATION_HEADERS)))
    options = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
    with xlsxwriter.Workbook(str(path), options) as wb:
        wb.set_properties({"created": created})
        head = wb.add_format(HEADER_CELL)
        wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        money = wb.add_format({"num_format": "#,##0.##", "valign": "top"})
        text = wb.add_format({"num_format": "@", "valign": "top"})
        bold = wb.add_format({"bold": True, "num_format": "#,##0.##"})
        ws = wb.add_worksheet("资金分配")
        for j, (col, header) in enumerate(ALLOCATION_HEADERS.items()):
            ws.write_string(0, j, header, head)
            ws.set_column(j, j, _ALLOCATION_WIDTHS[col])
        for i, row in enumerate(frame.iter_rows(named=True), start=1):
            for j, col in enumerate(ALLOCATION_HEADERS):
                value = row[col]
                if col == "amount_wan":
                    ws.write_number(i, j, float(value), money)
                else:
                    ws.write_string(i, j, "" if value is None else str(value), text if col == "uscc" else wrap)
        total = frame.height + 1
        ws.write_string(total, 0, "合计", wb.add_format({"bold": True}))
        ws.write_number(total, list(ALLOCATION_HEADERS).index("amount_wan"),
                        float(frame["amount_wan"].sum()) if frame.height else 0.0, bold)
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(frame.height, 1), len(ALLOCATION_HEADERS) - 1)
    return path
