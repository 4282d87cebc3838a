"""Entity resolution: tie the names in patents, projects and financing to registered enterprises.

Precision comes before recall. A name is matched only when exactly one registered enterprise
answers to it; when two or more do, the row stays unmatched with a reason a clerk can act on, and
two registered enterprises are never merged. The stages, in order:

1. ``exact``       the raw name equals a registered current name;
2. ``normalized``  equal after `normalize_name` (full-width, brackets, spaces, edge punctuation);
3. ``former_name`` equal after normalisation to a registered 曾用名;
4. ``legal_form``  equal after also folding 有限公司/有限责任公司 (and, as a separate family,
                   股份有限公司/股份公司) — only when one enterprise has that looser key.

Stages 1–3 share one candidate set (current and former names together), so a name that is one firm's
current name and another firm's former name is ambiguous, not silently given to either.
All matching is done with polars joins; Python touches each distinct name once.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

import polars as pl

from data_contracts.identifiers import normalize_uscc_series, uscc_problems

# --- name keys ------------------------------------------------------------------------------

_BRACKET_MAP = {
    **dict.fromkeys("[{【〔〖〘〚⦅｟﹝", "("),
    **dict.fromkeys("]}】〕〗〙〛⦆｠﹞", ")"),
    **dict.fromkeys("・•‧∙⋅", "·"),
}
_BRACKETS = str.maketrans(_BRACKET_MAP)
_FULLWIDTH = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "}
_INVISIBLE = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")
# Punctuation a clerk's copy-paste leaves at either end; brackets are kept ("…(有限合伙)").
_EDGE_PUNCT = "。.,，;；:：、!！?？\"'“”‘’「」『』*#·-—_~`"
_JSC = "⟪股份公司⟫"
_LLC = "⟪有限公司⟫"
_JSC_RE = re.compile("股份有限公司|股份公司")  # 公司法: a 股份有限公司 may call itself 股份公司
_LLC_RE = re.compile("有限责任公司|有限公司")  # 公司法: a 有限责任公司 may call itself 有限公司

METHODS = ("exact", "normalized", "former_name", "legal_form", "code", "none")
NOT_FOUND = "未在企业登记中找到"
EMPTY_NAME = "名称为空"


def normalize_name(name: str | None) -> str:
    """The matching key of a name: NFKC, one bracket form, no whitespace, no edge punctuation.

    Latin letters are upper-cased. The legal form (有限公司 …) is kept; see `company_form_key`.
    """
    if name is None:
        return ""
    text = unicodedata.normalize("NFKC", str(name)).translate(_BRACKETS)
    return _INVISIBLE.sub("", text).strip(_EDGE_PUNCT).upper()


def company_form_key(name: str | None) -> str:
    """A looser key: `normalize_name` with the legal-form spellings of one family made equal."""
    return _form_fold(normalize_name(name))


def _form_fold(key: str) -> str:
    return _LLC_RE.sub(_LLC, _JSC_RE.sub(_JSC, key))


@functools.cache
def _nfkc_unstable() -> str:
    """A regex class of the characters NFKC may change (beyond full-width ASCII), or combines."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x80, 0x10000):
        c = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or 0xFF01 <= cp <= 0xFF5E or cp == 0x3000:
            continue
        if unicodedata.normalize("NFKC", c) != c or unicodedata.combining(c):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    body = "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[{body}\\x{{10000}}-\\x{{10FFFF}}]"


def normalize_names(names: pl.Series) -> pl.Series:
    """Vectorised `normalize_name` (nulls become ''): polars for the usual case, Python for rows
    holding characters that NFKC changes beyond full-width ASCII (①, compatibility ideographs …).

    A name of common ideographs, digits, capitals and round brackets only (most registered
    names) is its own key: only the other names are worked on.
    """
    s = names.cast(pl.Utf8).fill_null("")
    rows = (~s.str.contains(r"^[\x{4E00}-\x{9FFF}0-9A-Z()]*$")).arg_true()
    if rows.len():
        s = s.scatter(rows, _normalize_names(s.gather(rows)))
    return s.alias(names.name)


def _normalize_names(s: pl.Series) -> pl.Series:
    raw = s
    s = s.str.replace_many(list(_FULLWIDTH), list(_FULLWIDTH.values()))
    odd = s.str.contains(_nfkc_unstable())
    s = (
        s.str.replace_many(list(_BRACKET_MAP), list(_BRACKET_MAP.values()))
        .str.replace_all(_INVISIBLE.pattern, "")
        .str.strip_chars(_EDGE_PUNCT)
    )
    lower = s.str.contains(r"[\p{Lowercase}\p{Lt}]")  # upper-casing CJK text is slow; skip it
    if lower.any():
        rows = lower.arg_true()
        s = s.scatter(rows, s.gather(rows).str.to_uppercase())
    if odd.any():
        rows = odd.arg_true()
        slow = [normalize_name(n) for n in raw.gather(rows).to_list()]
        s = s.scatter(rows, pl.Series(slow, dtype=pl.Utf8))
    return s


def _fold_series(keys: pl.Series) -> pl.Series:
    # leftmost-first: at each position the 股份 spellings are tried before the 有限 ones
    forms = ["股份有限公司", "股份公司", "有限责任公司", "有限公司"]
    return keys.str.replace_many(forms, [_JSC, _JSC, _LLC, _LLC])


def _keys(names: pl.Series) -> pl.DataFrame:
    """name, key, loose for each row of names."""
    names = names.cast(pl.Utf8).alias("name")
    key = normalize_names(names).alias("key")
    return pl.DataFrame([names, key, _fold_series(key).alias("loose")])


# --- splitting applicant lists --------------------------------------------------------------

_HARD_SEPARATORS = re.compile(r"[;；、]")
_COMMA = re.compile(r"([,，])")
_ORG_SUFFIXES = (
    "公司", "厂", "集团", "大学", "学院", "学校", "研究院", "研究所", "中心", "医院", "合作社",
    "事务所", "实验室", "协会", "学会", "基金会", "研究会", "局", "院", "所", "站", "社", "部",
    "店", "行", "处", "馆", "场", "企业", "(有限合伙)", "(普通合伙)", "(特殊普通合伙)",
)


def _looks_like_org(text: str) -> bool:
    key = normalize_name(text)
    return any(key.endswith(sfx) and len(key) > len(sfx) for sfx in _ORG_SUFFIXES)


def _split_commas(piece: str) -> list[str]:
    """Split on commas only between two parts that both end like an organisation's name."""
    parts = _COMMA.split(piece)  # with the commas themselves at the odd positions
    out = [parts[0]]
    for comma, part in zip(parts[1::2], parts[2::2], strict=True):
        if _looks_like_org(out[-1]) and _looks_like_org(part):
            out.append(part)
        else:  # "Samsung Co., Ltd.", "张三,李四": keep the comma
            out[-1] = f"{out[-1]}{comma}{part}"
    return out


def split_applicants(text: str | None) -> list[str]:
    """`甲有限公司；乙大学、丙研究所` → the three names (stripped; empty and repeats dropped)."""
    if text is None:
        return []
    names: list[str] = []
    for piece in _HARD_SEPARATORS.split(str(text)):
        for name in _split_commas(piece) if _COMMA.search(piece) else [piece]:
            name = name.strip().strip(",，")
            if name and name not in names:
                names.append(name)
    return names


def split_applicants_series(s: pl.Series) -> pl.Series:
    """Vectorised `split_applicants`: a List[Utf8] Series (rows with commas go through Python)."""
    s = s.cast(pl.Utf8)
    fast = (
        s.str.replace_all(r"[；、]", ";")
        .str.split(";")
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(pl.element() != ""))
        .list.unique(maintain_order=True)
        .fill_null(pl.lit([], dtype=pl.List(pl.Utf8)))
    )
    has_comma = s.str.contains(r"[,，]").fill_null(False)
    if not has_comma.any():
        return fast.alias(s.name)
    rows = has_comma.arg_true()
    slow = pl.DataFrame({
        "i": rows,
        "slow": pl.Series([split_applicants(t) for t in s.gather(rows).to_list()],
                          dtype=pl.List(pl.Utf8)),
    })
    out = pl.DataFrame({"i": pl.int_range(len(s), eager=True, dtype=rows.dtype), "fast": fast})
    out = out.join(slow, on="i", how="left", maintain_order="left")
    return out.select(pl.coalesce("slow", "fast"))["slow"].alias(s.name)


# --- the index ------------------------------------------------------------------------------


class NameIndex:
    """Registered enterprises keyed by normalised current and former names.

    Build with `NameIndex.build(enterprises)`; the learned tables end in an underscore.
    """

    def __init__(self, strict_legal_form: bool = False) -> None:
        self.strict_legal_form = strict_legal_form
        self.entries_: pl.DataFrame | None = None  # uscc, raw, key, loose, current
        self.by_key_: pl.DataFrame | None = None  # key → n_key, key_uscc, key_current
        self.by_loose_: pl.DataFrame | None = None  # loose → n_loose, loose_uscc
        self.names_: pl.DataFrame | None = None  # uscc → registered (current name)

    @classmethod
    def build(cls, enterprises: pl.DataFrame, strict_legal_form: bool = False) -> NameIndex:
        """Index `enterprises` (columns uscc, name, optional former_names `;`-separated).

        With strict_legal_form, a name is also left unmatched when another registered
        enterprise's name differs from it only in the legal-form spelling (甲有限公司 /
        甲有限责任公司), even if it is exactly one of them; by default it matches and the note
        asks for a check.
        """
        self = cls(strict_legal_form)
        ent = enterprises.select(
            normalize_uscc_series(enterprises["uscc"]).alias("uscc"),
            pl.col("name").cast(pl.Utf8),
            (pl.col("former_names") if "former_names" in enterprises.columns else pl.lit(None))
            .cast(pl.Utf8)
            .alias("former_names"),
        ).filter(pl.col("uscc") != "")
        current = ent.select("uscc", raw=pl.col("name"), current=pl.lit(True))
        former = (
            ent.select("uscc", raw=pl.col("former_names").str.replace_all("；", ";").str.split(";"))
            .explode("raw")
            .with_columns(current=pl.lit(False))
        )
        both = pl.concat([current, former]).with_columns(pl.col("raw").str.strip_chars())
        both = both.filter(pl.col("raw").is_not_null() & (pl.col("raw") != ""))
        keyed = pl.concat([both, _keys(both["raw"]).select("key", "loose")], how="horizontal")
        self.entries_ = keyed.filter(pl.col("key") != "")
        self._tabulate()
        return self

    def _tabulate(self) -> None:
        cur = self.entries_.filter("current")
        self.names_ = _first_per(cur.select("uscc", registered="raw"), "uscc")
        # each entry with its firm's registered (current) name: a key's is that of its first firm
        e = self.entries_.join(self.names_, on="uscc", how="left", maintain_order="left")
        firms, current, registered = pl.col("uscc"), pl.col("current"), pl.col("registered")
        self.by_key_ = _per_key(
            e, "key",
            n_key=(pl.lit(1, pl.UInt32), firms.n_unique()), key_uscc=(firms, firms.first()),
            key_current=(current, current.any()), key_former=(~current, (~current).any()),
            key_registered=(registered, registered.first()))
        self.by_loose_ = _per_key(
            e, "loose", n_loose=(pl.lit(1, pl.UInt32), firms.n_unique()),
            loose_uscc=(firms, firms.first()), loose_registered=(registered, registered.first()))

    def _own_keys(self, codes: pl.Series) -> pl.DataFrame:
        """(uscc, key) pairs, for both keys of every name of the firms with these codes."""
        e = self.entries_.filter(pl.col("uscc").is_in(codes.drop_nulls().implode()))
        return pl.concat([
            e.select(norm="uscc", key="key"), e.select(norm="uscc", key="loose")
        ]).unique().with_columns(code_has_name=pl.lit(True))

    @property
    def usccs(self) -> pl.Series:
        """The registered credit codes."""
        return self.names_["uscc"]

    def match(self, names: pl.Series | Sequence[str | None]) -> pl.DataFrame:
        """One row per input name, in order: name, uscc, method, reason, note.

        uscc is null when unmatched; reason says why (Chinese); note flags matches a clerk may
        want to see (a 曾用名 match, a folded legal form, a near-twin enterprise).
        """
        return self._match_frame(names).select("name", "uscc", "method", "reason", "note")

    def _match_frame(self, names: pl.Series | Sequence[str | None]) -> pl.DataFrame:
        q = _keys(pl.Series("name", names, dtype=pl.Utf8))
        q = q.join(self.by_key_, on="key", how="left", maintain_order="left").join(
            self.by_loose_, on="loose", how="left", maintain_order="left"
        )
        return self._decide(q.lazy()).collect(engine="in-memory")

    def _decide(self, q: pl.LazyFrame) -> pl.LazyFrame:
        empty = pl.col("key").is_null() | (pl.col("key") == "")
        twin = pl.col("n_loose") > 1  # another enterprise differs only in the legal form
        by_key = (pl.col("n_key") == 1) & ~(pl.lit(self.strict_legal_form) & twin)
        by_loose = pl.col("n_key").is_null() & (pl.col("n_loose") == 1)
        uscc = (
            pl.when(empty).then(None)
            .when(by_key).then("key_uscc")
            .when(by_loose).then("loose_uscc")
        )
        reason = (
            pl.when(empty).then(pl.lit(EMPTY_NAME))
            .when((pl.col("n_key") > 1) & pl.col("key_former"))
            .then(pl.format("名称对应多家企业 ({} 家, 含曾用名), 无法确定", "n_key"))
            .when(pl.col("n_key") > 1)
            .then(pl.format("名称对应多家企业 ({} 家), 无法确定", "n_key"))
            .when((pl.col("n_key").is_null() | (pl.lit(self.strict_legal_form) & twin)) & twin)
            .then(pl.format("名称对应多家企业 ({} 家, 仅组织形式写法不同), 无法确定", "n_loose"))
            .when(pl.col("n_key").is_null() & pl.col("n_loose").is_null()).then(pl.lit(NOT_FOUND))
        )
        registered = (
            pl.when(by_key).then("key_registered").when(by_loose).then("loose_registered")
        )
        q = q.with_columns(
            uscc=uscc, reason=reason, by_key=by_key, by_loose=by_loose, registered=registered
        )
        # the registered name is the current name when the firm has one row in the registry
        is_exact = pl.col("key_current") & (pl.col("name") == pl.col("registered"))
        method = (
            pl.when(empty).then(pl.lit("none"))
            .when(pl.col("by_key") & is_exact).then(pl.lit("exact"))
            .when(pl.col("by_key") & pl.col("key_current")).then(pl.lit("normalized"))
            .when(pl.col("by_key")).then(pl.lit("former_name"))
            .when(pl.col("by_loose")).then(pl.lit("legal_form"))
            .otherwise(pl.lit("none"))
        )
        q = q.with_columns(method=method)
        how = (
            pl.when(pl.col("method") == "former_name")
            .then(pl.format("按曾用名匹配, 现名 {}", "registered"))
            .when(pl.col("method") == "legal_form")
            .then(pl.format("按组织形式写法归并, 登记名称为 {}", "registered"))
        )
        twin_note = pl.when(pl.col("method").is_in(["exact", "normalized", "former_name"]) & twin)
        twin_note = twin_note.then(pl.lit("另有登记企业名称仅组织形式写法不同, 请核实"))
        note = pl.concat_str(how, twin_note, separator="; ", ignore_nulls=True)
        return q.with_columns(note=pl.when(note != "").then(note))

    def match_with_code(
        self,
        names: pl.Series | Sequence[str | None],
        codes: pl.Series | Sequence[str | None],
    ) -> pl.DataFrame:
        """`match` for rows that may carry a credit code: name, code, uscc, method, reason, note.

        A registered code wins (method ``code``), with a note when the name points elsewhere. An
        invalid code is set aside and the name decides, with a note. A valid code that is not
        registered keeps the row unmatched even if the name matches: two firms in different
        places can share a name, and the code is the firmer evidence.
        """
        frame = self._match_frame(names).select(
            "name", "key", "loose", "uscc", "method", "reason", "note"
        )
        codes = pl.Series("code", codes, dtype=pl.Utf8)
        frame = frame.with_columns(
            code=codes, norm=normalize_uscc_series(codes), problem=uscc_problems(codes)
        )
        out = self._decide_code(frame.lazy(), self._own_keys(frame.get_column("norm")))
        return out.select("name", "code", "uscc", "method", "reason", "note").collect(
            engine="in-memory"
        )

    def _decide_code(self, f: pl.LazyFrame, own_keys: pl.DataFrame) -> pl.LazyFrame:
        registered = self.names_.lazy().rename({"uscc": "norm", "registered": "code_name"})
        own_keys = own_keys.lazy()
        f = (
            f.join(registered, on="norm", how="left", maintain_order="left")
            .join(own_keys, on=["norm", "key"], how="left", maintain_order="left")
            .join(own_keys.rename({"key": "loose", "code_has_name": "code_has_loose"}),
                  on=["norm", "loose"], how="left", maintain_order="left")
        )
        no_code = pl.col("norm").is_null() | (pl.col("norm") == "")
        is_registered = pl.col("code_name").is_not_null()
        invalid = ~no_code & ~is_registered & pl.col("problem").is_not_null()
        foreign = ~no_code & ~is_registered & pl.col("problem").is_null()
        named_other = (pl.col("uscc") != pl.col("norm")).fill_null(False)
        name_unknown_to_code = (
            (pl.col("key") != "").fill_null(False) & pl.col("uscc").is_null()
            & ~pl.col("code_has_name").fill_null(False) & ~pl.col("code_has_loose").fill_null(False)
        )
        name_agrees = ~(named_other | name_unknown_to_code)
        code_note = (
            pl.when(pl.col("uscc").is_not_null())
            .then(pl.format(
                "企业名称对应另一家登记企业 {}, 与信用代码不一致; 已按信用代码", "uscc"
            ))
            .otherwise(pl.format("企业名称“{}”与该信用代码的登记名称“{}”不一致; 已按信用代码",
                                 "name", "code_name"))
        )
        return f.with_columns(
            uscc=pl.when(is_registered).then("norm").when(foreign).then(None).otherwise("uscc"),
            method=pl.when(is_registered).then(pl.lit("code"))
            .when(foreign).then(pl.lit("none")).otherwise("method"),
            reason=pl.when(is_registered).then(None)
            .when(foreign & pl.col("uscc").is_not_null())
            .then(pl.format("信用代码 {} 不在企业登记中; 名称对应登记企业 {}, 但代码不同, 未匹配",
                            "norm", "uscc"))
            .when(foreign).then(pl.format("信用代码 {} 不在企业登记中; {}", "norm", "reason"))
            .otherwise("reason"),
            note=pl.when(is_registered & ~name_agrees).then(code_note)
            .when(is_registered).then(None)
            .when(invalid).then(pl.concat_str(
                pl.format("信用代码 {} 无效 ({}); 已按名称匹配", "code", "problem"), "note",
                separator="; ", ignore_nulls=True,
            ))
            .otherwise("note"),
        )


def _per_key(entries: pl.DataFrame, key: str, **columns: tuple[pl.Expr, pl.Expr]) -> pl.DataFrame:
    """One row per key with `columns`, each given as (its value for a key of one entry, its
    aggregate over a key's entries). Only keys that repeat are grouped: most names belong to one
    firm and no other."""
    repeated = entries.get_column(key).is_duplicated()
    once = entries.filter(~repeated).select(key, *[one.alias(c) for c, (one, _) in columns.items()])
    many = entries.filter(repeated).group_by(key).agg(*[agg.alias(c) for c, (_, agg) in columns.items()])
    return pl.concat([once, many])


def _first_per(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """The first row of each key, in order."""
    if not frame.get_column(key).is_duplicated().any():
        return frame
    return frame.group_by(key, maintain_order=True).agg(pl.all().first())


def match_rate(result: pl.DataFrame) -> float:
    """Share of rows with a matched uscc (NaN for an empty result)."""
    if result.height == 0:
        return float("nan")
    return 1.0 - result["uscc"].null_count() / result.height
