"""Entity resolution: names to registered enterprises, precision before recall."""

from __future__ import annotations

import math

import polars as pl
import pytest

from data_contracts.entity import (
    NOT_FOUND,
    NameIndex,
    company_form_key,
    match_rate,
    normalize_name,
    normalize_names,
    split_applicants,
    split_applicants_series,
)
from data_contracts.identifiers import uscc_check_char

# Credit codes for the small registries below: a real code (criteria.md) and real ones from
# the Jiangsu registry sample; which firm a code belongs to does not matter here.
A, B, C, D = "914403001922038216", "91320282674885597G", "91320104671349473N", "92320981MA1U0B487Q"


def registry(rows: list[tuple[str, str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["uscc", "name", "former_names"], orient="row")


def one(index: NameIndex, name: str) -> dict:
    return index.match([name]).row(0, named=True)


# --- normalize_name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("海螺（安徽）节能环保新材料股份有限公司", "海螺(安徽)节能环保新材料股份有限公司"),
        ("海螺【安徽】节能环保新材料股份有限公司", "海螺(安徽)节能环保新材料股份有限公司"),
        ("  无锡 甲科技\u3000有限公司 ", "无锡甲科技有限公司"),
        ("无锡\u00a0甲科技有限公司。", "无锡甲科技有限公司"),
        ("“无锡甲科技有限公司”；", "无锡甲科技有限公司"),
        ("ＡＢＢ（中国）有限公司", "ABB(中国)有限公司"),
        ("abb(中国)有限公司", "ABB(中国)有限公司"),
        ("无锡甲创业投资合伙企业（有限合伙）", "无锡甲创业投资合伙企业(有限合伙)"),
    ],
)
def test_normalize_name(raw, key):
    assert normalize_name(raw) == key
    assert normalize_name(key) == key  # idempotent


def test_normalize_name_keeps_the_legal_form():
    assert normalize_name("甲有限责任公司") != normalize_name("甲有限公司")
    assert normalize_name(None) == ""


def test_vectorised_normalize_agrees_with_scalar():
    names = [
        "海螺（安徽）节能环保新材料股份有限公司", None, "", " ①号 甲公司 ", "\uf900山有限公司",
        "Cafe\u0301 有限公司", "無錫甲公司", "甲 ﹙集团﹚ 公司", "\u3000", "卡尔・蔡司有限公司",
        "ｓａｍｓｕｎｇ　Ｃｏ．，Ｌｔｄ．", "甲\u200b有限公司", "𠀀甲有限公司", "abb(中国)有限公司",
        "Straße 有限公司", "ǅ甲", "αβ有限公司",
        # names that are already keys (the fast path) and near misses
        "宜兴市甲科技有限公司", "ABB(中国)有限公司", "甲(有限合伙)", "甲公司-", "甲公司(", "-甲公司",
        "甲 公司", "ABC", "abc", "123", "(甲)", "甲·乙有限公司",
    ]
    assert normalize_names(pl.Series(names)).to_list() == [normalize_name(n) for n in names]


def test_index_keys_agree_with_the_scalar_keys():
    names = ["甲股份有限公司", "甲股份公司", "甲有限责任公司", "甲有限公司乙股份有限公司丙",
             "股份有限责任公司", "有限有限公司", "（甲） 有限公司 "]
    firms = registry([(A, n, None) for n in names])
    entries = NameIndex.build(firms).entries_
    assert entries["key"].to_list() == [normalize_name(n) for n in names]
    assert entries["loose"].to_list() == [company_form_key(n) for n in names]


def test_company_form_key_folds_one_family_at_a_time():
    assert company_form_key("甲有限公司") == company_form_key("甲有限责任公司")
    assert company_form_key("甲股份有限公司") == company_form_key("甲股份公司")
    assert company_form_key("甲股份有限公司") != company_form_key("甲有限公司")
    assert company_form_key("甲有限公司苏州分公司") == company_form_key("甲有限责任公司苏州分公司")
    assert company_form_key("甲（苏州）有限公司") == company_form_key("甲(苏州)有限责任公司")


# --- split_applicants -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("甲有限公司;乙大学", ["甲有限公司", "乙大学"]),
        ("甲有限公司；乙大学、丙研究所", ["甲有限公司", "乙大学", "丙研究所"]),
        (" 甲有限公司 ; ; 甲有限公司 ", ["甲有限公司"]),
        ("甲科技有限公司,乙大学", ["甲科技有限公司", "乙大学"]),
        ("甲科技有限公司，江南大学", ["甲科技有限公司", "江南大学"]),
        ("Ping An Bank Co., Ltd.", ["Ping An Bank Co., Ltd."]),
        ("张三,李四", ["张三,李四"]),
        ("甲科技有限公司,张三", ["甲科技有限公司,张三"]),
        ("", []),
        (None, []),
    ],
)
def test_split_applicants(text, names):
    assert split_applicants(text) == names


def test_vectorised_split_agrees_with_scalar():
    texts = ["甲有限公司;乙大学", "甲科技有限公司,乙大学", "Ping An Bank Co., Ltd.;乙大学", None,
             "、", "甲有限公司、甲有限公司"]
    expected = [split_applicants(t) for t in texts]
    assert split_applicants_series(pl.Series(texts)).to_list() == expected


# --- NameIndex ------------------------------------------------------------------------------


def test_exact_normalized_and_not_found():
    index = NameIndex.build(registry([(A, "无锡甲科技有限公司", None)]))
    got = index.match(["无锡甲科技有限公司", "无锡 甲科技有限公司。", "无锡乙科技有限公司", None])
    assert got.columns == ["name", "uscc", "method", "reason", "note"]
    assert got["uscc"].to_list() == [A, A, None, None]
    assert got["method"].to_list() == ["exact", "normalized", "none", "none"]
    assert got["reason"].to_list() == [None, None, NOT_FOUND, "名称为空"]


def test_two_firms_differing_only_in_legal_form_are_never_merged():
    firms = registry([(A, "无锡甲科技有限公司", None), (B, "无锡甲科技有限责任公司", None)])
    index = NameIndex.build(firms)
    got = index.match(["无锡甲科技有限公司", "无锡甲科技有限责任公司", "无锡甲科技 有限公司"])
    assert got["uscc"].to_list() == [A, B, A]  # each only by its own name
    assert got["note"].str.contains("仅组织形式写法不同").all()
    strict = one(NameIndex.build(firms, strict_legal_form=True), "无锡甲科技有限公司")
    assert strict["uscc"] is None
    assert strict["reason"].startswith("名称对应多家企业")


def test_a_legal_form_only_match_is_refused_when_two_firms_share_the_loose_key():
    # The name reaches the legal-form stage; two registered firms answer to its loose key.
    firms = registry([
        (A, "无锡甲科技有限责任公司", None), (B, "无锡乙有限公司", "无锡甲科技有限责任公司"),
    ])
    got = one(NameIndex.build(firms), "无锡甲科技有限公司")
    assert got["uscc"] is None and got["method"] == "none"
    assert got["reason"].startswith("名称对应多家企业")


def test_one_firm_with_the_other_legal_form_matches_by_legal_form():
    firms = registry([(A, "无锡甲科技有限责任公司", None), (B, "无锡乙有限公司", None)])
    index = NameIndex.build(firms)
    got = one(index, "无锡甲科技有限公司")
    assert (got["uscc"], got["method"]) == (A, "legal_form")
    assert "无锡甲科技有限责任公司" in got["note"]
    assert one(index, "无锡甲科技股份有限公司")["uscc"] is None  # 股份 is another family


def test_former_name_matches():
    firms = registry([(A, "无锡新名科技有限公司", "无锡旧名电子有限公司；无锡更旧名厂")])
    index = NameIndex.build(firms)
    got = index.match(["无锡旧名电子有限公司", "无锡更旧名厂", "无锡旧名电子有限责任公司"])
    assert got["uscc"].to_list() == [A, A, A]
    assert got["method"].to_list() == ["former_name", "former_name", "legal_form"]
    assert "无锡新名科技有限公司" in got["note"][0]


def test_name_matching_two_former_names_is_ambiguous():
    index = NameIndex.build(registry([
        (A, "无锡甲有限公司", "无锡旧名有限公司"),
        (B, "无锡乙有限公司", "无锡旧名有限公司"),
    ]))
    got = one(index, "无锡旧名有限公司")
    assert got["uscc"] is None
    assert got["reason"].startswith("名称对应多家企业")


def test_current_name_of_one_and_former_name_of_another_is_ambiguous():
    firms = registry([(A, "无锡甲有限公司", None), (B, "无锡乙有限公司", "无锡甲有限公司")])
    index = NameIndex.build(firms)
    assert one(index, "无锡甲有限公司")["uscc"] is None


def test_same_name_registered_twice_is_ambiguous():
    index = NameIndex.build(registry([(A, "无锡甲有限公司", None), (B, "无锡甲有限公司", None)]))
    got = one(index, "无锡甲有限公司")
    assert got["uscc"] is None and "2 家" in got["reason"]


def test_match_keeps_order_and_length_with_repeats():
    index = NameIndex.build(registry([(A, "甲有限公司", None), (B, "乙有限公司", None)]))
    names = ["乙有限公司", "丙", "甲有限公司", "乙有限公司", None, "甲有限公司"]
    got = index.match(pl.Series(names))
    assert got["name"].to_list() == names
    assert got["uscc"].to_list() == [B, None, A, B, None, A]
    assert match_rate(got) == pytest.approx(4 / 6)
    assert math.isnan(match_rate(got.head(0)))


# --- match_with_code ------------------------------------------------------------------------


@pytest.fixture
def city() -> NameIndex:
    return NameIndex.build(registry([
        (A, "无锡甲科技有限公司", None), (B, "无锡乙有限公司", None), (C, "无锡丙有限公司", None),
    ]))


def test_registered_code_wins_and_a_disagreeing_name_is_noted(city):
    got = city.match_with_code(["无锡甲科技有限公司", "无锡乙有限公司", "无锡某某有限公司", None],
                               [A, A, C.lower(), B])
    assert got.columns == ["name", "code", "uscc", "method", "reason", "note"]
    assert got["uscc"].to_list() == [A, A, C, B]
    assert got["method"].to_list() == ["code"] * 4
    notes = got["note"].to_list()
    assert notes[0] is None and notes[3] is None
    assert B in notes[1]
    assert "无锡丙有限公司" in notes[2]


def test_invalid_code_falls_back_to_the_name(city):
    got = city.match_with_code(["无锡乙有限公司"], [B[:17] + "0"]).row(0, named=True)
    assert got["uscc"] == B and got["method"] == "exact"
    assert "无效" in got["note"] and "校验位" in got["note"]


def test_valid_unregistered_code_is_not_overridden_by_the_name(city):
    elsewhere = "91110000" + "000000001"
    elsewhere += uscc_check_char(elsewhere)
    got = city.match_with_code(["无锡乙有限公司", "无锡某某有限公司"], [elsewhere, elsewhere])
    assert got["uscc"].to_list() == [None, None]
    assert B in got["reason"][0] and "不在企业登记中" in got["reason"][0]
    assert NOT_FOUND in got["reason"][1]


def test_rows_without_a_code_match_by_name(city):
    got = city.match_with_code(["无锡丙 有限公司", "无锡丁有限公司"], [None, ""])
    assert got["uscc"].to_list() == [C, None]
    assert got["method"].to_list() == ["normalized", "none"]


# --- real names -----------------------------------------------------------------------------


def _code(stock_code: str) -> str:
    """A well-formed credit code standing in for a listed firm (the lists carry none)."""
    first17 = "91440300" + "000" + stock_code
    return first17 + uscc_check_char(first17)


@pytest.fixture(scope="module")
def exchange(research_data) -> tuple[pl.DataFrame, pl.DataFrame]:
    lists = research_data / "exchange-company-lists"
    szse = pl.read_csv(lists / "szse_a_share_list.csv", infer_schema=False)
    pairs = pl.read_csv(lists / "name_variant_pairs_cninfo_vs_szse.csv", infer_schema=False)
    firms = szse.select(
        uscc=pl.col("A股代码").map_elements(_code, return_dtype=pl.Utf8),
        name=pl.col("公司全称"),
        code=pl.col("A股代码"),
    )
    return firms, pairs


def test_bracket_width_pairs_resolve_to_one_enterprise(exchange):
    firms, pairs = exchange
    index = NameIndex.build(firms.with_columns(former_names=pl.lit(None, pl.Utf8)))
    same = pairs.filter(pl.col("equal_after_nfkc") == "True")
    assert same.height >= 5
    got = index.match(same["name_cninfo"])
    expected = [_code(c) for c in same["company_code"]]
    assert got["uscc"].to_list() == expected
    assert set(got["method"]) == {"normalized"}


def test_renamed_pairs_match_only_through_a_former_name(exchange):
    firms, pairs = exchange
    renamed = pairs.filter(pl.col("equal_after_nfkc") == "False")
    assert renamed.height >= 5
    expected = [_code(c) for c in renamed["company_code"]]

    without = NameIndex.build(firms.with_columns(former_names=pl.lit(None, pl.Utf8)))
    assert without.match(renamed["name_cninfo"])["uscc"].null_count() == renamed.height

    old_names = dict(zip(renamed["company_code"], renamed["name_cninfo"], strict=True))
    with_former = firms.with_columns(
        former_names=pl.col("code").replace_strict(old_names, default=None, return_dtype=pl.Utf8)
    )
    got = NameIndex.build(with_former).match(renamed["name_cninfo"])
    assert got["uscc"].to_list() == expected
    assert set(got["method"]) == {"former_name"}


def test_real_listed_names_never_match_the_wrong_firm(exchange, research_data):
    firms, _ = exchange
    cninfo = pl.read_csv(
        research_data / "exchange-company-lists" / "cninfo_registry_6124.csv", infer_schema=False
    ).filter(pl.col("company_full_name").is_not_null())
    index = NameIndex.build(firms.with_columns(former_names=pl.lit(None, pl.Utf8)))
    got = index.match(cninfo["company_full_name"]).with_columns(
        own=cninfo["company_code"].map_elements(_code, return_dtype=pl.Utf8)
    )
    matched = got.filter(pl.col("uscc").is_not_null())
    assert matched.height > 400
    assert (matched["uscc"] == matched["own"]).all()


def test_real_registry_names_survive_bracket_and_space_variants(research_data):
    path = research_data / "js-enterprise-registry" / "jiangsu_2018.csv"
    reg = pl.read_csv(path, infer_schema=False).select(
        uscc="统一社会信用代码", name="企业名称", former_names=pl.lit(None, pl.Utf8)
    )
    index = NameIndex.build(reg)
    unique_keys = (
        normalize_names(reg["name"]).value_counts().filter(pl.col("count") == 1)["name"].to_list()
    )
    firms = reg.filter(normalize_names(reg["name"]).is_in(unique_keys)).filter(
        pl.col("name").str.contains("[()（）]")
    )
    assert firms.height > 100
    flipped = (
        firms["name"]
        .str.replace_all("（", "<").str.replace_all("）", ">")
        .str.replace_all(r"\(", "（").str.replace_all(r"\)", "）")
        .str.replace_all("<", "(").str.replace_all(">", ")")
        + " "
    )
    got = index.match(flipped)
    assert got["uscc"].to_list() == firms["uscc"].to_list()
