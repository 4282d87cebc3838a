"""Tier keys and their Chinese names (the tiers scored and listed) and the two ladders. How the
drop's honor names are read is the input's vocabulary: `data_contracts.honors`."""

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
