"""Read a drop folder: find each table's file, decode it, find its header row, name its columns.

The result is text: every cell as the clerk typed it, under the canonical column name, with the
row number a person sees in the spreadsheet (`_row`). Parquet numbers and dates are the exception:
they stay numbers and dates (`NATIVE_DTYPES`), which data_contracts types exactly as it would
their text, without writing millions of them out as text first. Typing and judging the values is
data_contracts' job. Anything that makes a file unreadable raises `DropError` with a Chinese
message naming the file (the CLI turns it into exit status 2, without a traceback).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from data_contracts.coerce import NATIVE_DTYPES
from data_contracts.schema import (
    PERSONAL_COLUMNS,
    TABLES,
    Column,
    Table,
    header_index,
    normalize_header,
    table_for_stem,
)

READABLE = (".csv", ".xlsx", ".parquet")
_HEADER_SCAN_ROWS = 15
_UNIT_FACTORS = {  # (unit written in the header, unit the column expects) → multiply by
    ("元", "万元"): 0.0001, ("千元", "万元"): 0.1, ("亿元", "万元"): 10_000.0,
    ("万元", "亿元"): 0.0001, ("元", "亿元"): 1e-8,
}


class DropError(Exception):
    """A file or drop that cannot be read at all; the message is for the clerk."""


@dataclass
class RawTable:
    table: Table
    path: Path
    frame: pl.DataFrame | None            # canonical columns as Utf8 (or NATIVE_DTYPES), plus `_row`;
    sha256: str                           # None once handed over for checking (`take_frame`)
    encoding: str | None
    title_rows: int
    unit_factors: dict[str, float] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)
    personal_columns_dropped: list[str] = field(default_factory=list)
    blank_rows_skipped: int = 0
    sheet: str | None = None              # the worksheet read, for an .xlsx file
    headers: dict[str, str] = field(default_factory=dict)  # canonical column → its header as written
    missing_optional: list[str] = field(default_factory=list)  # optional columns absent (labels)
    total_rows: list[int] = field(default_factory=list)   # 合计 / 总计 / 小计 rows, not read as data
    unheaded: dict[int, int] = field(default_factory=dict)   # column (1-based) without a header → filled cells
    rows_read: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows_read = self.frame.height

    def take_frame(self) -> pl.DataFrame:
        """The text frame, handed over: the table no longer holds it, so that checking can let
        each table's text go once it is typed (at a million firms it is gigabytes)."""
        frame, self.frame = self.frame, None
        return frame


@dataclass
class Drop:
    folder: Path
    tables: dict[str, RawTable]
    ignored_files: list[str]
    missing_tables: list[str]


def drop_notes(drop: Drop) -> list[str]:
    """What the clerk should know about the drop's shape, in Chinese, one line each: an optional
    column the sheet lacks (read as empty — a patent without 授权公告日 counts as not granted),
    beside the headers tidu did not recognise, which may be it under another name; a file tidu
    does not read; a table not provided."""
    notes = []
    for raw in drop.tables.values():
        extras = "、".join(f"「{h}」" for h in raw.extra_columns)
        if raw.missing_optional:
            line = f"{raw.path.name}: 没有可选列{'、'.join(f'「{c}」' for c in raw.missing_optional)}, 按空值处理"
            if extras:
                line += f"; 未识别的列{extras}已忽略 — 若其中某列就是所缺的列, 请把表头改成所缺的列名"
            notes.append(line)
        elif extras:
            notes.append(f"{raw.path.name}: 未识别的列{extras}已忽略")
        for name, factor in raw.unit_factors.items():   # 营业收入(元): every value of the column changed
            column = raw.table.column(name)
            notes.append(f"{raw.path.name}: 列「{raw.headers.get(name, column.label)}」按表头的单位换算为"
                         f"{column.unit} (×{factor:g}); 若表中数字其实已是{column.unit}, 请改正表头")
        if raw.total_rows:
            shown = "、".join(str(r) for r in raw.total_rows[:5]) + (" 等" if len(raw.total_rows) > 5 else "")
            notes.append(f"{raw.path.name}: 第 {shown} 行是合计行, 不是企业数据, 未读入")
        for position, filled in raw.unheaded.items():   # a header cell cleared, or a remark column
            notes.append(f"{raw.path.name}: 第 {position} 列 ({_column_letters(position)} 列) 没有表头, 其中 {filled} 个"
                         "单元格有内容, 未读入; 若是数据, 请补上表头")
    missing = [TABLES[n].stem_zh for n in drop.missing_tables]
    for name in drop.ignored_files:
        if Path(name).suffix.lower() == ".xls":
            notes.append(f"{name}: .xls (Excel 97-2003) 格式无法读取, 已忽略; 请在 Excel 中另存为 .xlsx")
        else:
            hint = f"; 若它是「{'」或「'.join(missing)}」表, 请按表名给文件命名" if missing else ""
            notes.append(f"{name}: 不是 tidu 认识的表, 已忽略{hint}")
    if missing:
        notes.append(f"未提供的表: {'、'.join(missing)} (文件名应为 表名.csv / .xlsx / .parquet); "
                     "这些表的数据按没有处理")
    return notes


def read_drop(folder: Path) -> Drop:
    """Every table file in the folder, read as text; sub-folders and `_`/`.`-files are ignored."""
    by_table, ignored = locate_tables(folder)
    tables = {name: read_table(TABLES[name], path) for name, path in by_table.items()}
    missing = [name for name in TABLES if name not in tables]
    return Drop(Path(folder), tables, ignored, missing)


def locate_tables(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """(the file of each table in the folder, the files that are no table); raises DropError for a
    folder that is missing or a table with two files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DropError(f"数据目录不存在或不是文件夹: {folder}")
    by_table: dict[str, Path] = {}
    ignored: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.is_dir() or path.name.startswith(("_", ".", "~$")):
            continue
        table = table_for_stem(path.stem) if path.suffix.lower() in READABLE else None
        if table is None:
            ignored.append(path.name)
            continue
        if table.name in by_table:
            raise DropError(f"{by_table[table.name].name} 和 {path.name} 都像是「{table.stem_zh}」表; "
                            "每张表只能有一个文件, 请删除或改名其中一个")
        by_table[table.name] = path
    return by_table, ignored


def read_table(table: Table, path: Path) -> RawTable:
    suffix = path.suffix.lower()
    sha, blank = _digest(path)  # a megabyte at a time: the file is never held whole for its hash
    if blank:
        raise DropError(f"{path.name}: 文件为空 (0 行), 无法读取「{table.stem_zh}」表")
    encoding = None
    if suffix == ".parquet":
        top, rows = _read_parquet_grid(path)
        return _name_columns(table, path, top, rows, sha, encoding)
    if suffix == ".csv":
        grid, encoding, ragged = _read_csv_grid(path)
        return _name_columns(table, path, grid.head(_HEADER_SCAN_ROWS), grid.slice, sha, encoding, ragged)
    grid, sheet = _read_xlsx_grid(path, table)
    try:
        raw = _name_columns(table, path, grid.head(_HEADER_SCAN_ROWS), grid.slice, sha, encoding)
    except DropError as err:
        raise DropError(f"{err} (读取的工作表: 「{sheet}」; 若数据在另一张工作表, 请把它命名为「{table.stem_zh}」)") from None
    raw.sheet = sheet
    return raw


def _digest(path: Path) -> tuple[str, bool]:
    """(sha256 of the file, whether it holds nothing but whitespace), read a megabyte at a time."""
    digest, blank = hashlib.sha256(), True
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            blank = blank and chunk.isspace()
    return digest.hexdigest(), blank


def _encoding(path: Path) -> tuple[str, str | None]:
    """(utf-8-sig, utf-8 or gb18030; the text when the file had to be decoded whole — GB18030
    only), or DropError. UTF-8 is checked a megabyte at a time, without holding the file or its
    text; GB18030 must also look like Chinese text once decoded."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DropError(f"{path.name}: 文件编码为 UTF-16, tidu 只读 UTF-8 或 GB18030/GBK 的 CSV; "
                        "请在 Excel 中另存为「CSV UTF-8(逗号分隔)」")
    bom = head.startswith(codecs.BOM_UTF8)
    if b"\x00" in head and not bom:
        raise DropError(f"{path.name}: 含二进制内容, 不是文本 CSV 文件 (可能是改了扩展名的其他文件)")
    if _is_utf8(path):
        return ("utf-8-sig" if bom else "utf-8"), None
    data = path.read_bytes()
    if bom:  # only now is the file read whole: for the offset the clerk is told
        try:
            data[3:].decode("utf-8")
        except UnicodeDecodeError as err:
            raise DropError(f"{path.name}: 文件标明为 UTF-8 但第 {err.start} 字节处无法解码; "
                            "请用 Excel 重新另存为 CSV UTF-8") from None
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        raise DropError(f"{path.name}: 既不是 UTF-8 也不是 GB18030/GBK 编码, 无法判断编码; "
                        "请另存为 CSV UTF-8") from None
    if not _looks_like_chinese(text):
        raise DropError(f"{path.name}: 无法确定文件编码 (按 GB18030 解码后不像中文文本); "
                        "请另存为 CSV UTF-8 后重新提交")
    return "gb18030", text


def _is_utf8(path: Path) -> bool:
    """Whether the file is valid UTF-8, decoded a megabyte at a time and the text let go."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _looks_like_chinese(text: str) -> bool:
    """Decoded as GB18030, real Chinese text is mostly common CJK ideographs and punctuation."""
    sample = [ch for ch in text[:200_000] if ord(ch) > 127]
    if not sample:
        return True
    common = sum(1 for ch in sample if "\u4e00" <= ch <= "\u9fff" or ch in "（），。；：、“”《》【】—·％")
    return common / len(sample) > 0.9 and not any(unicodedata.category(ch) == "Co" for ch in sample)


def _read_csv_grid(path: Path) -> tuple[pl.DataFrame, str, dict[int, int]]:
    """(the file's cells as text, one grid row per CSV record; its encoding; the lines longer than
    the table, `_overlong_lines`)."""
    encoding, text = _encoding(path)
    # UTF-8 files are read by polars from the file itself (a BOM is skipped); GB18030 as UTF-8 bytes.
    source = path if text is None else text.encode()
    del text
    overlong = False

    def read(skip: int = 0) -> pl.DataFrame:
        """The grid from record `skip` on, as wide as its first record. Read strictly first: a
        record with more cells than that is no error of the file's shape for Polars, only with
        truncation, which drops the extra cells without a word (found again by _overlong_lines)."""
        nonlocal overlong
        try:
            return pl.read_csv(source, has_header=False, infer_schema=False, skip_rows=skip, quote_char='"')
        except pl.exceptions.ComputeError as err:
            if "more fields" not in str(err):
                raise
            overlong = True
            return pl.read_csv(source, has_header=False, infer_schema=False, skip_rows=skip,
                               truncate_ragged_lines=True, quote_char='"')

    try:
        grid = read()
        titles: list[str] = []
        # title lines above the header (a title padded with fewer commas than the header is wider
        # than one cell, and a record longer than the first is then the header), or a table split
        # by something else
        if grid.width == 1 or overlong:
            titles, header = _top_lines(path, encoding)
            if header is None:   # no line of several cells: no header follows the one-cell lines
                if grid.width == 1:
                    _refuse_other_separators(path, encoding)
                titles = []
        if titles:  # polars takes the table's width from the first line: read below the titles
            overlong = False   # (the header was longer than the title above it)
            rest = read(len(titles))
            top = pl.DataFrame({rest.columns[0]: titles}).with_columns(
                pl.lit(None, pl.Utf8).alias(c) for c in rest.columns[1:])
            grid = pl.concat([top, rest])
    except pl.exceptions.PolarsError as err:  # polars' own parse errors carry no file name
        detail = str(err).splitlines()[0][:120]
        found = _misquoted_cell(path, encoding)
        if found is None:
            raise DropError(f"{path.name}: 不是可读的 CSV 表格 ({detail})") from None
        line, column = found
        raise DropError(f"{path.name} 第 {line} 行, {column}: 英文双引号使用不规范, 无法读取 CSV 表格; "
                        "单元格内的双引号须成对出现 (整格用双引号括起, 格内的双引号写成两个), 请在 Excel "
                        f"中检查该格后重新另存为 CSV ({detail})") from None
    ragged = _overlong_lines(path, encoding, grid.width, len(titles)) if overlong else {}
    return _rechunked(grid), encoding, ragged  # polars parses in blocks: one chunk per column, as for parquet


def _overlong_lines(path: Path, encoding: str, width: int, titles: int) -> dict[int, int]:
    """Spreadsheet row → how many filled cells lie beyond the table's width, for each record below
    the titles that has any: a comma inside a cell not put in double quotes (`某某公司,分公司`),
    which moves every later cell one column on. Trailing empty cells (`…,存续,,`) are no such
    thing. Read again with Python's csv module, only for a file Polars found such a record in."""
    found = {}
    with open(path, encoding=encoding, newline="") as fh:
        for i, record in enumerate(csv.reader(fh)):
            if i >= titles and (filled := sum(1 for cell in record[width:] if cell.strip())):
                found[i + 1] = filled
    return found


_SEPARATORS = {"\t": "制表符 (Tab)", ";": "分号", "|": "竖线", "，": "中文逗号"}


def _refuse_other_separators(path: Path, encoding: str) -> None:
    """A file of one column whose lines split on a tab, a semicolon, a bar or a Chinese comma is a
    table saved with another separator (Excel's "文本文件 (制表符分隔)", a system export): say so,
    rather than "no header found"."""
    with open(path, encoding=encoding, newline="") as fh:
        lines = [line for line in itertools.islice(fh, _HEADER_SCAN_ROWS) if line.strip()]
    for sep, name in _SEPARATORS.items():
        if lines and sum(line.count(sep) >= 2 for line in lines) >= max(1, len(lines) // 2):
            raise DropError(f"{path.name}: 各列以{name}分隔, 不是英文逗号; 请在 Excel 中打开, "
                            "另存为「CSV UTF-8 (逗号分隔)」后重新放入")


def _top_lines(path: Path, encoding: str) -> tuple[list[str], list[str] | None]:
    """(the one-cell lines on top, the first line of several filled cells) within the rows a header is
    looked for in: a title typed above the header (`宜兴市专利清单`, with no commas after it) and
    the header; (lines, None) when no line of several cells comes (a file of one column)."""
    titles: list[str] = []
    with open(path, encoding=encoding, newline="") as fh:
        for record in itertools.islice(csv.reader(fh), _HEADER_SCAN_ROWS):
            if sum(1 for cell in record if cell.strip()) > 1:
                return titles, record
            titles.append(record[0] if record else "")   # (a comma-padded title too)
    return titles, None


def _misquoted_cell(path: Path, encoding: str) -> tuple[int, str] | None:
    """(line, column) of the first cell whose double quotes break the CSV format, for the clerk:
    the file's line is the spreadsheet's row when no cell above spans lines, the column is named
    by its header (or its position). Only lines holding a quote are looked at, so a large file
    is scanned in seconds; None if no such cell is found."""
    try:
        header = [cell.strip() for cell in _top_lines(path, encoding)[1] or []]
    except csv.Error:   # the broken quote may sit in the header itself
        header = []
    with open(path, encoding=encoding, newline="") as fh:
        for number, line in enumerate(fh, start=1):
            text = line.rstrip("\r\n")
            if '"' not in text:
                continue
            cell = _misquoted_field(text)
            if cell is not None:
                named = header[cell] if cell < len(header) and header[cell] else None
                return number, f"第 {cell + 1} 列「{named}」" if named else f"第 {cell + 1} 列"
    return None


def _misquoted_field(line: str) -> int | None:
    """Position of the first field of one CSV line whose quotes are malformed: a quote inside a
    cell that does not start with one, text after a closing quote, or a quote left open at the
    line's end."""
    field, at_start, quoted, closed = 0, True, False, False
    i = 0
    while i < len(line):
        ch = line[i]
        if quoted:
            if ch == '"':
                if line[i + 1:i + 2] == '"':   # "" inside a quoted cell is one quote
                    i += 1
                else:
                    quoted, closed = False, True
        elif ch == ",":
            field, at_start, closed = field + 1, True, False
        elif closed or (ch == '"' and not at_start):
            return field
        elif ch == '"':
            quoted, at_start = True, False
        else:
            at_start = False
        i += 1
    return field if quoted else None


def _read_xlsx_grid(path: Path, table: Table) -> tuple[pl.DataFrame, str]:
    """(the sheet's cells as text, the sheet's name): the sheet named exactly for the table
    (`财务快报` or `filings`: a workbook whose first sheet holds notes), else the first sheet."""
    import fastexcel

    try:
        reader = fastexcel.read_excel(str(path))
        names = reader.sheet_names
        named = (table.stem_zh, table.name)
        sheet = next((n for n in names if n.strip() in named or n.strip().lower() == table.name), names[0])
        grid = reader.load_sheet(sheet, header_row=None, dtypes="string", skip_rows=0).to_polars()
    except Exception as err:
        raise DropError(f"{path.name}: Excel 文件损坏或不完整, 无法打开; 请在 Excel 中打开原表, 另存为 .xlsx "
                        f"(或 CSV UTF-8) 后重新放入 (技术信息: {str(err).splitlines()[0][:120]})") from None
    return grid, sheet


def _read_parquet_grid(path: Path) -> tuple[pl.DataFrame, Callable[[int], pl.DataFrame]]:
    """(the top rows as text, with the column names as row 0; the rows from a grid row on).

    Below a header on row 0 (the usual case) the cells keep their parquet dtypes where they are
    NATIVE_DTYPES; under a header found further down, every cell is text, as in a spreadsheet.
    """
    try:
        frame = pl.read_parquet(path)
    except Exception as err:
        raise DropError(f"{path.name}: Parquet 文件损坏, 无法读取; 请向提供数据的部门索取完整的文件重新放入 "
                        f"(技术信息: {str(err).splitlines()[0][:120]})") from None
    frame = _rechunked(frame)
    names = frame.columns
    frame = frame.rename({c: f"column_{i + 1}" for i, c in enumerate(names)})
    header = pl.DataFrame([pl.Series(c, [name], pl.Utf8) for c, name in zip(frame.columns, names)])
    top = pl.concat([header, frame.head(_HEADER_SCAN_ROWS - 1).select(pl.all().cast(pl.Utf8))])

    def rows(start: int) -> pl.DataFrame:
        body = frame.slice(start - 1)
        return body if start == 1 else body.select(pl.all().cast(pl.Utf8))

    return top, rows


def _rechunked(frame: pl.DataFrame) -> pl.DataFrame:
    """One chunk per column (a file's row groups come as chunks, and gathers across chunks are
    many times slower), joined a column at a time: a column's chunks go before the next is copied."""
    return pl.DataFrame([frame.drop_in_place(name).rechunk() for name in frame.columns])


def _find_header(table: Table, top: pl.DataFrame) -> int:
    """The first row among the top rows that names the most of the table's columns."""
    index = header_index(table)
    best_row, best_hits = -1, 0
    for i, row in enumerate(top.iter_rows()):
        hits = sum(1 for cell in row if cell and normalize_header(cell)[0].lower() in index)
        if hits > best_hits:
            best_row, best_hits = i, hits
    return best_row if best_hits >= min(2, len(table.required)) else -1


def _name_columns(table: Table, path: Path, top: pl.DataFrame, rows: Callable[[int], pl.DataFrame],
                  sha: str, encoding: str | None, overlong: dict[int, int] | None = None) -> RawTable:
    """`top`: the sheet's first rows as text, to find the header in; `rows(i)`: its rows from row i;
    `overlong`: rows with filled cells beyond the table's width (`_overlong_lines`), their number
    kept as `_extra_cells` for the checks to quarantine."""
    expected = "、".join(c.label for c in table.required)
    if top.height == 0:
        raise DropError(f"{path.name}: 文件没有任何行; 「{table.stem_zh}」表应有表头: {expected}")
    header_row = _find_header(table, top)
    if header_row < 0:
        raise DropError(f"{path.name}: 前 {_HEADER_SCAN_ROWS} 行中找不到表头; 「{table.stem_zh}」表应有列: {expected}")
    index = header_index(table)
    headers = _with_merged_headers(list(top.row(header_row)), list(top.row(header_row - 1)) if header_row else [])
    chosen: dict[str, tuple[str, Column, str | None]] = {}
    extras: list[str] = []
    for source_col, header in zip(top.columns, headers):
        if header is None or not str(header).strip():
            continue
        base, unit = normalize_header(header)
        col = index.get(base.lower())
        if col is None or col.name in chosen:
            extras.append(str(header))
            continue
        chosen[col.name] = (source_col, col, unit)
    missing = [c.label for c in table.required if c.name not in chosen]
    body = rows(header_row + 1)
    unheaded = _filled_without_header(body, top.columns, headers)
    if missing:
        unknown = f"; 文件中未识别的列: {'、'.join(f'「{h}」' for h in extras)} — 若其中有所缺的列, 请把它的表头改成所缺列的名称" \
            if extras else ""
        # a header cell cleared by mistake: the column is there, without its name
        blank = "; " + "、".join(f"第 {j} 列 ({_column_letters(j)} 列)" for j in unheaded) + \
            " 有内容但没有表头 — 若其中有所缺的列, 请补上表头" if unheaded else ""
        raise DropError(f"{path.name}: 缺少必需的列 {'、'.join(missing)}; 「{table.stem_zh}」表应有列: "
                        f"{expected}{unknown}{blank}")
    # A person sees the header on spreadsheet row header_row + 1; data rows follow it.
    columns = [pl.int_range(header_row + 2, header_row + 2 + body.height, dtype=pl.Int64).alias("_row")]
    factors: dict[str, float] = {}
    personal: list[str] = []
    for name, (source_col, col, unit) in chosen.items():
        if name in PERSONAL_COLUMNS:
            personal.append(col.label)
            continue
        native = body.schema[source_col] in NATIVE_DTYPES
        columns.append((pl.col(source_col) if native else pl.col(source_col).cast(pl.Utf8)).alias(name))
        if unit and col.unit and unit not in (col.unit, f"{col.unit}人民币"):
            factor = _UNIT_FACTORS.get((unit, col.unit))
            if factor is None:
                raise DropError(f"{path.name}: 列「{header_text(headers, source_col, top)}」的单位「{unit}」"
                                f"无法换算为{col.unit}")
            factors[name] = factor
    selected = body.select(columns)
    if overlong:
        selected = selected.with_columns(pl.col("_row").replace_strict(
            list(overlong), list(overlong.values()), default=None, return_dtype=pl.Int64).alias("_extra_cells"))
    totals = _total_rows(body, [top.columns[0], next(iter(chosen.values()))[0]], selected["_row"])
    if totals:
        selected = selected.filter(~pl.col("_row").is_in(totals))
    frame = _without_blank_rows(selected)
    written = {name: " ".join(str(header_text(headers, source_col, top)).split())
               for name, (source_col, _, _) in chosen.items() if name not in PERSONAL_COLUMNS}
    absent = [c.label for c in table.columns
              if not c.required and c.name not in chosen and c.name not in PERSONAL_COLUMNS]
    return RawTable(table, path, frame, sha, encoding, header_row, factors, extras, personal,
                    blank_rows_skipped=selected.height - frame.height, headers=written,
                    missing_optional=absent, total_rows=totals, unheaded=unheaded)


def _filled_without_header(body: pl.DataFrame, columns: list[str], headers: list) -> dict[int, int]:
    """Column position (1-based) → filled cells, for the columns whose header cell is empty but
    that hold something below it: nothing reads them, and the clerk should know."""
    blank = [(j + 1, c) for j, (c, h) in enumerate(zip(columns, headers, strict=True))
             if (h is None or not str(h).strip()) and c in body.columns]
    if not blank:
        return {}
    counts = body.select(
        (pl.col(c).is_not_null() & (pl.col(c).cast(pl.Utf8).str.strip_chars() != "")).sum().alias(str(j))
        for j, c in blank).row(0, named=True)
    return {int(j): int(n) for j, n in counts.items() if n}


def _column_letters(position: int) -> str:
    """A spreadsheet's name of a column (1 → A, 27 → AA)."""
    letters = ""
    while position:
        position, rest = divmod(position - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


_TOTAL_WORDS = ("合计", "总计", "小计", "累计", "全市合计")


def _total_rows(body: pl.DataFrame, leftmost: list[str], row_numbers: pl.Series) -> list[int]:
    """Spreadsheet rows of a sheet's totals line (`合计` in its leftmost column, or in the leftmost
    column tidu reads): sums of the rows above, not a firm. They are left out, and said to be
    (`drop_notes`): quarantined, they made a clean sheet fail with "含有不允许的字符 合 计"."""
    at: set[int] = set()
    for col in dict.fromkeys(leftmost):
        if body.schema[col] != pl.Utf8:
            continue
        cells = body.get_column(col)
        maybe = cells.str.contains("计", literal=True).fill_null(False).arg_true()  # a fast first pass
        words = cells.gather(maybe).str.replace_all(r"[\s\u3000:：]", "")
        at.update(maybe.filter(words.is_in(_TOTAL_WORDS)).to_list())
    return row_numbers.gather(sorted(at)).to_list() if at else []


def _with_merged_headers(headers: list, above: list) -> list:
    """A two-row header: a column whose name sits in the row above the header row (a cell merged
    over both rows keeps its text in the top one: 统一社会信用代码 in A1:A2 above 营业收入 in C2
    under a group title 财务指标 in C1) takes that name where the header row is empty. A single
    title line above the header (one filled cell) gives no names."""
    if sum(1 for cell in above if cell is not None and str(cell).strip()) < 2:
        return headers
    return [cell if cell is not None and str(cell).strip() else top
            for cell, top in zip(headers, above, strict=True)]


def _without_blank_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows with every cell empty are spacing in a spreadsheet, not data: skipped (and counted).

    Column by column, only the rows still blank so far are looked at: the first column settles
    nearly every row, and a sheet without blank rows is returned as it is, without a copy.
    """
    blank = frame
    for name, dtype in frame.schema.items():
        if name == "_row" or blank.height == 0:
            continue
        empty = pl.col(name).is_null()
        if dtype == pl.Utf8:
            empty = empty | (pl.col(name).str.strip_chars() == "")
        blank = blank.filter(empty)
    if blank.height == 0:
        return frame
    return frame.filter(~pl.col("_row").is_in(blank.get_column("_row").implode()))


def header_text(headers: list, source_col: str, top: pl.DataFrame) -> str:
    return str(headers[top.columns.index(source_col)])
