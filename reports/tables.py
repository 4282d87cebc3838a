"""CSV and Excel files for people: UTF-8 with BOM, Chinese headers, formula-like text made inert.

Text that starts with `=`, `+`, `-`, `@` (or a tab / carriage return) would run as a formula
when a clerk opens the file in a spreadsheet; every such cell gets a leading apostrophe.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

FORMULA_START = r"^[=+\-@\t\r]"

CANDIDATE_HEADERS = {
    "rank": "排名", "uscc": "统一社会信用代码", "name": "企业名称", "district": "所属板块",
    "tier": "层级", "eligible": "是否符合条件", "points": "评分", "probability": "认定概率",
    "gaps": "差距", "needs_review": "需人工核实", "reasons": "主要因素",
}


def neutralize(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text cell that a spreadsheet would read as a formula, prefixed with `'`."""
    return frame.with_columns([
        pl.when(pl.col(c).str.contains(FORMULA_START)).then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c)).alias(c)
        for c, dtype in frame.schema.items() if dtype == pl.Utf8])


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    """UTF-8 with BOM so that spreadsheet software in Chinese offices opens it correctly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = neutralize(frame).write_csv(float_precision=6)
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    return path


def write_candidates_xlsx(candidates: pl.DataFrame, path: Path, tiers: dict[str, str]) -> Path:
    """One sheet per tier, Chinese headers, frozen header row, widths and number formats."""
    import xlsxwriter

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = neutralize(candidates)
    with xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False}) as wb:
        wb.set_properties({"created": None})
        fmt = {"head": wb.add_format({"bold": True, "bg_color": "#DDE6F0", "border": 1, "text_wrap": True,
                                      "valign": "vcenter"}),
               "pct": wb.add_format({"num_format": "0.0%"}),
               "pts": wb.add_format({"num_format": "0.0"}),
               "wrap": wb.add_format({"text_wrap": True, "valign": "top"})}
        for key, zh in tiers.items():
            part = frame.filter(pl.col("tier_key") == key).sort("rank")
            _sheet(wb, zh, part, fmt)
    return path


_WIDTHS = {"rank": 6, "uscc": 21, "name": 30, "district": 10, "tier": 16, "eligible": 10, "points": 7,
           "probability": 9, "gaps": 48, "needs_review": 36, "reasons": 48}


def _sheet(wb, title: str, part: pl.DataFrame, fmt: dict) -> None:
    ws = wb.add_worksheet(title[:31])
    cols = list(CANDIDATE_HEADERS)
    for j, col in enumerate(cols):
        ws.write_string(0, j, CANDIDATE_HEADERS[col], fmt["head"])
        style = fmt["pct"] if col == "probability" else fmt["pts"] if col == "points" else (
            fmt["wrap"] if col in ("gaps", "needs_review", "reasons") else None)
        ws.set_column(j, j, _WIDTHS[col], style)
    for i, row in enumerate(part.select(cols).iter_rows(), start=1):
        for j, (col, value) in enumerate(zip(cols, row)):
            if value is None:
                continue
            if col == "eligible":
                ws.write_string(i, j, "是" if value else "否")
            elif isinstance(value, (int, float)):
                ws.write_number(i, j, value)
            else:
                ws.write_string(i, j, str(value))
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(part.height, 1), len(cols) - 1)
