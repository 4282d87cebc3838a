"""One whole quarterly run on a small synthetic city, judged by the files a bureau receives."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.synth import synthesize
from scoring.tiers import TIERS

EVIL = '=HYPERLINK("http://x","y")'
CANDIDATE_COLUMNS = ["uscc", "name", "district", "tier", "eligible", "points", "gaps", "probability", "rank", "reasons"]
ALLOCATION_COLUMNS = ["uscc", "name", "tier", "instrument", "amount_wan", "rationale"]
QUARANTINE_COLUMNS = ["table", "file", "row", "column", "value", "check", "severity", "message"]


def _run(drop: Path, out: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(drop), "--quarter", "2025Q4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("e2e")
    drop = base / "drop"
    synthesize(drop, enterprises=900, quarters=14, seed=5, dirty=True)
    registry = next(drop.glob("企业登记.*"))
    if registry.suffix == ".csv":  # a firm whose name is a spreadsheet formula
        text = registry.read_text(encoding="utf-8-sig").splitlines()
        cells = text[3].split(",")
        cells[1] = '"' + EVIL.replace('"', '""') + '"'
        text[3] = ",".join(cells)
        registry.write_text("\n".join(text) + "\n", encoding="utf-8-sig")
    out1, out2 = base / "out1", base / "out2"
    _run(drop, out1)
    _run(drop, out2)
    return drop, out1, out2


def _csv(path: Path) -> pl.DataFrame:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf"), f"{path.name} has no BOM"
    return pl.read_csv(path, infer_schema=False)


def test_every_output_file_is_there(city):
    _, out, _ = city
    for name in ("manifest.json", "quarantine.csv", "candidates.csv", "allocation.csv", "candidates.xlsx",
                 "report.pdf", "warehouse.duckdb", "memo.md"):
        assert (out / name).exists(), name


def test_rows_conserved_per_table(city):
    _, out, _ = city
    manifest = json.loads((out / "manifest.json").read_text())
    q = _csv(out / "quarantine.csv")
    assert q.columns == QUARANTINE_COLUMNS
    assert len(manifest["inputs"]) == 6
    for item in manifest["inputs"]:
        assert item["rows_read"] == item["rows_accepted"] + item["rows_quarantined"], item
        assert item["rows_read"] > 0 and len(item["sha256"]) == 64
        in_file = q.filter(pl.col("table") == item["table"]).select("row").n_unique()
        assert in_file == item["rows_quarantined"], item
    assert sum(i["rows_quarantined"] for i in manifest["inputs"]) > 0  # the drop is dirty


def test_candidates_shape_and_values(city):
    _, out, _ = city
    c = _csv(out / "candidates.csv")
    assert c.columns == CANDIDATE_COLUMNS
    assert set(c.get_column("tier").unique()) <= set(TIERS.values())
    p = c.get_column("probability").cast(pl.Float64)
    assert p.is_not_null().all() and p.min() >= 0 and p.max() <= 1
    assert set(c.get_column("eligible").unique()) <= {"true", "false"}
    ranks = c.group_by("tier").agg(pl.col("rank").cast(pl.Int64).sort())
    for tier, r in ranks.iter_rows():
        assert list(r) == list(range(1, len(r) + 1)), tier
    # what an ineligible firm lacks: a failed condition, else what waits on a manual check
    ineligible = c.filter(pl.col("eligible") == "false")
    assert ineligible.height > 0 and ineligible.get_column("gaps").is_not_null().all()
    review_only = ineligible.filter(pl.col("gaps").str.ends_with("需人工核实)"))
    assert review_only.height > 0
    assert c.get_column("reasons").str.contains("[↑↓]").mean() > 0.9


def test_every_rank_can_be_redone_from_the_published_lists(city):
    """An auditor re-sorts each tier by the rank rule from what the outputs print: the verdict
    (candidates.xlsx: 是 / 待核实 / 否), then candidates.csv's probability and points as printed,
    then the credit code — and gets candidates.csv's ranks."""
    _, out, _ = city
    c = _csv(out / "candidates.csv").with_columns(
        pl.col("probability").cast(pl.Float64), pl.col("points").cast(pl.Float64), pl.col("rank").cast(pl.Int64))
    for tier in c["tier"].unique().to_list():
        sheet = pl.read_excel(out / "candidates.xlsx", sheet_name=tier, infer_schema_length=0)
        verdicts = sheet.select(pl.col("统一社会信用代码").alias("uscc"),
                                pl.col("是否符合条件").replace_strict({"是": 0, "待核实": 1, "否": 2}).alias("group"))
        rows = c.filter(pl.col("tier") == tier).join(verdicts, on="uscc", how="left")
        assert rows["group"].is_not_null().all(), tier
        redone = rows.sort(["group", "probability", "points", "uscc"], descending=[False, True, True, False],
                           nulls_last=True)
        assert redone["rank"].to_list() == list(range(1, rows.height + 1)), tier


def test_allocation_shape_and_budget(city):
    _, out, _ = city
    a = _csv(out / "allocation.csv")
    assert a.columns == ALLOCATION_COLUMNS
    manifest = json.loads((out / "manifest.json").read_text())
    assert a.get_column("amount_wan").cast(pl.Float64).sum() <= manifest["budget_wan"] + 1e-6
    assert a.height > 0


def test_manifest_records_rules_model_and_stages(city):
    _, out, _ = city
    m = json.loads((out / "manifest.json").read_text())
    assert m["quarter"] == "2025Q4" and m["package_version"]
    assert {r["tier"] for r in m["rulebooks"]} == set(TIERS)
    assert m["model"]["window"]["train_quarters"] and 0.5 < m["model"]["metrics"]["overall"]["auc"] <= 1
    for stage in ("read", "contracts", "warehouse", "features", "rules", "train", "explain", "allocate", "report"):
        assert stage in m["seconds"], stage


def test_pdf_has_chinese_tier_names_and_embedded_cjk_font(city):
    _, out, _ = city
    text = subprocess.run(["pdftotext", "-layout", str(out / "report.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    for zh in TIERS.values():
        assert zh in text, zh
    # the funding comparison names its plans and counts their firms (they once printed blank)
    baseline = pl.read_parquet(out / "tables" / "baseline.parquet")
    assert baseline.height == 2
    for plan, firms in baseline.select("scheme", "firms_funded").iter_rows():
        lines = [line for line in text.splitlines() if plan in line]
        assert lines and any(re.search(rf"\s{firms:,}\s", line + " ") for line in lines), (plan, lines)
    fonts = subprocess.run(["pdffonts", str(out / "report.pdf")], capture_output=True, text=True, check=True).stdout
    cjk = [line for line in fonts.splitlines() if "CJK" in line]
    assert cjk and all(" yes " in line for line in cjk)


def test_no_personal_data_in_any_output(city):
    drop, out, _ = city
    ids = pl.read_csv(next(drop.glob("企业登记.csv")), infer_schema=False).get_column("法定代表人证件号").drop_nulls()
    sample = ids.head(50).to_list()
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json", ".md"):
            text = path.read_text(encoding="utf-8-sig", errors="ignore")
            assert not any(s in text for s in sample), path.name
    import duckdb

    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    assert con.sql("SELECT count(*) FROM information_schema.columns "
                   "WHERE column_name = 'legal_rep_id'").fetchall() == [(0,)]
    con.close()


def test_formula_text_is_neutralised(city):
    _, out, _ = city
    for name in ("candidates.csv", "allocation.csv"):
        text = (out / name).read_text(encoding="utf-8-sig")
        starts = [i for i in range(len(text)) if text.startswith("=HYPERLINK", i)]
        assert all(text[i - 1] == "'" for i in starts), name
    assert "'=HYPERLINK" in (out / "candidates.csv").read_text(encoding="utf-8-sig")


def test_same_inputs_same_outputs(city):
    _, out1, out2 = city
    for name in ("candidates.csv", "allocation.csv", "quarantine.csv", "memo.md", "report.pdf",
                 "candidates.xlsx", "allocation.xlsx"):
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name


def test_each_waterfall_ends_at_the_firms_probability(city):
    """The report's waterfall for a top firm goes from the base value through every feature's push
    to the firm's log-odds, which the calibration turns into the probability the lists print (an
    audit found the chart short by up to 0.45 log-odds: the other tiers' one-hots were left out)."""
    from scoring.model import PromotionModel

    _, out, _ = city
    model = PromotionModel.load(out / "model")
    top = pl.read_parquet(out / "tables" / "shap_top.parquet")
    ends = top.group_by("uscc", "tier_key").agg((pl.col("base_value").first() + pl.col("shap").sum()).alias("f"))
    probability = ends.join(pl.read_parquet(out / "tables" / "candidates.parquet")
                            .select("uscc", "tier_key", "probability"), on=["uscc", "tier_key"])
    assert probability.height == ends.height > 10
    assert np.abs(model.calibrate(probability["f"].to_numpy()) - probability["probability"].to_numpy()).max() < 1e-9
    # one bar per row for its tier, the one-hots' sum
    assert top.filter(pl.col("feature").str.starts_with("tier_")).group_by("uscc", "tier_key").len()["len"].max() == 1


def test_the_shap_sample_names_each_rows_firm_and_tier(city):
    """shap_sample.parquet (the beeswarm's rows) says whose values each row holds: an auditor finds
    the row in the lists by uscc and tier, and its feature values are that firm's own."""
    _, out, _ = city
    sample = pl.read_parquet(out / "tables" / "shap_sample.parquet")
    rows = sample.select("row_id", "uscc", "tier_key").unique()
    assert rows.height == rows["row_id"].n_unique() == rows.select("uscc", "tier_key").unique().height > 100
    listed = pl.read_parquet(out / "tables" / "candidates.parquet").select("uscc", "tier_key")
    assert rows.join(listed, on=["uscc", "tier_key"], how="anti").height == 0
    import duckdb

    with duckdb.connect(str(out / "warehouse.duckdb"), read_only=True) as db:
        founded = db.sql("select uscc, founded_on from enterprises").pl()
    ages = (sample.filter(pl.col("feature") == "age_years").join(founded, on="uscc")
            .with_columns(((pl.date(2025, 12, 31) - pl.col("founded_on")).dt.total_days() / 365.25).alias("age")))
    assert ages.height == rows.height and ages["age"].null_count() < ages.height // 10
    assert (ages["value"] - ages["age"]).abs().max() < 1e-9


def test_each_top_firm_takes_one_page_of_the_report(city):
    """A firm page with eleven conditions to verify spilled one bullet onto a page of its own
    (analyst audit): between the first firm page and the funding memo every page opens with a
    firm's heading."""
    _, out, _ = city
    pdf = out / "report.pdf"
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True,
                                                           text=True, check=True).stdout).group(1))

    def text(page: int) -> str:
        return subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), str(pdf), "-"],
                              capture_output=True, text=True, check=True).stdout

    texts = [text(p) for p in range(1, pages + 1)]
    first = next(i for i, t in enumerate(texts) if re.search(r"第 \d+ 名: ", t))
    memo = next(i for i, t in enumerate(texts) if "资金分配建议（草稿）" in t and i > first)
    firm_pages = texts[first:memo]
    assert len(firm_pages) > 5
    assert all(re.search(r"第 \d+ 名: ", t) for t in firm_pages), [i + 1 for i, t in enumerate(texts[first:memo], first)
                                                                   if not re.search(r"第 \d+ 名: ", t)]


def test_the_allocation_workbook_holds_the_csvs_lines_with_codes_as_text(city):
    """allocation.xlsx is allocation.csv for people: the same lines in the same order, the credit
    codes as text (a double-clicked CSV turns an all-digit code into 9.13203E+17), Chinese headers
    and a total that is the budget used."""
    import fastexcel

    _, out, _ = city
    lines = _csv(out / "allocation.csv")
    reader = fastexcel.read_excel(str(out / "allocation.xlsx"))
    assert reader.sheet_names == ["资金分配"]
    sheet = reader.load_sheet(0, dtypes={"统一社会信用代码": "string", "金额(万元)": "float"}).to_polars()
    assert sheet.columns[:5] == ["统一社会信用代码", "企业名称", "层级", "资助工具", "金额(万元)"]
    body, total = sheet.head(-1), sheet.tail(1)
    assert body["统一社会信用代码"].to_list() == lines["uscc"].to_list() and lines.height > 3
    assert body["层级"].to_list() == lines["tier"].to_list() and body["资助工具"].to_list() == lines["instrument"].to_list()
    assert body["金额(万元)"].to_list() == [float(x) for x in lines["amount_wan"]]
    assert total.row(0)[0] == "合计" and total["金额(万元)"].item() == pytest.approx(sum(float(x) for x in lines["amount_wan"]))
