"""How the drop's 资质名称 are read: one reading (`data_contracts.honors.honor_key_expr`) shared by the
contracts, the panel's holdings, the model's labels and the pandas baseline, so that a firm that
holds a title is never put forward for it again because its clerk wrote the name another way."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pandas as pd
import polars as pl
import pytest
from typer.testing import CliRunner

from data_contracts.honors import HONOR_NAME_NOISE, HONOR_NAME_NOTES, honor_key, honor_key_expr
from data_contracts.periods import Quarter
from features.panel import INPUT_SCHEMAS, build_panel
from pipelines.cli import app
from pipelines.synth import synthesize
from scoring.model import recognitions

READ_AS = [
    ("高新技术企业", "high_tech_enterprise"),
    ("高企", "high_tech_enterprise"),
    ("国家高新技术企业", "high_tech_enterprise"),           # the common name of the national title
    ("高新技术企业（复审）", "high_tech_enterprise"),        # a review noted after the name
    ("2024年第二批高新技术企业", "high_tech_enterprise"),    # the year and batch before it
    ("高新技术企业(第五批)", "high_tech_enterprise"),
    ("创新型中小企业(2024年)", "innovative_sme"),
    ("2023年度瞪羚企业", "gazelle"),
    ('专精特新"小巨人"企业', "little_giant"),                # MIIT's own name, ASCII quotes
    ("专精特新“小巨人”企业", "little_giant"),                # … and Chinese quotes
    ("国家级专精特新“小巨人”企业", "little_giant"),
    ("专精特新　小巨人", "little_giant"),                   # a full-width space
    ("江苏省专精特新中小企业", "specialised_sme"),           # a provincial title, the province named
    ("北京市专精特新中小企业", "specialised_sme"),           # a municipality is a province
    ("省级专精特新中小企业", "specialised_sme"),
    ("制造业单项冠军示范企业", "single_champion"),
    (" 雏鹰 ", "eaglet"),
    ("little_giant", "little_giant"),                       # a key in code form
]
NOT_SCORED = [
    "无锡市专精特新中小企业",   # a city's own title, not the province's
    "瞪羚企业（培育）",         # a cultivation list, not the title
    "制造业单项冠军产品",       # a product's title
    "Little giant",
    "某某奖",
]


@pytest.mark.parametrize("name,key", READ_AS)
def test_a_variant_of_a_title_is_read_as_the_title(name, key):
    assert honor_key(name) == key


@pytest.mark.parametrize("name", NOT_SCORED)
def test_another_title_is_not_taken_for_a_scored_one(name):
    assert honor_key(name) is None


def test_the_pandas_baseline_cleans_names_as_the_panel_does():
    names = [n for n, _ in READ_AS] + NOT_SCORED
    cleaned = pd.Series(names).str.replace(HONOR_NAME_NOISE, "", regex=True)
    for note in HONOR_NAME_NOTES:
        cleaned = cleaned.str.replace(note, "", regex=True)
    from data_contracts.honors import cleaned_honor_name

    assert cleaned.tolist() == pl.select(cleaned_honor_name(pl.Series(names))).to_series().to_list()


def test_labels_and_holdings_read_a_variant_alike():
    """The same row gives the panel's holds_little_giant and the model's little_giant label."""
    day = dt.date(2024, 7, 1)
    honors = pl.DataFrame({"uscc": ["A", "B"], "honor": ["国家级专精特新“小巨人”企业", "无锡市专精特新中小企业"],
                           "recognized_on": [day, day], "valid_until": [None, None]},
                          schema=INPUT_SCHEMAS["honors"])
    enterprises = pl.DataFrame([{"uscc": u, "founded_on": dt.date(2015, 1, 1)} for u in "AB"],
                               schema=INPUT_SCHEMAS["enterprises"])
    panel = build_panel({"enterprises": enterprises, "honors": honors}, [Quarter(2024, 3)])
    assert panel.get_column("holds_little_giant").to_list() == [True, False]
    assert panel.get_column("holds_specialised_sme").to_list() == [False, False]
    assert recognitions(honors).rows() == [("A", "little_giant", Quarter(2024, 3).index)]
    assert pl.select(honor_key_expr(honors.get_column("honor"))).to_series().to_list() == ["little_giant", None]


def test_validate_flags_only_unknown_names_and_the_manifest_says_how_each_was_read(tmp_path):
    drop = tmp_path / "drop"
    synthesize(drop, enterprises=60, quarters=8, seed=5)
    shutil.rmtree(drop / "_synth")
    path = drop / "资质荣誉.csv"
    honors = pl.read_csv(path, infer_schema=False)
    uscc = honors.get_column("统一社会信用代码")[0]
    extra = pl.DataFrame({"统一社会信用代码": [uscc] * 3,
                          "资质名称": ["国家高新技术企业", "专精特新“小巨人”企业", "瞪羚企业（培育）"],
                          "级别": ["国家级", "国家级", "市级"], "认定日期": ["2024-06-01"] * 3,
                          "有效期至": [None] * 3})
    pl.concat([honors, extra.select(honors.columns)], how="vertical").write_csv(path)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["validate", str(drop), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 行有警告" in result.output
    flags = pl.read_csv(out / "flags.csv", infer_schema=False)
    assert flags.select("check", "value", "row").rows() == [("honor_known", "瞪羚企业（培育）",
                                                             str(honors.height + 4))]
    readings = {r["name"]: (r["read_as"], r["rows"])
                for r in json.loads((out / "manifest.json").read_text(encoding="utf-8"))["honor_names"]}
    assert readings == {"国家高新技术企业": ("高新技术企业", 1), "专精特新“小巨人”企业": ("专精特新小巨人", 1),
                        "瞪羚企业（培育）": (None, 1)}


def test_a_level_other_than_the_titles_own_is_flagged_and_the_row_still_counts(tmp_path):
    """专精特新中小企业 are granted by the provinces, 小巨人 by MIIT: 市级 专精特新 may be a city's
    own title of the same name, so a person is asked to check; 雏鹰 (a city's title) and a row
    without a level are not flagged."""
    from data_contracts.derive import honor_checks

    frame = pl.DataFrame({
        "honor": ["专精特新中小企业", "江苏省专精特新中小企业", "专精特新“小巨人”企业", "专精特新小巨人",
                  "雏鹰企业", "专精特新中小企业", "某某奖"],
        "level": ["市级", "省级", "省级", "国家级", "市级", None, "市级"]})
    problems = honor_checks(frame).get_column("_p_level_mismatch").to_list()
    assert [p is not None for p in problems] == [True, False, True, False, False, False, False]
    assert problems[0] == ("级别「市级」与专精特新中小企业的认定级别 (省级) 不符, 可能是同名的另一项地方资质; "
                           "本行仍按专精特新中小企业计, 请核对")
    assert "(国家级)" in problems[2]


def test_the_2026_entry_title_counts_as_the_innovative_tier():
    """From 2026-04-01 the tier 创新型中小企业 is recognised as 科技和创新型中小企业: a firm holding it
    is not put forward for the tier again, and its recognition is the tier's new recognition."""
    from scoring.model import candidate_keys

    honors = pl.DataFrame([{"uscc": "A", "honor": "科技和创新型中小企业", "recognized_on": dt.date(2026, 6, 20)}],
                          schema=INPUT_SCHEMAS["honors"])
    enterprises = pl.DataFrame([{"uscc": u, "founded_on": dt.date(2015, 1, 1)} for u in "AB"],
                               schema=INPUT_SCHEMAS["enterprises"])
    panel = build_panel({"enterprises": enterprises, "honors": honors}, [Quarter(2026, 1), Quarter(2026, 2)])
    held = panel.select("uscc", "quarter", "holds_innovative_sme", "holds_tech_innovative_sme",
                        "years_since_innovative_sme").rows()
    assert held == [("A", "2026Q1", False, False, None),
                    ("A", "2026Q2", True, True, (dt.date(2026, 6, 30) - dt.date(2026, 6, 20)).days / 365.25),
                    ("B", "2026Q1", False, False, None), ("B", "2026Q2", False, False, None)]
    innovative = candidate_keys(panel).filter(pl.col("tier") == "innovative_sme")
    assert innovative.select("uscc", "quarter").rows() == [("A", "2026Q1"), ("B", "2026Q1"), ("B", "2026Q2")]
    assert recognitions(honors).rows() == [("A", "innovative_sme", Quarter(2026, 2).index)]
