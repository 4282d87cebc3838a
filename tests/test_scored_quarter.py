"""Which quarter a run may score, on a drop whose last return is 2023Q4 (returns from 2020Q1):

- a quarter after the drop's last return is refused before anything is scored: the model would
  take the recognitions after the drop's end, which the drop cannot show, for none;
- a history too short for an out-of-time model is refused;
- both say why in Chinese, exit 2 without a traceback, and leave a manifest saying why;
- 2023Q4 itself is scored, though no 准独角兽企业 rulebook is in force before 2024: that tier's
  verdicts are left to a person everywhere a bureau reads them, never printed as 否;
- a `--model` folder the run cannot score with is refused the same way, before the drop is read;
- a drop of the registry alone cannot train a model (refused), but is scored with a saved one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from data_contracts.periods import Quarter
from pipelines.cli import app
from pipelines.synth import synthesize

QUASI = "准独角兽企业"


@pytest.fixture(scope="module")
def drop(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("q") / "drop"
    synthesize(folder, enterprises=600, quarters=16, seed=3, end_quarter=Quarter(2023, 4))
    return folder


def _run(drop: Path, quarter: str, out: Path):
    return CliRunner().invoke(app, ["run", str(drop), "--quarter", quarter, "--out", str(out)])


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _flat(text: str) -> str:
    return "".join(text.split())   # rich and poppler wrap lines


def test_a_quarter_after_the_drop_is_refused_before_scoring(drop, tmp_path):
    result = _run(drop, "2024Q1", tmp_path)
    said = _flat(result.output)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "内部错误" not in said
    assert "评分季度2024Q1晚于数据包中最近的财务快报报告期2023Q4" in said
    assert "--quarter2023Q4" in said
    manifest = _manifest(tmp_path)
    assert manifest["status"] == "cannot_score"
    assert "2023Q4" in manifest["problems"][0]
    assert not (tmp_path / "candidates.csv").exists()
    assert not (tmp_path / "error.log").exists()


def test_a_history_too_short_is_refused_with_a_manifest(drop, tmp_path):
    result = _run(drop, "2021Q4", tmp_path)   # 8 quarters of returns, an out-of-time model needs 11
    assert result.exit_code == 2, result.output
    assert "数据包历史太短" in _flat(result.output) and "Traceback" not in result.output
    manifest = _manifest(tmp_path)
    assert manifest["status"] == "cannot_score"
    assert "(现有8个)" in _flat(manifest["problems"][0])
    assert not (tmp_path / "candidates.csv").exists()


@pytest.fixture(scope="module")
def before_2024(drop, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("q") / "out"
    result = _run(drop, "2023Q4", out)
    assert result.exit_code == 0, result.output
    return out


def test_the_manifest_names_the_tier_without_a_rulebook(before_2024):
    books = {b["tier_zh"]: b for b in _manifest(before_2024)["rulebooks"]}
    assert books[QUASI]["id"] is None and "未收录" in books[QUASI]["source"]
    assert books["创新型中小企业"]["id"] == "miit-2022-innovative_sme"


def test_the_workbook_leaves_every_verdict_of_that_tier_to_a_person(before_2024):
    quasi = pl.read_excel(before_2024 / "candidates.xlsx", sheet_name=QUASI,
                          schema_overrides={"是否符合条件": pl.Utf8})
    assert quasi.height > 0
    assert quasi["是否符合条件"].unique().to_list() == ["待核实"]
    assert quasi["需人工核实"].str.contains("未收录该季度适用的准独角兽企业规则").all()
    other = pl.read_excel(before_2024 / "candidates.xlsx", sheet_name="创新型中小企业",
                          schema_overrides={"是否符合条件": pl.Utf8})
    # the MIIT tiers' shared conditions (credit lists, products, incidents) wait on a person
    assert set(other["是否符合条件"].unique()) <= {"是", "否", "待核实"}
    assert "待核实" in set(other["是否符合条件"])


def test_the_csv_reads_that_tier_false_with_the_reason_in_gaps(before_2024):
    """outputs.md: candidates.csv's eligible is true or false; the reason a person must decide
    is in gaps, the file having no column of manual checks."""
    csv = pl.read_csv(before_2024 / "candidates.csv", infer_schema=False)
    quasi = csv.filter(pl.col("tier") == QUASI)
    assert quasi.height > 0 and quasi["eligible"].unique().to_list() == ["false"]
    assert quasi["gaps"].str.contains("未收录该季度适用的准独角兽企业规则").all()
    assert set(csv["eligible"].unique()) == {"true", "false"}


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils is not installed")
def test_the_report_says_no_rulebook_rather_than_none_eligible(before_2024):
    text = subprocess.run(["pdftotext", "-layout", str(before_2024 / "report.pdf"), "-"],
                          check=True, capture_output=True, text=True).stdout
    summary = next(line for line in text.splitlines() if line.startswith(QUASI))
    assert summary.split()[2:4] == ["—", "未收录规则"]
    assert "未收录规则:tidu未收录本季度该层级适用的认定规则" in _flat(text)
    lines = text.splitlines()
    heading = lines.index(f"候选名单: {QUASI}")   # the list's own heading, not the contents' line
    first = next(line for line in lines[heading:] if line.strip().startswith("1 "))
    assert "待核实" in first and " 否 " not in first


# --model: a folder the run cannot score with is refused, before the drop is read


def _damage(model: Path, case: str, to: Path) -> Path:
    if case == "no folder":
        return to / "absent"
    shutil.copytree(model, to / "model")
    meta = to / "model" / "model.json"
    if case == "broken json":
        meta.write_text(meta.read_text(encoding="utf-8")[:200], encoding="utf-8")
    elif case == "booster missing":
        (to / "model" / "booster.txt").unlink()
    elif case == "feature of another version":
        spec = json.loads(meta.read_text(encoding="utf-8"))
        spec["features"].append("patents_v0_count")
        meta.write_text(json.dumps(spec), encoding="utf-8")
    elif case == "booster damaged":
        booster = to / "model" / "booster.txt"
        booster.write_text(booster.read_text(encoding="utf-8")[:3000], encoding="utf-8")
    return to / "model"


@pytest.mark.parametrize("case, said", [
    ("no folder", "中没有model.json"),
    ("broken json", "model.json不完整或已损坏"),
    ("booster missing", "缺少模型文件:booster.txt"),
    ("feature of another version", "不生成的特征(1个,如patents_v0_count)"),
    ("booster damaged", "模型文件已损坏,LightGBM无法读取"),
])
def test_a_saved_model_the_run_cannot_use_is_refused(drop, before_2024, tmp_path, case, said):
    model = _damage(before_2024 / "model", case, tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(drop), "--quarter", "2023Q4", "--model", str(model),
                                      "--out", str(out), "--no-pdf"])
    assert result.exit_code == 2, result.output
    assert said in _flat(result.output) and "内部错误" not in _flat(result.output)
    assert _manifest(out)["status"] == "cannot_score"
    assert not (out / "candidates.csv").exists()
    # refused before the drop is read, except a damage only LightGBM finds
    assert (out / "warehouse.duckdb").exists() == (case == "booster damaged")


def test_the_run_scores_with_its_own_saved_model(drop, before_2024, tmp_path):
    result = CliRunner().invoke(app, ["run", str(drop), "--quarter", "2023Q4", "--model",
                                      str(before_2024 / "model"), "--out", str(tmp_path), "--no-pdf"])
    assert result.exit_code == 0, result.output
    again, first = (pl.read_csv(d / "candidates.csv", infer_schema=False) for d in (tmp_path, before_2024))
    assert again.equals(first)


# a drop of the registry alone (the other five tables are optional)


@pytest.fixture(scope="module")
def registry_only(drop, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("q") / "registry_only"
    folder.mkdir()
    for registry in drop.glob("企业登记.*"):
        shutil.copy(registry, folder)
    return folder


def test_a_registry_alone_cannot_train_a_model(registry_only, tmp_path):
    result = _run(registry_only, "2023Q4", tmp_path)
    assert result.exit_code == 2, result.output
    assert "数据包中没有可用的财务快报" in _flat(result.output)
    assert _manifest(tmp_path)["status"] == "cannot_score"


def test_a_registry_alone_is_scored_with_a_saved_model(registry_only, before_2024, tmp_path):
    result = CliRunner().invoke(app, ["run", str(registry_only), "--quarter", "2023Q4", "--model",
                                      str(before_2024 / "model"), "--out", str(tmp_path), "--no-pdf"])
    assert result.exit_code == 0, result.output
    scored = pl.read_csv(tmp_path / "candidates.csv", infer_schema=False)
    assert scored["uscc"].n_unique() > 0
    assert set(scored["uscc"]) <= set(pl.read_csv(before_2024 / "candidates.csv", infer_schema=False)["uscc"])


def test_a_drop_without_recognitions_cannot_train_and_says_to_use_a_saved_model(drop, tmp_path):
    folder = tmp_path / "no_honors"
    shutil.copytree(drop, folder, ignore=shutil.ignore_patterns("_synth", "资质荣誉.*"))
    result = _run(folder, "2023Q4", tmp_path / "out")
    assert result.exit_code == 2, result.output
    said = _flat(result.output)
    assert "训练窗口中没有任何新获认定的企业" in said and "可用--model指定已保存的模型评分" in said
    assert _manifest(tmp_path / "out")["status"] == "cannot_score"


# the output folder's warehouse keeps every drop loaded into it; a run reads its own drop


def test_an_earlier_drop_in_the_folder_changes_nothing(drop, before_2024, tmp_path):
    """Another city's drop run into the same folder first: its firms stay in the warehouse's
    history, none of them is scored in this drop's run, and the lists are the same bytes."""
    other = tmp_path / "other_city"
    synthesize(other, enterprises=150, quarters=16, seed=4, end_quarter=Quarter(2023, 4))
    out, model = tmp_path / "out", str(before_2024 / "model")
    for folder in (other, drop):
        result = CliRunner().invoke(app, ["run", str(folder), "--quarter", "2023Q4", "--model", model,
                                          "--out", str(out), "--no-pdf"])
        assert result.exit_code == 0, result.output
    import duckdb

    with duckdb.connect(str(out / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM drops").fetchall()[0][0] == 2
    alone = tmp_path / "alone"
    result = CliRunner().invoke(app, ["run", str(drop), "--quarter", "2023Q4", "--model", model,
                                      "--out", str(alone), "--no-pdf"])
    assert result.exit_code == 0, result.output
    for name in ("candidates.csv", "allocation.csv", "candidates.xlsx"):
        assert (out / name).read_bytes() == (alone / name).read_bytes(), name
