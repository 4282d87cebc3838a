"""`tidu verify`: an auditor runs a finished run again from its manifest and its drop, and every
output must come out byte for byte as recorded — or the difference is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.synth import synthesize

runner = CliRunner()
POLICY = Path(__file__).resolve().parents[1] / "scoring" / "policies" / "default.yaml"
RULES = Path(__file__).resolve().parents[1] / "scoring" / "rulebooks" / "config.yaml"
CHECK_DAY = "2026-01-15"
LATER = "2026-02-01"   # a round dated after the check day, before the day the tests run


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result, result.output.replace("\n", "")   # rich wraps at the terminal width


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, Path]:
    """A small city's drop with one financing round dated LATER, run with the check day
    CHECK_DAY (the round is quarantined then; checked today it would be accepted)."""
    base = tmp_path_factory.mktemp("verify")
    drop, run = base / "drop", base / "run"
    synthesize(drop, enterprises=600, quarters=12, seed=3)
    rounds = drop / "融资.csv"
    lines = rounds.read_text(encoding="utf-8-sig").splitlines()
    cells = lines[1].split(",")
    cells[2], cells[3] = LATER, "A轮"
    rounds.write_text("\n".join([*lines, ",".join(cells)]) + "\n", encoding="utf-8-sig")
    result, said = _invoke("run", str(drop), "--quarter", "2025Q4", "--out", str(run),
                           "--checked-on", CHECK_DAY, "--no-pdf")
    assert result.exit_code == 0, said
    return drop, run


def _verdicts(output: str) -> dict[str, str]:
    """file → 一致 / 不一致, from verify's table (a line per output: file, both sha256, verdict, and
    a mark when the run folder's copy was edited)."""
    found = {}
    for line in output.splitlines():
        words = line.split()
        if " 原 " in line and words and (verdict := next((w for w in words if w in ("一致", "不一致")), None)):
            found[words[0]] = verdict
    return found


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def test_the_manifest_records_the_check_day_and_settings(recorded):
    _, run = recorded
    manifest = _manifest(run)
    assert manifest["checked_on"] == CHECK_DAY
    assert manifest["settings"] == {"policy": None, "rules": None, "saved_model": None, "pdf": False}
    hit = pl.read_csv(run / "quarantine.csv", infer_schema=False).filter(pl.col("value") == LATER)
    assert hit.get_column("message").to_list() == [
        f"融资.csv 第 46 行, 融资日期: 融资日期 {LATER} 晚于核验日 {CHECK_DAY}"]


def test_a_run_verified_from_its_manifest_gives_every_output_again(recorded, tmp_path):
    drop, run = recorded
    again = tmp_path / "again"
    again.mkdir()   # a folder used before: an earlier run's PDF there is not this run's output
    (again / "report.pdf").write_bytes(b"%PDF-1.7 from an earlier run")
    result, said = _invoke("verify", str(run), "--drop", str(drop), "--out", str(again))
    assert result.exit_code == 0, said
    assert not (again / "report.pdf").exists()
    recorded_outputs = _manifest(run)["outputs"]
    files = {n for n in recorded_outputs if "/" not in n}
    assert files == {"quarantine.csv", "flags.csv", "candidates.csv", "allocation.csv", "candidates.xlsx", "allocation.xlsx",
                     "memo.md"}
    assert {n.split("/")[0] for n in recorded_outputs} - files == {"model", "tables"}   # --no-pdf: no charts
    assert _verdicts(result.output) == dict.fromkeys(recorded_outputs, "一致")
    assert f"复核通过: {len(recorded_outputs)} 个输出文件" in said
    for name, digest in recorded_outputs.items():
        assert _manifest(again)["outputs"][name] == digest, name
    # checked against the recorded day, not the day of the check
    assert _manifest(again)["checked_on"] == CHECK_DAY
    assert (again / "quarantine.csv").read_bytes() == (run / "quarantine.csv").read_bytes()


def test_checked_today_the_same_drop_gives_another_quarantine(recorded, tmp_path):
    """Why the check day is recorded: today the round is no longer in the future."""
    drop, run = recorded
    result, said = _invoke("validate", str(drop), "--out", str(tmp_path / "today"))
    assert result.exit_code == 0, said
    assert LATER not in (tmp_path / "today" / "quarantine.csv").read_text(encoding="utf-8-sig")
    assert LATER in (run / "quarantine.csv").read_text(encoding="utf-8-sig")


def test_a_changed_or_missing_input_is_named_and_nothing_is_run(recorded, tmp_path):
    drop, run = recorded
    changed = tmp_path / "drop"
    shutil.copytree(drop, changed)
    rounds = changed / "融资.csv"
    rounds.write_text(rounds.read_text(encoding="utf-8-sig").replace(",610,", ",611,", 1), encoding="utf-8-sig")
    (changed / "重点项目.csv").unlink()
    again = tmp_path / "again"
    result, said = _invoke("verify", str(run), "--drop", str(changed), "--out", str(again))
    assert result.exit_code == 1, said
    assert "融资.csv 与原运行读取的文件不同" in said
    assert "数据包中没有 重点项目.csv" in said
    assert "专利.csv" not in said   # unchanged files are not named
    assert not (again / "manifest.json").exists()


def test_an_output_edited_after_the_run_fails_verification(recorded, tmp_path):
    drop, run = recorded
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with open(copy / "allocation.csv", "a", encoding="utf-8") as fh:
        fh.write("91320200000000000X,某企业,创新型中小企业,先投后股,500,\n")
    result, said = _invoke("verify", str(copy), "--drop", str(drop), "--out", str(tmp_path / "again"))
    assert result.exit_code == 1, said
    assert "原运行文件夹中的 allocation.csv 与 manifest.json 记录的不一致 (运行后被改动过)" in said
    assert "复核未通过:原运行文件夹中的文件在运行后被改动过(重新运行的结果与manifest.json的记录一致)" in "".join(said.split())
    # the re-run itself matches the record, the edited file included, which is marked
    assert _verdicts(result.output) == dict.fromkeys(_manifest(run)["outputs"], "一致")
    assert "(原文件夹中的该文件已被改动)" in said


def test_the_model_and_the_reports_tables_are_outputs_too(recorded, tmp_path):
    """A calibrator changed in model/model.json, or a probability in tables/candidates.parquet,
    passed verification (only seven files were hashed); both are recorded outputs now."""
    drop, run = recorded
    outputs = _manifest(run)["outputs"]
    assert {"model/model.json", "tables/candidates.parquet", "tables/allocation.parquet"} <= set(outputs)
    assert not any(name.startswith(("data_docs", "warehouse")) for name in outputs)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    table = pl.read_parquet(copy / "tables" / "candidates.parquet")
    table.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(0.99).otherwise(pl.col("probability"))
                       .alias("probability")).write_parquet(copy / "tables" / "candidates.parquet")
    result, said = _invoke("verify", str(copy), "--drop", str(drop), "--out", str(tmp_path / "again"))
    assert result.exit_code == 1, said
    assert "原运行文件夹中的 tables/candidates.parquet 与 manifest.json 记录的不一致" in said


def test_another_code_that_gives_other_outputs_cannot_verify(recorded, tmp_path):
    """The manifest records tidu's code (code_sha256). Run again with other code, an output that
    differs is no evidence against the data: exit 2, said so; the same outputs pass, with a note."""
    drop, run = recorded
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    manifest = _manifest(copy)
    assert len(manifest["code_sha256"]) == 64
    manifest["code_sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    result, said = _invoke("verify", str(copy), "--drop", str(drop), "--out", str(tmp_path / "same"))
    assert result.exit_code == 0, said
    assert "tidu 的程序代码与原运行不同" in said
    manifest["outputs"]["memo.md"] = "f" * 64          # as if the older code had written another memo
    (copy / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    result, said = _invoke("verify", str(copy), "--drop", str(drop), "--out", str(tmp_path / "other"))
    assert result.exit_code == 2, said
    assert "无法复核: tidu 的程序代码与原运行不同" in said


@pytest.mark.parametrize("edit,args,needle", [
    (lambda m: m.pop("checked_on"), [], "缺少 checked_on"),
    (lambda m: m.update(status="contract_failed"), [], "没有正常完成"),
    (lambda m: m["settings"].update(policy={"file": "宜兴2026.yaml", "sha256": "0" * 64}), [],
     "请用 --policy 指定该文件"),
    (lambda m: m["settings"].update(policy={"file": "default.yaml", "sha256": "0" * 64}),
     ["--policy", str(POLICY)], "内容不同"),
    (lambda m: None, ["--policy", str(POLICY)], "不应指定 --policy"),
    (lambda m: m["settings"].update(rules={"file": "本市规则.yaml", "sha256": "0" * 64}), [],
     "请用 --rules 指定该文件"),
    (lambda m: m["settings"].update(rules={"file": "config.yaml", "sha256": "0" * 64}),
     ["--rules", str(RULES)], "内容不同"),
    (lambda m: None, ["--rules", str(RULES)], "不应指定 --rules"),
    (lambda m: m["settings"].update(saved_model="model"), [], "请用 --model 指定该模型文件夹"),
    (lambda m: None, ["--model", "somewhere"], "不应指定 --model"),
])
def test_what_the_run_used_must_be_given_again(recorded, tmp_path, edit, args, needle):
    drop, run = recorded
    copy = tmp_path / "run"
    copy.mkdir()
    manifest = _manifest(run)
    edit(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    result, said = _invoke("verify", str(copy), "--drop", str(drop), "--out", str(tmp_path / "again"), *args)
    assert result.exit_code == 2, said
    assert needle in said and "无法复核" in said


def test_a_run_scored_with_a_saved_model_is_verified_with_that_model(recorded, tmp_path):
    """The bureau scores with the model its run trained (`--model`); the auditor gives the same."""
    drop, run = recorded
    scored = tmp_path / "scored"
    result, said = _invoke("run", str(drop), "--quarter", "2025Q4", "--out", str(scored), "--model",
                           str(run / "model"), "--checked-on", CHECK_DAY, "--no-pdf")
    assert result.exit_code == 0, said
    recorded_model = _manifest(scored)["settings"]["saved_model"]
    assert recorded_model["folder"] == "model" and len(recorded_model["sha256"]) == 64
    result, said = _invoke("verify", str(scored), "--drop", str(drop), "--out", str(tmp_path / "again"),
                           "--model", str(run / "model"))
    assert result.exit_code == 0, said
    assert _verdicts(result.output) == dict.fromkeys(_manifest(scored)["outputs"], "一致")
    assert _manifest(tmp_path / "again")["model"]["id"] == _manifest(run)["model"]["id"]
    # a copy of the model with its calibration changed is not the model the run used
    changed = tmp_path / "changed_model"
    shutil.copytree(run / "model", changed)
    meta = json.loads((changed / "model.json").read_text(encoding="utf-8"))
    meta["_touched"] = True
    (changed / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    result, said = _invoke("verify", str(scored), "--drop", str(drop), "--out", str(tmp_path / "again2"),
                           "--model", str(changed))
    assert result.exit_code == 2, said
    assert "与原运行使用的模型文件夹 model 内容不同" in said


def test_verify_does_not_write_into_the_run_it_checks(recorded):
    drop, run = recorded
    result, said = _invoke("verify", str(run), "--drop", str(drop), "--out", str(run))
    assert result.exit_code == 2, said
    assert "不能是被复核的文件夹" in said


@pytest.mark.parametrize("day,needle", [("2026/13/01", "日期应写成 YYYY-MM-DD"), ("2999-01-01", "晚于今天")])
def test_a_bad_check_day_is_refused(recorded, tmp_path, day, needle):
    drop, _ = recorded
    result, said = _invoke("validate", str(drop), "--out", str(tmp_path / "v"), "--checked-on", day)
    assert result.exit_code == 2
    assert needle in said
    assert not (tmp_path / "v" / "quarantine.csv").exists()


def test_the_check_day_is_read_as_the_drops_dates_are(recorded, tmp_path):
    drop, _ = recorded
    result, said = _invoke("validate", str(drop), "--out", str(tmp_path / "v"), "--checked-on", "2026年1月15日")
    assert result.exit_code == 1, said   # the round dated LATER is after that day
    assert _manifest(tmp_path / "v")["checked_on"] == CHECK_DAY
