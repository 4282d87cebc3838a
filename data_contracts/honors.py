"""The drop's honor vocabulary: how a 资质名称 as bureaus write it is read (one reading for the
contracts, the panel and the model's labels), the level and statutory term of each title, and
the titles that count as a tier they are not named after. Honor keys are the tier keys of
`scoring.tiers` plus the titles tidu reads but does not list (制造业单项冠军, 独角兽, 省级研发机构)."""

from __future__ import annotations

import polars as pl

# Honor names as they come in the drop's 资质名称 column → honor key, once the name is cleaned
# (`cleaned_honor_name`): spaces and quote marks removed (专精特新“小巨人”企业 → 专精特新小巨人企业), and a
# note of the year, batch or review before or after the name (2023年度…, …（第五批）, …（复审）).
# Only the names below count. Anything else — a city's own title (无锡市专精特新中小企业 is not the
# province's), a 培育 list, a product title — is flagged by the contracts and not scored.
PROVINCES = (
    "北京市", "天津市", "上海市", "重庆市", "河北省", "山西省", "辽宁省", "吉林省", "黑龙江省", "江苏省",
    "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省", "广东省", "海南省",
    "四川省", "贵州省", "云南省", "陕西省", "甘肃省", "青海省", "内蒙古自治区", "广西壮族自治区",
    "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区",
)
HONOR_KEYS: dict[str, str] = {
    "高新技术企业": "high_tech_enterprise",
    "高企": "high_tech_enterprise",                 # the everyday short name
    "国家高新技术企业": "high_tech_enterprise",
    "国家级高新技术企业": "high_tech_enterprise",
    "科技型中小企业": "tech_sme",
    "创新型中小企业": "innovative_sme",
    "科技和创新型中小企业": "tech_innovative_sme",
    "专精特新中小企业": "specialised_sme",
    "省级专精特新中小企业": "specialised_sme",
    # 专精特新中小企业 are recognised by the provinces: a province's name before it is the same title
    **{f"{province}专精特新中小企业": "specialised_sme" for province in PROVINCES},
    "专精特新小巨人": "little_giant",
    "专精特新小巨人企业": "little_giant",          # the MIIT name, 专精特新"小巨人"企业, unquoted
    "国家级专精特新小巨人": "little_giant",
    "国家级专精特新小巨人企业": "little_giant",
    "制造业单项冠军": "single_champion",
    "制造业单项冠军企业": "single_champion",
    "制造业单项冠军示范企业": "single_champion",
    "国家级制造业单项冠军企业": "single_champion",
    "雏鹰企业": "eaglet",
    "雏鹰": "eaglet",
    "瞪羚企业": "gazelle",
    "瞪羚": "gazelle",
    "准独角兽企业": "quasi_unicorn",
    "准独角兽": "quasi_unicorn",
    "独角兽企业": "unicorn",
    "独角兽": "unicorn",
    "省级研发机构": "rd_institution_provincial",
}
# The level a title is granted at, where who grants it fixes it: MIIT names 小巨人 and 单项冠军,
# the provinces 专精特新中小企业 (criteria.md). A row with another 级别 may be a local title of the
# same name (a city's own 专精特新): the contracts flag it for a person to check.
TITLE_LEVELS: dict[str, str] = {
    "little_giant": "国家级", "single_champion": "国家级", "specialised_sme": "省级",
    "rd_institution_provincial": "省级",
}
# Statutory terms: a title written without 有效期至 is held this many years from its recognition
# date (criteria.md §1.1: the MIIT titles are valid 3 years; §3.1: 高新技术企业 3 years). Any other
# title without 有效期至 follows PanelConfig.honor_default_validity_years (none: held indefinitely).
TITLE_TERM_YEARS: dict[str, int] = {
    "innovative_sme": 3, "tech_innovative_sme": 3, "specialised_sme": 3, "little_giant": 3,
    "high_tech_enterprise": 3,
}
# Titles that count as a tier they are not named after. From 2026-04-01 (工信部企业〔2026〕2号,
# criteria.md §0) the entry tier innovative_sme is recognised as 科技和创新型中小企业 (rulebook
# miit-2026-tech_innovative_sme): holding that title is holding the tier (the firm is not put
# forward for it again) and its recognition is a new recognition at the tier (the model's label).
# Whether it also stands for 科技型中小企业 is not settled by criteria.md, so tech_sme keeps its own.
TIER_TITLES: dict[str, tuple[str, ...]] = {"innovative_sme": ("innovative_sme", "tech_innovative_sme")}
# The cleaning, as regular expressions both Polars and Python's re read the same way.
_BATCH = r"第[一二三四五六七八九十\d]+批"
HONOR_NAME_NOISE = r"[\s\"'“”‘’「」『』]"
HONOR_NAME_NOTES = (
    rf"^\d{{4}}年度?(?:{_BATCH})?",                                    # 2023年度…, 2024年第二批…
    rf"[(（](?:\d{{4}}年?度?(?:{_BATCH})?|{_BATCH}|复审|重新认定|复核)[)）]$",  # …（2024年）, …（复审）
)

HONOR_NAMES_ZH: dict[str, str] = {
    "high_tech_enterprise": "高新技术企业",
    "tech_sme": "科技型中小企业",
    "innovative_sme": "创新型中小企业",
    "tech_innovative_sme": "科技和创新型中小企业",
    "specialised_sme": "专精特新中小企业",
    "little_giant": "专精特新小巨人",
    "single_champion": "制造业单项冠军",
    "eaglet": "雏鹰企业",
    "gazelle": "瞪羚企业",
    "quasi_unicorn": "准独角兽企业",
    "unicorn": "独角兽企业",
    "rd_institution_provincial": "省级研发机构",
}


def cleaned_honor_name(name: pl.Expr) -> pl.Expr:
    """The 资质名称 without spaces, quote marks and a note of the year, batch or review."""
    cleaned = name.str.replace_all(HONOR_NAME_NOISE, "")
    for note in HONOR_NAME_NOTES:
        cleaned = cleaned.str.replace(note, "")
    return cleaned


def honor_key_expr(name: pl.Expr) -> pl.Expr:
    """The honor key of each 资质名称 (null when tidu does not know the name); a key already in
    code form (`little_giant`) is kept."""
    known = HONOR_KEYS | {key: key for key in HONOR_NAMES_ZH}
    return cleaned_honor_name(name).replace_strict(known, default=None, return_dtype=pl.Utf8)


def honor_key(name: str) -> str | None:
    """The honor key for one 资质名称 as written in the drop, or None when unknown."""
    return pl.select(honor_key_expr(pl.lit(name, dtype=pl.Utf8))).item()


def honor_name_readings(names: pl.Series) -> list[dict]:
    """How the drop's 资质名称 were read, for the manifest: each distinct name that is not already a
    tier's own Chinese name, with the honor it counts as (null: not scored) and its rows."""
    own = set(HONOR_NAMES_ZH.values())
    counted = (names.drop_nulls().alias("name").to_frame()
               .group_by("name").len("rows")
               .filter(~pl.col("name").is_in(list(own)))
               .with_columns(honor_key_expr(pl.col("name"))
                             .replace_strict(HONOR_NAMES_ZH, default=None).alias("read_as"))
               .sort("rows", "name", descending=[True, False]))
    return counted.select("name", "read_as", "rows").to_dicts()
