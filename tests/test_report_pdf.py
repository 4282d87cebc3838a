"""The review-meeting PDF, rendered from a fixture run folder and read back with poppler."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from PIL import Image
from report_fixture import (
    DROP_NOTE,
    FEW_POSITIVES_TIER,
    FORMULA_NAME,
    RULES_CHANGING,
    SPECIAL_NAME,
    TIERS,
    write_run_folder,
)

from reports import pdf
from reports.charts import FontMissingError
from scoring.backtest import MIN_POSITIVES

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler-utils is not installed"
)


def _text(path: Path, *pages: int) -> str:
    span = ["-f", str(pages[0]), "-l", str(pages[-1])] if pages else []
    return subprocess.run(
        ["pdftotext", *span, str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def _flat(text: str) -> str:
    """Text without whitespace: names that wrap inside a table cell still match."""
    return re.sub(r"\s+", "", text)


def _pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    return int(re.search(r"Pages:\s+(\d+)", info).group(1))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    run_dir = write_run_folder(tmp_path_factory.mktemp("run"))
    return pdf.render_report(run_dir)


@pytest.fixture(scope="module")
def sparse(tmp_path_factory) -> Path:
    """Empty allocation; backtest, SHAP samples and waterfall inputs missing altogether."""
    run_dir = write_run_folder(
        tmp_path_factory.mktemp("sparse"), n_per_tier=20, empty_allocation=True, with_backtest=False
    )
    for name in ("shap_sample", "shap_top", "firm_facts"):
        (run_dir / "tables" / f"{name}.parquet").unlink()
    return pdf.render_report(run_dir)


def test_writes_a4_pdf_and_charts(rendered):
    assert rendered.name == "report.pdf" and rendered.stat().st_size > 10_000
    info = subprocess.run(
        ["pdfinfo", str(rendered)], check=True, capture_output=True, text=True
    ).stdout
    assert "595.276 x 841.89" in info  # A4 portrait for the first page
    charts = {p.name for p in (rendered.parent / "charts").glob("*.svg")}
    assert {"sensitivity.svg", "backtest.svg", "shap_bar.svg", "shap_beeswarm.svg"} <= charts
    assert sum(name.startswith("waterfall_") for name in charts) == 3 * len(TIERS)


def test_cjk_font_is_embedded(rendered):
    fonts = subprocess.run(
        ["pdffonts", str(rendered)], check=True, capture_output=True, text=True
    ).stdout
    cjk = [line for line in fonts.splitlines() if "NotoSansCJK" in line]
    assert cjk, fonts
    assert all(line.split()[-5] == "yes" for line in cjk), fonts  # the emb column


def test_text_has_tiers_top_firms_and_page_numbers(rendered):
    text = _text(rendered)
    flat = _flat(text)
    for tier in TIERS.values():
        assert tier in text
    cands = pl.read_parquet(rendered.parent / "tables" / "candidates.parquet")
    for name in cands.filter(pl.col("rank") <= 3)["name"]:
        assert _flat(name) in flat, name
    assert "第 1 页 / 共" in text
    total = _pages(rendered)
    assert f"第 {total} 页 / 共 {total} 页" in text


def test_long_lists_are_cut_at_50_with_a_pointer_to_the_workbook(rendered):
    text = _text(rendered)
    assert "此处列出前 50 名" in text and "candidates.xlsx" in text
    cands = pl.read_parquet(rendered.parent / "tables" / "candidates.parquet")
    tier = cands.filter(pl.col("tier_key") == "innovative_sme")
    body = _text(rendered, 2, _pages(rendered))  # past the cover's table of contents
    listed = _flat(
        body.split("候选名单: 专精特新中小企业")[0].split("候选名单: 创新型中小企业")[-1]
    )
    assert _flat(tier.filter(pl.col("rank") == 50)["name"][0]) in listed
    only_below_50 = set(tier.filter(pl.col("rank") > 50)["name"]) - set(
        cands.filter(pl.col("rank") <= 50)["name"]
    )
    assert not any(_flat(n) in listed for n in only_below_50)


def test_table_header_repeats_on_continuation_pages(rendered):
    first = _text(rendered, 3)
    assert "候选名单: 创新型中小企业" in first
    following = _text(rendered, 4)
    assert "候选名单" not in following  # a continuation page of the same list
    assert all(h in _flat(following) for h in ("排名", "企业名称", "认定概率", "主要因素"))


def test_names_with_markup_characters_print_literally(rendered):
    flat = _flat(_text(rendered))
    assert _flat(SPECIAL_NAME) in flat
    assert _flat(FORMULA_NAME) in flat
    assert '=HYPERLINK("http://x","y")' in _text(rendered)


def test_memo_markdown_is_rendered_not_printed(rendered):
    text = _text(rendered)
    assert "推荐意见" in text and "风险提示" in text and "3,000 万元" in text
    assert "**" not in text and "## " not in text
    assert re.search(r"2\.\s*与固定奖励普惠方案比较", text)  # numbered items keep their numbers


def test_pages_are_not_blank(rendered, tmp_path):
    total = _pages(rendered)
    for page in (1, 2, 3, total // 2, total):
        prefix = tmp_path / f"p{page}"
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-r",
                "50",
                "-f",
                str(page),
                "-l",
                str(page),
                str(rendered),
                str(prefix),
            ],
            check=True,
        )
        png = next(tmp_path.glob(f"p{page}-*.png"))
        gray = Image.open(png).convert("L")
        dark = sum(gray.histogram()[:200])
        assert dark / (gray.width * gray.height) > 0.01, f"page {page} looks blank"


def test_same_tables_give_identical_bytes(rendered, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(rendered.parent, copy, ignore=shutil.ignore_patterns("report.pdf", "charts"))
    again = pdf.render_report(copy)
    assert again.read_bytes() == rendered.read_bytes()


def test_empty_and_missing_tables_say_no_data(sparse):
    text = _text(sparse)
    memo = text.split("分配明细")[1].split("与其他分配方案比较")[0]
    assert "本期无数据" in memo
    assert "本期无数据" in text.split("回测")[-1].split("模型解释")[0]
    assert "本期无数据" in text.split("特征取值与影响方向")[-1].split("附录")[0]


def test_every_table_empty_still_renders(tmp_path):
    run_dir = write_run_folder(tmp_path / "empty", n_per_tier=5, with_backtest=False)
    for path in (run_dir / "tables").glob("*.parquet"):
        pl.read_parquet(path).clear().write_parquet(path)
    (run_dir / "memo.md").unlink()
    (run_dir / "quarantine.csv").write_bytes(
        "\ufefftable,file,row,column,value,check,severity,message\n".encode()
    )
    (run_dir / "manifest.json").write_text(
        '{"city": "宜兴市", "quarter": "2025Q4"}', encoding="utf-8"
    )
    text = _text(pdf.render_report(run_dir))
    assert "宜兴市" in text and text.count("本期无数据") >= 10


def test_missing_cjk_font_fails_loudly(sparse, tmp_path):
    with pytest.raises(FontMissingError, match="fonts-noto-cjk"):
        pdf.render_report(sparse.parent, font_dir=tmp_path)
    data = pdf.build_data(pdf.Run({}, {}, None, None, 0), {})  # typst alone, without the charts
    with pytest.raises(FontMissingError, match="unknown font family"):
        pdf.compile_pdf(data, [], pdf.Fonts.at(tmp_path))


def test_memo_blocks():
    blocks = pdf.memo_blocks(
        "# 标题\n\n第一行\n第二行 **重点** 内容\n\n- 甲\n- 乙\n\n| a | b |\n|---|---|\n"
        "| 1 | 2 |\n\n2. 第二条\n3、第三条\n2025.5 亿元\n"
    )
    assert [b["kind"] for b in blocks] == ["heading", "para", "list", "table", "list", "para"]
    assert blocks[2]["start"] is None and blocks[4]["start"] == 2 and len(blocks[4]["items"]) == 2
    assert blocks[1]["spans"] == [
        {"text": "第一行第二行 ", "strong": False},
        {"text": "重点", "strong": True},
        {"text": " 内容", "strong": False},
    ]
    assert blocks[3]["header"] == ["a", "b"] and blocks[3]["rows"] == [["1", "2"]]


def test_counts_read_every_candidate_and_texts_only_the_printed(rendered):
    """Run.load reads every candidate's COUNTED columns and whole rows only for the first
    TOP_LISTED of each tier (a province's texts were 2.5 GB); the summary still counts them all."""
    full = pl.read_parquet(rendered.parent / "tables" / "candidates.parquet")
    run = pdf.Run.load(rendered.parent)
    assert run.table("candidates").columns == list(pdf.COUNTED)
    assert run.table("candidates").height == full.height
    printed = full.filter(pl.col("rank") <= pdf.TOP_LISTED)
    assert run.table("printed").equals(printed)
    assert full.height > printed.height   # the fixture has tiers longer than the list
    rows = {r["tier"]: r for r in pdf.summary(run)["rows"]}
    for (key,), part in full.group_by("tier_key"):
        zh = part["tier"][0]
        assert rows[zh]["n"] == f"{part.height:,}" and rows[zh]["eligible"] == f"{part['eligible'].sum():,}"
        to_verify = part.filter(~pl.col("eligible") & pl.col("eligible_if_unknowns_hold")).height
        assert to_verify > 0 and rows[zh]["to_verify"] == f"{to_verify:,}"
        # the expected number of new recognitions within four quarters: the probabilities' sum
        assert rows[zh]["likely"] == f"{part['probability'].sum():,.1f}"


def test_review_lines_count_the_conditions_and_shorten_the_first_three():
    text = ("从事细分市场年限(需人工核实)；上年营业收入(数据缺失，需人工核实)；"
            "主导产品所属领域(需人工核实)；数字化水平(需人工核实)")
    assert pdf._review_lines(text) == [
        "待核实 4 项:", "从事细分市场年限", "上年营业收入(数据缺失)", "主导产品所属领域 等"]
    assert pdf._review_lines("数字化水平(需人工核实)") == ["待核实 1 项:", "数字化水平"]
    assert pdf._review_lines(None) == [] and pdf._review_lines("") == []


def test_a_firm_to_verify_shows_what_to_verify_in_its_tier_list(rendered):
    """A 待核实 row's 差距 cell names the conditions a person must check; an eligible or
    ineligible row's does not."""
    run = pdf.Run.load(rendered.parent)
    lists = {t["key"]: t["rows"] for t in pdf.tier_lists(run)}
    printed = run.table("printed").sort("tier_key", "rank")
    checked = 0
    for r in printed.iter_rows(named=True):
        row = lists[r["tier_key"]][r["rank"] - 1]
        assert row["name"] == r["name"]
        items = pdf._split(r["needs_review"])
        if row["eligible"] == "待核实" and items:
            assert row["gaps"][-min(len(items), pdf.REVIEW_LISTED) - 1] == f"待核实 {len(items)} 项:"
            assert row["gaps"][-min(len(items), pdf.REVIEW_LISTED)].startswith(items[0])
            checked += 1
        else:
            assert not any(g.startswith("待核实") for g in row["gaps"]), row
    assert checked >= 5
    text = _flat(_text(rendered))
    assert "差距/待核实项" in text and "待核实" in text


def test_appendix_lists_the_rows_accepted_with_a_warning(rendered):
    """flags.csv's rows (accepted, to be checked) are in the appendix after the quarantined ones,
    with their count; a run without flags says so."""
    appendix = _flat(_text(rendered).split("附录: 数据质量")[-1].split("方法说明")[0])
    assert "已接受但需核对的行(前3行,共3行)" in appendix
    for row in (12, 13, 14):
        assert f"资质荣誉.csv第{row}行,级别:级别「市级」与专精特新中小企业的认定级别(省级)不符" in appendix
    assert appendix.index("隔离行(前30行,共45行)") < appendix.index("已接受但需核对的行")


def test_check_ids_in_the_row_tables_may_wrap_after_underscores(rendered):
    """A check id is one long word to typst; in the 8.5em column `total_liabilities_nonnegative`
    ran into the next cell. A zero-width space after each underscore lets it wrap there."""
    section = pdf.quality_section(pdf.Run.load(rendered.parent))
    assert section["flags"][0]["check"] == "level_\u200bmatches_\u200btitle"
    assert {r["check"] for r in section["quarantine"]} == {"format_\u200bnumber"}
    assert section["checks"][0]["check"] == "format_\u200bnumber"


def test_the_most_failed_checks_name_their_column_and_severity_in_chinese(rendered):
    """The clerk reads which column a check is about, and 错误 / 警告 — not GX's `warn`."""
    section = pdf.quality_section(pdf.Run.load(rendered.parent))
    shown = [(c["table"], c["column"], c["severity"], c["rows"]) for c in section["checks"]]
    assert shown[:2] == [("财务快报 (filings)", "营业收入(万元)", "错误", "17"),
                         ("企业登记 (enterprises)", "统一社会信用代码", "错误", "12")]
    assert ("融资 (financing)", "企业名称", "警告", "3") in shown
    assert all(c["severity"] in ("错误", "警告") for c in section["checks"])


def test_appendix_shows_how_each_written_form_of_a_title_was_read(rendered):
    appendix = _flat(_text(rendered).split("附录: 数据质量")[-1].split("方法说明")[0])
    assert "资质名称的读取(共2种写法)" in appendix
    assert "国家高新技术企业高新技术企业37" in appendix and "瞪羚企业（培育）不参与评分4" in appendix


def test_the_methods_page_gives_the_scoring_models_own_training_window():
    """The validated model and the one that scores differ in their quarters: the page gives
    both, and the tuning quarter the rounds were chosen on."""
    window = {"train_quarters": ["2022Q1", "2023Q3"], "tuning_quarters": ["2024Q3", "2024Q3"],
              "validation_quarters": ["2024Q4", "2024Q4"], "refit_quarters": ["2022Q1", "2024Q4"]}
    lines = pdf._window_lines(window, {})
    assert lines == ["训练期 (验证用模型): 2022Q1 – 2023Q3", "早停与校准: 2024Q3", "验证期: 2024Q4",
                     "评分模型的训练期 (以验证所得迭代轮数重新训练): 2022Q1 – 2024Q4"]


def test_the_methods_page_says_why_a_tier_has_no_model_of_its_own():
    """The pooled-only tiers with their training-window positives beside them; the per-tier counts
    after them are all quarters' (an audit read 小巨人 44 beside "too few positives", where the
    training window held 15)."""
    window = {"tiers_pooled_only": {"little_giant": "训练期正例 15 个 < 50, 只用合并模型"},
              "positives_by_tier": {"little_giant": 44}}
    lines = pdf._window_lines(window, {"little_giant": "专精特新小巨人"})
    assert lines == ["只用合并模型的层级: 专精特新小巨人 (训练期正例 15 个 < 50)",
                     "各层级正例数 (所有已知结果的季度, 含调参与验证季度): 专精特新小巨人 44"]


def test_backtest_shows_no_figures_for_a_tier_with_few_later_recognitions(rendered):
    """A tier with 3 later recognitions (under MIN_POSITIVES) shows its count and "—", not a
    recall that one firm swings from 0 to 100 %; the other tiers show their figures."""
    text = subprocess.run(["pdftotext", "-layout", str(rendered), "-"], check=True, capture_output=True,
                          text=True).stdout
    backtest = pl.read_parquet(rendered.parent / "tables" / "backtest.parquet")
    few = backtest.filter(~pl.col("enough_positives"))
    assert set(few["tier_key"]) == {FEW_POSITIVES_TIER} and few["recall_tidu"].is_not_null().all()
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) == 7 and cells[0] in TIERS.values() and cells[2] in ("10", "50"):
            rows[(cells[0], cells[2])] = cells[1:]
    assert len(rows) == 2 * len(TIERS)
    for (tier, _), cells in rows.items():
        if tier == TIERS[FEW_POSITIVES_TIER]:
            assert cells[0] == "3" and cells[2:] == ["—"] * 4
        else:
            assert cells[0] == "40" and all(c.endswith("%") for c in cells[2:])
    assert f"实际新认定少于{MIN_POSITIVES}家的层级不列召回率和精确率" in _flat(text)
    # the section says which lists it compares (an audit found no quarter named)
    assert "tidu排序与公布的名单相同:先按是否符合条件分组,组内按认定概率" in _flat(text)


def test_the_appendix_says_what_the_drop_lacks(rendered):
    """A missing optional column beside an unknown header (manifest drop_notes) is in the
    data-quality appendix, where the meeting sees it, not only on the clerk's console."""
    appendix = _flat(_text(rendered).split("附录: 数据质量")[-1].split("方法说明")[0])
    assert "数据包的结构问题" in appendix and _flat(DROP_NOTE) in appendix


def test_the_importance_bar_chart_ranks_the_firms_features_as_the_beeswarm_does(tmp_path):
    """The tier one-hots (the tier's base rate, no attribute of a firm) are not bars: the two
    global charts rank the same features (the bar's top two used to be 层级: …)."""
    from reports import charts

    glob = pl.DataFrame({"feature": ["tier_little_giant", "rd_intensity_py", "age_years"],
                         "mean_abs_shap": [0.9, 0.3, 0.2],
                         "label": ["所评层级: 专精特新小巨人", "研发费用占比(上年)", "成立年限"]})
    svg = charts.shap_bar(glob, tmp_path / "bar.svg").read_text(encoding="utf-8")
    assert "研发费用占比(上年)" in svg and "成立年限" in svg
    assert "层级" not in svg


def test_the_cover_and_methods_page_name_the_code_not_only_the_version(rendered):
    """The version stays 0.1.0 from commit to commit; the code's fingerprint (code_sha256, what
    tidu verify compares) tells an auditor which tidu made the pack."""
    text = _flat(_text(rendered))
    assert text.count("tidu0.1.0·代码3f2a9c0d41be") == 2   # the cover and the methods page


def test_rules_that_change_after_the_quarter_are_named_on_the_summary_and_methods_pages(rendered):
    """The lists are judged by the rules in force at the quarter's end; where the manifest names a
    rulebook that follows (63号 → the 2026 rules on 04-01), the summary and the methods page say
    which tiers change, from when, and that later applications are judged anew. The methods table
    gives each rulebook's dates of force."""
    text = _flat(_text(rendered))
    changing = "、".join(f"{TIERS[k]}({k}-2026)" for k in RULES_CHANGING)
    sentence = f"规则变更:2026-04-01起{changing}适用新规则。本报告按2025Q4季度末生效的规则判定资格"
    assert text.count(sentence) == 2
    assert "2024-01-01至2026-03-31" in text and "2024-01-01起" in text


def test_rules_change_sentence_groups_tiers_by_day_and_is_empty_without_a_successor():
    books = [{"tier_zh": "甲", "name_zh": "甲企业", "next": {"id": "a-2", "effective_from": "2026-04-01",
                                                          "name_zh": "新甲企业"}},
             {"tier_zh": "乙", "next": None},
             {"tier_zh": "丙", "next": {"id": "c-2", "effective_from": "2025-01-01"}},
             {"tier_zh": "丁", "next": {"id": "d-2", "effective_from": "2026-04-01"}}]
    assert pdf._rules_change(books, "2024Q4").startswith(
        "规则变更: 2025-01-01 起 丙 (c-2)；2026-04-01 起 甲 (改称新甲企业, a-2)、丁 (d-2) 适用新规则。本报告按 2024Q4 季度末")
    assert pdf._rules_change([{"tier_zh": "乙"}], "2024Q4") == ""


def test_a_waterfall_names_its_tier_bar_and_the_probability_its_end_becomes(tmp_path):
    """The tier bar reads 所评层级 (the tier the row is scored for, not a title the firm holds,
    which `层级: X = 是` suggested) and the title turns the chart's end, in log-odds, into the
    probability the page prints."""
    from reports import charts
    from scoring.explain import label, value_text

    rows = pl.DataFrame({"base_value": [-4.85] * 3, "feature": ["tier_little_giant", "rd_intensity_py", "age_years"],
                         "label": [label("tier_little_giant"), "研发费用占比(上年)", "成立年限"],
                         "value_text": [value_text("tier_little_giant", 1.0), "9.0%", "6.2 年"],
                         "shap": [2.1, 1.4, 0.3]})
    svg = charts.waterfall(rows, tmp_path / "w.svg", probability=0.7672).read_text(encoding="utf-8")
    assert "所评层级: 专精特新小巨人" in svg and "所评层级: 专精特新小巨人 =" not in svg
    assert "本企业 f(x) = -1.05，经校准即认定概率 76.7%" in svg


def test_a_long_value_in_the_appendix_can_wrap_inside_its_column():
    """An 18-character credit code ran over the next column (检查) of the appendix's tables: a
    zero-width space after every 9th character of an unbroken run lets it wrap; text with spaces
    and short values are left as they are, and the clip still applies."""
    fmt = pdf.QUARANTINE_COLUMNS["value"][1]
    assert fmt("91320200MA1DT7550L") == "91320200M\u200bA1DT7550L"
    assert fmt("10429300") == "10429300" and fmt("江苏 某某 公司") == "江苏 某某 公司"
    long = fmt("1" * 60)
    assert long.replace("\u200b", "") == "1" * 39 + "…"


def test_each_tier_list_says_how_it_is_ordered(rendered):
    """A 待核实 firm with a higher probability below a 是 firm read as a mistake (analyst audit):
    every tier's list page says the groups come first, then the probability."""
    text = _flat(_text(rendered))
    assert text.count("排名先按符合条件分组(是→待核实→否),组内按概率从高到低") == len(TIERS)


def test_the_methods_page_gives_both_calibration_intercepts():
    """The scoring model's intercept is fitted again on its own training quarters: the methods
    page names the slope and both intercepts; a backtest's window (no refit) gets no line."""
    line = [t for t in pdf._window_lines({"calibration": {"a": 1.175, "b_tuning": 1.121, "b_refit": 0.709}}, {})
            if t.startswith("Platt")]
    assert line == [("Platt 校准: 斜率 1.18 (调参季度); 截距 1.12 (调参季度, 验证用模型) → 0.71 (评分模型, "
                     "使其在训练季度上的预计认定数等于实际认定数)")]
    assert not [t for t in pdf._window_lines({"calibration": {"a": 1.0, "b_tuning": 0.2}}, {}) if "Platt" in t]


def test_a_firm_pages_long_lists_are_cut_with_a_pointer_to_the_workbook():
    items = [f"条件{i}(需人工核实)" for i in range(11)]
    assert pdf._capped(items, "需人工核实") == [*items[:7], "另有 4 项, 全文见 candidates.xlsx 的“需人工核实”列"]
    assert pdf._capped(items[:8], "需人工核实") == items[:8]
