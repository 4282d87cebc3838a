"""Identifier checks for the drop: credit codes, patent application numbers, industry codes.

Each check is a pure function that returns ``None`` for a good value or a short Chinese message a
bureau clerk can act on, plus a vectorised form over a polars Series that returns the same messages
(null where the value is good). The vectorised forms validate the common, good case with polars
expressions and call the scalar function only for the rows that fail, so both always agree.

Sources (../shared/reference/criteria.md §5 and appendix items 1 and 6): GB 32100-2015 mod-31 check
character; GS 15-2006 15-digit 注册号 with ISO 7064 MOD 11,10; CNIPA application numbers with a
mod-11 check character; GB/T 4754-2017 section letters and their division ranges (not 2011's).
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import polars as pl

# --- shared normalisation -------------------------------------------------------------------

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space, as a polars replace_many mapping:
# the vectorised twin of the NFKC step the scalar functions use for these characters.
_FULLWIDTH = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "}
_WHITESPACE = r"[\s\u200b\u200c\u200d\u2060\ufeff]"
_WHITESPACE_RE = re.compile(_WHITESPACE)


def _halfwidth(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _normalize_series(s: pl.Series) -> pl.Series:
    """Full-width → half-width, all whitespace removed, upper case (the vectorised `_squash`).

    Only values with a character outside printable ASCII, or a lower-case letter, can change:
    the others (nearly every code a registry writes) are left as they are, without the work.
    """
    s = s.cast(pl.Utf8)
    rows = s.str.contains(r"[^\x21-\x60\x7B-\x7E]").fill_null(False).arg_true()
    if rows.len() == 0:
        return s
    fixed = (
        s.gather(rows)
        .str.replace_many(list(_FULLWIDTH), list(_FULLWIDTH.values()))
        .str.replace_all(_WHITESPACE, "")
        .str.to_uppercase()
    )
    return s.scatter(rows, fixed)


def _map_distinct(s: pl.Series, fn) -> pl.Series:
    """fn applied once per distinct value of a low-cardinality Series, joined back in order."""
    s = s.cast(pl.Utf8)
    uniq = s.unique()
    table = pl.DataFrame(
        {"v": uniq, "out": pl.Series([fn(v) for v in uniq.to_list()], dtype=pl.Utf8)}
    )
    out = pl.DataFrame({"v": s}).join(
        table, on="v", how="left", nulls_equal=True, maintain_order="left"
    )
    return out["out"].alias(s.name)


def _squash(text: str | None) -> str:
    """Strip, full-width → half-width, remove inner whitespace, upper-case."""
    if text is None:
        return ""
    return _WHITESPACE_RE.sub("", _halfwidth(str(text))).upper()


# --- 统一社会信用代码 (GB 32100-2015) ----------------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]  # 1, 3, 9, 27, 19, 26, ...
_USCC_SHAPE = r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$"
_USCC_SHAPE_RE = re.compile(_USCC_SHAPE)
_LEGACY_COOP_RE = re.compile(r"^\d{6}N[A-Z]\d{6}X$")  # 农民专业合作社 (NA) and its branches (NB)


def normalize_uscc(code: str | None) -> str:
    """The code as it should be stored: no spaces, half-width, upper case ('' for None)."""
    return _squash(code)


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character for the first 17 characters of a credit code."""
    if len(first17) != 17:
        raise ValueError(f"need 17 characters, got {len(first17)}: {first17!r}")
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(first17.upper(), _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def legacy_regno_valid(code15: str) -> bool:
    """ISO 7064 MOD 11,10 check of a 15-digit 工商注册号 (GS 15-2006)."""
    if not re.fullmatch(r"\d{15}", code15 or ""):
        return False
    p = 10
    for d in code15[:14]:
        s = (int(d) + p) % 10 or 10
        p = (2 * s) % 11
    return (p + int(code15[14])) % 10 == 1


def _legacy_problem(code: str) -> str | None:
    please = "不是统一社会信用代码; 请提供 18 位统一社会信用代码"
    if re.fullmatch(r"\d{15}", code):
        verdict = "校验通过" if legacy_regno_valid(code) else "校验不通过"
        return f"这是旧版 15 位工商注册号({verdict}), {please}"
    if _LEGACY_COOP_RE.match(code):
        return f"这是旧版 15 位农民专业合作社注册号, {please}"
    return None


def uscc_problem(code: str | None) -> str | None:
    """None for a valid 统一社会信用代码, else what is wrong with it, in Chinese."""
    norm = normalize_uscc(code)
    if not norm:
        return "统一社会信用代码为空"
    if re.fullmatch(r"\d(?:\.\d+)?E\+?\d+", norm):
        return (f"Excel 把信用代码存成了科学计数法 ({norm}), 原来的 18 位已丢失, 无法恢复; "
                "请在原表中把该列设为「文本」格式, 从原始数据重新导出")
    if len(norm) == 15 and (legacy := _legacy_problem(norm)):
        return legacy
    problems = []
    if len(norm) != 18:
        problems.append(f"长度为 {len(norm)} 位, 应为 18 位")
    bad = sorted({ch for ch in norm if ch not in _USCC_VALUE}, key=norm.index)
    if bad:
        problems.append("含有不允许的字符 " + " ".join(f'"{ch}"' for ch in bad))
    if not problems and not norm[2:8].isdigit():
        problems.append(f'第 3–8 位(行政区划码)应为数字, 实际为 "{norm[2:8]}"')
    if problems:
        return "; ".join(problems)
    expected = uscc_check_char(norm[:17])
    if norm[17] != expected:
        return f"校验位应为 {expected}, 实际为 {norm[17]}"
    return None


# Each character's value indexed by its byte, and the alphabet as bytes: the check characters of
# all well-formed codes are computed at once, with numpy, from the codes' bytes.
_USCC_BYTE_VALUE = np.zeros(256, dtype=np.int64)
_USCC_BYTE_VALUE[[ord(ch) for ch in _USCC_VALUE]] = list(_USCC_VALUE.values())
_USCC_ALPHABET_BYTES = np.frombuffer(USCC_ALPHABET.encode("ascii"), dtype=np.uint8)


def _uscc_check_ok(norm: pl.Series) -> pl.Series:
    """Boolean Series: well-formed and the check character agrees (False where not well-formed)."""
    shaped = norm.str.contains(_USCC_SHAPE).fill_null(False)
    text = "".join(norm.filter(shaped).to_list())  # 18 ASCII characters each: the shape says so
    chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(-1, 18)
    total = _USCC_BYTE_VALUE[chars[:, :17]] @ np.array(_USCC_WEIGHTS, dtype=np.int64)
    ok = np.zeros(len(norm), dtype=bool)
    ok[shaped.arg_true().to_numpy()] = chars[:, 17] == _USCC_ALPHABET_BYTES[(31 - total % 31) % 31]
    return pl.Series(norm.name, ok)


def _problems_where(keys: pl.DataFrame, ok: pl.Series, problem) -> pl.Series:
    """Null where ok, else problem(*key values), computed once per distinct failing key."""
    failing = keys.with_row_index("_row").filter(~ok)
    distinct = failing.drop("_row").unique(maintain_order=True)
    msgs = pl.Series("msg", [problem(*row) for row in distinct.iter_rows()], dtype=pl.Utf8)
    found = failing.join(
        distinct.with_columns(msgs), on=keys.columns, how="left", nulls_equal=True
    )
    out = pl.repeat(None, keys.height, dtype=pl.Utf8, eager=True).alias("msg")
    if found.height:
        out = out.scatter(found["_row"], found["msg"])
    return out


def uscc_problems(s: pl.Series) -> pl.Series:
    """Vectorised `uscc_problem`: a Utf8 Series, null where the code is valid."""
    norm = _normalize_series(s)
    keys = pl.DataFrame({"v": s.cast(pl.Utf8)})
    return _problems_where(keys, _uscc_check_ok(norm), uscc_problem).alias(s.name)


def normalize_uscc_series(s: pl.Series) -> pl.Series:
    """Vectorised `normalize_uscc` (nulls stay null)."""
    return _normalize_series(s).alias(s.name)


# --- CNIPA application numbers --------------------------------------------------------------

_APP_WEIGHTS_2003 = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
_APP_WEIGHTS_OLD = [2, 3, 4, 5, 6, 7, 8, 9]
_APP_NEW_RE = re.compile(r"^(\d{4})(\d)(\d{7})\.([0-9X])$")
_APP_OLD_RE = re.compile(r"^(\d{2})(\d)(\d{5})\.([0-9X])$")
_KIND_TYPE = {"1": "发明", "8": "发明", "2": "实用新型", "9": "实用新型", "3": "外观设计"}
_KIND_NAME = {"1": "发明", "8": "PCT 发明", "2": "实用新型", "9": "PCT 实用新型", "3": "外观设计"}
_TYPE_ALIASES = {
    "发明": "发明", "发明专利": "发明", "发明申请": "发明", "发明授权": "发明",
    "实用新型": "实用新型", "实用新型专利": "实用新型", "新型": "实用新型",
    "外观设计": "外观设计", "外观设计专利": "外观设计", "外观": "外观设计",
}


def _mod11_char(digits: str, weights: list[int]) -> str:
    total = sum(int(d) * w for d, w in zip(digits, weights, strict=True))
    r = total % 11
    return "X" if r == 10 else str(r)


def application_no_check_char(first12: str) -> str:
    """Check character of a post-2003 application number (12 digits) or a pre-2003 one (8)."""
    if re.fullmatch(r"\d{12}", first12):
        return _mod11_char(first12, _APP_WEIGHTS_2003)
    if re.fullmatch(r"\d{8}", first12):
        return _mod11_char(first12, _APP_WEIGHTS_OLD)
    raise ValueError(f"need 12 (or, before 2003, 8) digits, got {first12!r}")


def normalize_application_no(text: str | None) -> str:
    """`CN 2023 1 0123456.7`, `ZL2023101234567`, `２０２３…` → `202310123456.7`."""
    s = _squash(text).replace("。", ".")
    s = re.sub(r"^(CN|ZL)", "", s)
    if re.fullmatch(r"\d{12}[0-9X]|\d{8}[0-9X]", s):
        s = f"{s[:-1]}.{s[-1]}"
    return s


def _type_key(patent_type: str | None) -> str | None:
    if patent_type is None:
        return None
    return _TYPE_ALIASES.get(_squash(patent_type))


def patent_type_names(types: pl.Series) -> pl.Series:
    """专利类型 as the input format names it where the text is a known way of writing it
    (`发明专利`, `实用新型专利`, `外观`, full-width or spaced → 发明, 实用新型, 外观设计); any other
    text as written, for the column's own check to name. Each distinct text is looked up once."""
    types = types.cast(pl.Utf8)
    distinct = types.drop_nulls().unique()
    named = [_type_key(t) or t for t in distinct.to_list()]
    return types.replace(distinct, pl.Series(named, dtype=pl.Utf8))


def application_no_problem(no: str | None, patent_type: str | None = None) -> str | None:
    """None for a good CNIPA application number, else the problem in Chinese.

    The kind digit must agree with 专利类型 when that is given (unrecognised types are left to the
    patent_type column's own check).
    """
    norm = normalize_application_no(no)
    if not norm:
        return "申请号为空"
    if m := _APP_NEW_RE.match(norm):
        year, kind, body, check = int(m[1]), m[2], norm[:12], m[4]
        if year < 2003:
            return f"申请号 {norm}: 年份 {year} 早于 2003 年, 12 位申请号自 2003 年 10 月起使用"
    elif m := _APP_OLD_RE.match(norm):
        kind, body, check = m[2], norm[:8], m[4]
        yy = int(m[1])
        if not (yy >= 85 or yy <= 3):
            return f"申请号 {norm}: 8 位旧格式的年份 {m[1]} 不在 1985–2003 年之间"
    else:
        return (f'申请号 "{norm}" 格式不对, 应为 4 位年份 + 1 位类型 + 7 位流水号 + "." + 校验位, '
                "如 202310123456.X")
    if kind not in _KIND_TYPE:
        return f"申请号 {norm}: 类型位为 {kind}, 应为 1/2/3/8/9"
    problems = []
    expected = application_no_check_char(body)
    if check != expected:
        problems.append(f"申请号 {norm}: 校验位应为 {expected}, 实际为 {check}")
    wanted = _type_key(patent_type)
    if wanted is not None and _KIND_TYPE[kind] != wanted:
        problems.append(
            f"申请号 {norm}: 类型位 {kind} ({_KIND_NAME[kind]}) 与专利类型“{patent_type}”不符"
        )
    return "; ".join(problems) or None


def normalize_application_no_series(s: pl.Series) -> pl.Series:
    """Vectorised `normalize_application_no` (nulls become ''); numbers already in the normal
    form are left as they are."""
    s = _normalize_series(s).fill_null("")
    rows = (~s.str.contains(r"^(\d{12}|\d{8})\.[0-9X]$")).arg_true()
    if rows.len() == 0:
        return s
    fixed = s.gather(rows).str.replace_all("。", ".", literal=True).str.replace(r"^(CN|ZL)", "")
    return s.scatter(rows, fixed.str.replace(r"^(\d{12}|\d{8})([0-9X])$", "${1}.${2}"))


# The kind digit's family (invention, utility model, design) as a number, for the fast path.
_TYPE_FAMILY = {"发明": 1, "实用新型": 2, "外观设计": 3}
_KIND_FAMILY = {int(k): _TYPE_FAMILY[t] for k, t in _KIND_TYPE.items()}


def application_no_problems(nos: pl.Series, types: pl.Series | None = None) -> pl.Series:
    """Vectorised `application_no_problem` over application numbers and their 专利类型."""
    if types is None:
        types = pl.repeat(None, len(nos), dtype=pl.Utf8, eager=True)
    types = types.cast(pl.Utf8)
    distinct = types.unique()
    family = [_TYPE_FAMILY.get(_type_key(t)) for t in distinct.to_list()]
    frame = pl.DataFrame({
        "n": normalize_application_no_series(nos),
        "t": types.replace_strict(distinct, pl.Series(family, dtype=pl.Int64), default=None),
    })
    # Fast path for the common, good case: digits as one integer, weights and check by arithmetic.
    frame = frame.with_columns(v=pl.col("n").str.slice(0, 12).str.to_integer(strict=False))
    value = pl.col("v")
    total = pl.lit(0, dtype=pl.Int64)
    for i, w in enumerate(_APP_WEIGHTS_2003):
        total = total + (value // 10 ** (11 - i) % 10) * w
    check = pl.col("n").str.slice(13, 1)
    check = pl.when(check == "X").then(10).otherwise(check.cast(pl.Int64, strict=False))
    kind = (value // 10**7 % 10).replace_strict(_KIND_FAMILY, default=None, return_dtype=pl.Int64)
    ok = (
        pl.col("n").str.contains(r"^20\d{2}[12389]\d{7}\.[0-9X]$")
        & (value // 10**8 >= 2003)
        & (check == total % 11)
        & (pl.col("t").is_null() | (pl.col("t") == kind))
    ).fill_null(False)
    ok_s = frame.select(ok.alias("ok"))["ok"]
    keys = pl.DataFrame({"raw": nos.cast(pl.Utf8), "t": types})
    return _problems_where(keys, ok_s, application_no_problem).alias(nos.name)


# --- GB/T 4754-2017 industry codes ----------------------------------------------------------

# Section letter → (first division, last division), GB/T 4754-2017 (appendix item 1). The 2011
# edition differs from N onwards (N 76–78, O 79–81, …); do not mix them.
SECTION_DIVISIONS: dict[str, tuple[int, int]] = {
    "A": (1, 5), "B": (6, 12), "C": (13, 43), "D": (44, 46), "E": (47, 50), "F": (51, 52),
    "G": (53, 60), "H": (61, 62), "I": (63, 65), "J": (66, 69), "K": (70, 70), "L": (71, 72),
    "M": (73, 75), "N": (76, 79), "O": (80, 82), "P": (83, 83), "Q": (84, 85), "R": (86, 90),
    "S": (91, 96), "T": (97, 97),
}
_DIVISION_SECTION = {d: s for s, (lo, hi) in SECTION_DIVISIONS.items() for d in range(lo, hi + 1)}
_INDUSTRY_RE = re.compile(r"^([A-Z]?)(\d{2,4})$")


def industry_section(code: str | None) -> str | None:
    """The 门类 letter of a code's 大类 (`6513` → `I`, `C3963` → `C`); None if there is none."""
    m = _INDUSTRY_RE.match(_squash(code))
    return _DIVISION_SECTION.get(int(m[2][:2])) if m else None


def normalize_industry_code(code: str | None) -> str | None:
    """Letter + digits (`6513` → `I6513`) when the code is valid, else None."""
    if industry_code_problem(code) is not None:
        return None
    m = _INDUSTRY_RE.match(_squash(code))
    return f"{industry_section(code)}{m[2]}"


def industry_code_problem(code: str | None) -> str | None:
    """None for a valid GB/T 4754-2017 code (letter optional), else the problem in Chinese.

    Only the 大类 (first two digits) is checked against the standard; whether a 3- or 4-digit
    中类/小类 exists is not, for want of a licensed code list.
    """
    norm = _squash(code)
    if not norm:
        return "行业代码为空"
    m = _INDUSTRY_RE.match(norm)
    if not m:
        return f'行业代码 "{norm}" 格式不对, 应为门类字母加 2–4 位数字, 如 C3963'
    letter, digits = m[1], m[2]
    division = int(digits[:2])
    section = _DIVISION_SECTION.get(division)
    if section is None:
        return f"行业代码 {norm}: 大类 {digits[:2]} 不存在 (GB/T 4754-2017 大类为 01–97)"
    if letter and letter != section:
        return f"行业代码 {norm}: 大类 {digits[:2]} 属于门类 {section}, 不属于 {letter}"
    return None


def industry_code_problems(s: pl.Series) -> pl.Series:
    """Vectorised `industry_code_problem` (null where valid)."""
    return _map_distinct(s, industry_code_problem)


def industry_sections(s: pl.Series) -> pl.Series:
    """Vectorised `industry_section`."""
    return _map_distinct(s, industry_section)


# ── resident ID numbers (GB 11643-1999): only to keep them out ──────────────────────────────

# region (6 digits), a birth date of 1900–2099, sequence (3), check character; no checksum test: a
# mistyped ID number is personal data too, and no credit code, name or place has this shape where
# it could stand (a credit code of 18 digits would need a valid date in its 7th–14th characters)
_ID_SHAPE = r"^[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]$"


def resident_ids(s: pl.Series) -> pl.Series:
    """True where a text cell has the shape of a mainland resident ID number (false for null)."""
    return s.cast(pl.Utf8).str.strip_chars().str.contains(_ID_SHAPE).fill_null(False)
