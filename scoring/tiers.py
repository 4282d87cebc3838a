"""Tier keys, their Chinese names, and how honor names in the drop map to them."""

from __future__ import annotations

# Tiers scored and listed (order = order in reports). Chinese names as outputs.md fixes them.
TIERS: dict[str, str] = {
    "innovative_sme": "创新型中小企业",
    "specialised_sme": "专精特新中小企业",
    "little_giant": "专精特新小巨人",
    "high_tech_enterprise": "高新技术企业",
    "tech_sme": "科技型中小企业",
    "eaglet": "雏鹰企业",
    "gazelle": "瞪羚企业",
    "quasi_unicorn": "准独角兽企业",
}

LADDERS: dict[str, list[str]] = {
    "miit": ["innovative_sme", "specialised_sme", "little_giant", "single_champion"],
    "growth": ["eaglet", "gazelle", "quasi_unicorn", "unicorn"],
}

# Honor names as they come in the drop's 资质名称 column → honor key.
HONOR_KEYS: dict[str, str] = {
    "高新技术企业": "high_tech_enterprise",
    "科技型中小企业": "tech_sme",
    "创新型中小企业": "innovative_sme",
    "科技和创新型中小企业": "tech_innovative_sme",
    "专精特新中小企业": "specialised_sme",
    "专精特新小巨人": "little_giant",
    '专精特新"小巨人"': "little_giant",
    "专精特新“小巨人”": "little_giant",
    "制造业单项冠军": "single_champion",
    "雏鹰企业": "eaglet",
    "瞪羚企业": "gazelle",
    "准独角兽企业": "quasi_unicorn",
    "独角兽企业": "unicorn",
    "省级研发机构": "rd_institution_provincial",
}

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


def honor_key(name: str) -> str | None:
    """The honor key for a 资质名称 as written in the drop, or None when unknown."""
    cleaned = name.strip().replace(" ", "")
    return HONOR_KEYS.get(cleaned)
