"""Identifier checks: credit codes, legacy 注册号, CNIPA application numbers, GB/T 4754-2017 codes.

Expected values come from public sources (criteria.md §5 and its appendix), from properties of the
check-digit schemes (every single-character error is caught), or from real registry data.
"""

from __future__ import annotations

import polars as pl
import pytest

from data_contracts import identifiers as ids
from data_contracts.identifiers import (
    USCC_ALPHABET,
    application_no_check_char,
    application_no_problem,
    application_no_problems,
    industry_code_problem,
    industry_code_problems,
    industry_section,
    industry_sections,
    legacy_regno_valid,
    normalize_application_no,
    normalize_industry_code,
    normalize_uscc,
    uscc_check_char,
    uscc_problem,
    uscc_problems,
)

KNOWN_USCC = "914403001922038216"  # criteria.md §5.1, verified there against three implementations

# --- 统一社会信用代码 ---------------------------------------------------------------------------


def test_alphabet_and_weights_are_the_published_ones():
    assert USCC_ALPHABET == "0123456789ABCDEFGHJKLMNPQRTUWXY"
    assert not set("IOSVZ") & set(USCC_ALPHABET)
    published = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    assert ids._USCC_WEIGHTS == published


def test_known_public_code_is_valid():
    assert uscc_problem(KNOWN_USCC) is None
    assert uscc_check_char(KNOWN_USCC[:17]) == KNOWN_USCC[17]


@pytest.mark.parametrize("wrong", [c for c in USCC_ALPHABET if c != KNOWN_USCC[17]])
def test_every_other_check_char_fails(wrong):
    msg = uscc_problem(KNOWN_USCC[:17] + wrong)
    assert msg == f"校验位应为 {KNOWN_USCC[17]}, 实际为 {wrong}"


def test_every_single_character_substitution_is_caught():
    for pos in range(17):
        for ch in USCC_ALPHABET:
            if ch == KNOWN_USCC[pos] or (2 <= pos < 8 and not ch.isdigit()):
                continue
            altered = KNOWN_USCC[:pos] + ch + KNOWN_USCC[pos + 1 :]
            assert uscc_problem(altered) is not None, altered


@pytest.mark.parametrize(
    ("code", "length"), [(KNOWN_USCC[:17], 17), (KNOWN_USCC + "6", 19), (KNOWN_USCC[:10], 10)]
)
def test_wrong_length_is_named(code, length):
    assert uscc_problem(code) == f"长度为 {length} 位, 应为 18 位"


@pytest.mark.parametrize("bad", list("IOSVZ"))
def test_letters_outside_the_alphabet_are_rejected(bad):
    code = KNOWN_USCC[:9] + bad + KNOWN_USCC[10:]
    assert uscc_problem(code) == f'含有不允许的字符 "{bad}"'
    assert uscc_problem(bad + KNOWN_USCC[1:]) == f'含有不允许的字符 "{bad}"'


def test_length_and_character_problems_are_reported_together():
    msg = uscc_problem("91440300I92203821")
    assert "长度为 17 位" in msg and '"I"' in msg


def test_region_code_must_be_digits():
    msg = uscc_problem("91A4030019220382" + "16")
    assert msg is not None and "行政区划码" in msg


def test_unknown_but_well_formed_category_is_not_rejected():
    # Positions 1–2 are only checked against the alphabet: exactly one check char then passes.
    for head in ("A1", "Y9", "N3", "5X"):
        first17 = head + KNOWN_USCC[2:17]
        passing = [c for c in USCC_ALPHABET if uscc_problem(first17 + c) is None]
        assert len(passing) == 1


def test_input_is_normalised_before_checking():
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in KNOWN_USCC)
    assert normalize_uscc(f" {fullwidth}\u3000") == KNOWN_USCC
    assert uscc_problem(f" {fullwidth} ") is None
    assert uscc_problem("92320981ma1u0b487q") is None  # a real code (jiangsu_2010), lower case
    assert normalize_uscc("9144 0300 1922 0382 16") == KNOWN_USCC


def test_empty_code():
    assert uscc_problem(None) == "统一社会信用代码为空"
    assert uscc_problem("  ") == "统一社会信用代码为空"


# --- legacy 15-digit 注册号 -----------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["110108000000016", "310117003171688", "440301104041144", "320300000174110"]
)
def test_published_legacy_numbers_pass_mod_11_10(code):  # criteria.md appendix item 6
    assert legacy_regno_valid(code)


def test_altered_legacy_number_fails():
    assert not legacy_regno_valid("110000450001868")


def test_mod_11_10_catches_every_single_digit_error():
    good = "110108000000016"
    for pos in range(15):
        for d in "0123456789":
            if d != good[pos]:
                assert not legacy_regno_valid(good[:pos] + d + good[pos + 1 :])


def test_legacy_number_is_recognised_not_accepted():
    assert uscc_problem("110108000000016") == (
        "这是旧版 15 位工商注册号(校验通过), 不是统一社会信用代码; 请提供 18 位统一社会信用代码"
    )
    assert "校验不通过" in uscc_problem("110000450001868")
    assert "旧版 15 位农民专业合作社注册号" in uscc_problem("320321NA000117X")


def test_vectorised_uscc_agrees_with_scalar():
    values = [
        KNOWN_USCC, KNOWN_USCC[:17] + "7", None, "", "110108000000016", "110000450001868",
        "91440300I92203821", " ９１４４０３００１９２２０３８２１６", KNOWN_USCC,
        "92320981MA1U0B487Q",
        "320321NA000117X", "91A403001922038216",
        # the fast paths: lower case, inner spaces and invisible characters, missing markers
        KNOWN_USCC.lower(), f"{KNOWN_USCC[:9]} {KNOWN_USCC[9:]}", f"{KNOWN_USCC}\u200b", "NA", "无",
        "\t" + KNOWN_USCC + "\n", KNOWN_USCC[:17] + "X", KNOWN_USCC[:17] + "I",
    ]
    got = uscc_problems(pl.Series("uscc", values))
    assert got.name == "uscc" and got.dtype == pl.Utf8
    assert got.to_list() == [uscc_problem(v) for v in values]


# --- CNIPA application numbers --------------------------------------------------------------

# 201080063196.9 is criteria.md §5.3's verified example. The others are listed, with their filing
# dates, on a public school web page (绍兴一中 学校荣誉/创新成果) found as a public GitHub file.
POST_2003 = ["201080063196.9", "200420023327.2", "200410024861.X", "200520100748.5",
             "200520101472.2", "200620101117.X", "200630161199.2"]
PRE_2003 = ["98211883.X", "00208221.7", "00237623.7", "00237710.1", "01209457.9",
            "02216572.X", "03232685.8"]


@pytest.mark.parametrize("no", POST_2003 + PRE_2003)
def test_public_application_numbers_pass(no):
    assert application_no_problem(no) is None
    assert application_no_check_char(no.split(".")[0]) == no[-1]


@pytest.mark.parametrize("wrong", list("0123456789X"))
def test_changed_check_char_fails(wrong):
    if wrong == "9":
        return
    msg = application_no_problem(f"201080063196.{wrong}")
    assert msg == f"申请号 201080063196.{wrong}: 校验位应为 9, 实际为 {wrong}"


def test_mod_11_catches_every_single_digit_error():
    for good in ("201080063196.9", "98211883.X"):
        body = good.split(".")[0]
        for pos in range(len(body)):
            for d in "0123456789":
                if d != body[pos]:
                    altered = body[:pos] + d + body[pos + 1 :] + "." + good[-1]
                    assert application_no_problem(altered) is not None, altered


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CN201080063196.9", "201080063196.9"),
        ("ZL 2010 8006 3196.9", "201080063196.9"),
        ("2010800631969", "201080063196.9"),
        ("２０１０８００６３１９６．９", "201080063196.9"),
        ("cn200410024861x", "200410024861.X"),
        ("ZL 98 211883.X", "98211883.X"),
        ("200420023327。2", "200420023327.2"),
    ],
)
def test_application_numbers_are_normalised(text, expected):
    assert normalize_application_no(text) == expected
    assert application_no_problem(text) is None


def test_kind_digit_must_agree_with_patent_type():
    assert application_no_problem("201080063196.9", "发明") is None  # kind 8: PCT invention
    assert application_no_problem("200520100748.5", "实用新型") is None
    assert application_no_problem("200630161199.2", "外观设计") is None
    assert application_no_problem("200410024861.X", "发明专利") is None
    msg = application_no_problem("200520100748.5", "发明")
    assert msg is not None and "类型位 2" in msg and "发明" in msg
    assert application_no_problem("201080063196.9", "实用新型") is not None
    assert application_no_problem("200630161199.2", "发明") is not None


@pytest.mark.parametrize(
    "bad",
    ["", "20231012345.6", "2023101234567.8", "202310123456", "202350123456.0", "199910123456.1",
     "PCT/CN2020/123456"],
)
def test_malformed_application_numbers_fail(bad):
    assert application_no_problem(bad) is not None


def test_vectorised_application_numbers_agree_with_scalar():
    odd = ["201080063196.8", "CN2010800631969", None, "abc", "200520100748.5",
           # the fast paths: full-width, lower case, spaces, 。 for the dot, ZL, type spellings
           "２０１０８００６３１９６．９", "zl 201080063196.9", "201080063196。9", "200410024861.x",
           "200520100748.5", "200630161199.2", "200630161199.2", "198510000001.1"]
    nos = POST_2003 + PRE_2003 + odd
    types = ["发明", "实用新型", "发明", "实用新型", None, "实用新型", "外观设计"] + [None] * 7 + [
        "发明", "实用新型", "发明", None, "发明",
        "发明专利", "发明授权", None, " 发明 ", "新型", "外观", "未知类型", "发明"
    ]
    got = application_no_problems(pl.Series("no", nos), pl.Series("t", types))
    assert got.to_list() == [application_no_problem(n, t) for n, t in zip(nos, types, strict=True)]
    assert got.head(len(POST_2003) + len(PRE_2003)).null_count() == len(POST_2003) + len(PRE_2003)


# --- GB/T 4754-2017 -------------------------------------------------------------------------


def test_section_table_covers_divisions_01_to_97_once():
    divisions = [d for lo, hi in ids.SECTION_DIVISIONS.values() for d in range(lo, hi + 1)]
    assert sorted(divisions) == list(range(1, 98))  # 97 大类, no gaps, no overlaps
    assert list(ids.SECTION_DIVISIONS) == list("ABCDEFGHIJKLMNOPQRST")


@pytest.mark.parametrize(
    "code", ["C3963", "I6513", "M7320", "N7990", "T9700", "A0111", "S9600", "P8300", "Q8400", "C13",
             "K701", "c 3963"]
)
def test_valid_industry_codes(code):
    assert industry_code_problem(code) is None


@pytest.mark.parametrize(
    ("code", "division", "right", "given"),
    [
        ("C6513", "65", "I", "C"),
        ("O7990", "79", "N", "O"),  # 79 moved to N in 2017 (2011 had it under O)
        ("T9600", "96", "S", "T"),  # 2011's T was 96
        ("P8200", "82", "O", "P"),
        ("R9000", "90", "R", "R"),
    ],
)
def test_division_must_sit_in_its_section(code, division, right, given):
    msg = industry_code_problem(code)
    if right == given:
        assert msg is None
    else:
        assert msg == f"行业代码 {code}: 大类 {division} 属于门类 {right}, 不属于 {given}"


@pytest.mark.parametrize("code", ["C", "C98", "C00", "C39631", "3", "CC3963", "第C3963"])
def test_malformed_industry_codes(code):
    assert industry_code_problem(code) is not None


def test_bare_digits_get_their_section():
    assert industry_code_problem("6513") is None
    assert industry_section("6513") == "I"
    assert industry_section("7990") == "N"
    assert industry_section("0111") == "A"
    assert industry_section("98") is None
    assert normalize_industry_code("6513") == "I6513"
    assert normalize_industry_code("C6513") is None


def test_vectorised_industry_codes_agree_with_scalar():
    values = ["C3963", "C6513", None, "6513", "O7990", "C3963", "x"]
    assert industry_code_problems(pl.Series(values)).to_list() == [
        industry_code_problem(v) for v in values
    ]
    assert industry_sections(pl.Series(values)).to_list() == [industry_section(v) for v in values]


# --- real registry data ---------------------------------------------------------------------


def _registry_codes(research_data, year: int) -> pl.Series:
    path = research_data / "js-enterprise-registry" / f"jiangsu_{year}.csv"
    return pl.read_csv(path, infer_schema=False)["统一社会信用代码"]


@pytest.mark.parametrize("year", [2008, 2010, 2011, 2018, 2019])
def test_every_real_18_character_code_passes(research_data, year):
    codes = _registry_codes(research_data, year)
    long = codes.filter(codes.str.len_chars() == 18)
    assert long.len() > 5000
    problems = uscc_problems(long)
    assert problems.null_count() == long.len(), problems.drop_nulls().head(5).to_list()


@pytest.mark.parametrize("year", [2008, 2010, 2011])
def test_every_real_15_character_code_is_rejected_as_legacy(research_data, year):
    codes = _registry_codes(research_data, year)
    short = codes.filter(codes.str.len_chars() == 15)
    assert short.len() > 1000
    problems = uscc_problems(short)
    assert problems.str.starts_with("这是旧版 15 位").all()
    numeric = short.filter(short.str.contains(r"^\d{15}$"))
    passing = sum(legacy_regno_valid(c) for c in numeric.to_list())
    # A wrong MOD 11,10 would pass about one number in ten.
    assert passing / numeric.len() > 0.95


def test_a_code_excel_turned_into_scientific_notation_is_said_to_be_lost():
    from data_contracts.identifiers import uscc_problem

    message = uscc_problem("9.13202E+17")
    assert message.startswith("Excel 把信用代码存成了科学计数法 (9.13202E+17), 原来的 18 位已丢失")
    assert uscc_problem("9.13202e17").startswith("Excel 把信用代码存成了科学计数法")
