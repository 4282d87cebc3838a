"""What a user sees when a run stops on something that is not the data: a full disk gets its own
message (and no error.log, for which there is no room); a program error leaves its traceback in
error.log and a one-line notice."""

from __future__ import annotations

import errno
import re
import tempfile
from pathlib import Path

import pytest
import typer

from data_contracts.periods import Quarter
from pipelines.cli import _guard, quarter_text


def _fail(exc: BaseException):
    def action():
        raise exc
    return action


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_named_and_leaves_no_log(tmp_path, capsys, code):
    target = tmp_path / "out" / "candidates.xlsx"
    with pytest.raises(typer.Exit) as stop:
        _guard(tmp_path / "out", _fail(OSError(code, "No space left on device", str(target))))
    assert stop.value.exit_code == 3
    said = capsys.readouterr().err
    said = said.replace("\n", "")   # rich wraps at the terminal width
    assert "磁盘空间不足" in said and "candidates.xlsx" in said and "内部错误" not in said
    assert not (tmp_path / "out" / "error.log").exists()


def test_a_library_reporting_a_full_disk_in_its_own_words_is_named_too(tmp_path, capsys):
    import duckdb

    error = duckdb.IOException('IO Error: Could not write file "w.duckdb.tmp/x": No space left on device')
    with pytest.raises(typer.Exit) as stop:
        _guard(tmp_path, _fail(error))
    assert stop.value.exit_code == 3
    assert "磁盘空间不足" in capsys.readouterr().err
    assert not (tmp_path / "error.log").exists()


@pytest.mark.parametrize("exc", [OSError(errno.EACCES, "Permission denied", "x"), RuntimeError("bug")])
def test_a_program_error_goes_to_error_log(tmp_path, capsys, monkeypatch, exc):
    monkeypatch.delenv("TIDU_DEBUG", raising=False)
    with pytest.raises(typer.Exit) as stop:
        _guard(tmp_path, _fail(exc))
    assert stop.value.exit_code == 3
    said = capsys.readouterr().err
    assert "内部错误" in said and "磁盘空间不足" not in said
    assert type(exc).__name__ in (tmp_path / "error.log").read_text(encoding="utf-8")


def test_debug_shows_the_exception_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDU_DEBUG", "1")
    with pytest.raises(OSError):
        _guard(tmp_path, _fail(OSError(errno.ENOSPC, "No space left on device", "x")))


def test_an_error_log_the_output_folder_cannot_take_goes_to_the_temp_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TIDU_DEBUG", raising=False)
    not_a_folder = tmp_path / "out"
    not_a_folder.write_text("a file where the output folder should be")
    with pytest.raises(typer.Exit) as stop:
        _guard(not_a_folder, _fail(RuntimeError("bug")))
    assert stop.value.exit_code == 3
    said = capsys.readouterr().err.replace("\n", "")
    log = Path(re.search(r"已写入 (\S+?\.log)", said).group(1))
    assert log.parent == Path(tempfile.gettempdir()) and "RuntimeError: bug" in log.read_text(encoding="utf-8")
    log.unlink()


@pytest.mark.parametrize("command", [
    ["run", "DROP", "--quarter", "2025Q4"], ["validate", "DROP"], ["backtest", "DROP", "--as-of", "2024Q4"],
    ["demo"], ["synth", "--enterprises", "100", "--quarters", "12", "--seed", "1"]])
def test_an_output_folder_that_is_a_file_is_refused_in_chinese(tmp_path, command):
    from typer.testing import CliRunner

    from pipelines.cli import app

    (tmp_path / "DROP").mkdir()
    not_a_folder = tmp_path / "out"
    not_a_folder.write_text("x")
    args = [str(tmp_path / "DROP") if a == "DROP" else a for a in command]
    result = CliRunner().invoke(app, [*args, "--out", str(not_a_folder)])
    assert result.exit_code == 2, result.output
    assert "是一个文件,不是文件夹" in re.sub(r"[\s│]", "", result.output)   # rich boxes and wraps it
    assert "Traceback" not in result.output and not_a_folder.read_text() == "x"
    # a folder that cannot be made, under a file: usage (exit 2), not an internal error (exit 3)
    result = CliRunner().invoke(app, [*args, "--out", str(not_a_folder / "sub")])
    assert result.exit_code == 2, result.output
    assert "无法创建文件夹" in re.sub(r"[\s│]", "", result.output) and not (tmp_path / "error.log").exists()


@pytest.mark.parametrize("text", ["2025Q4", "2025q4", " 2025Q4 ", "2025年四季度", "2025年第4季度",
                                  "2025年1-12月", "2025-12"])
def test_quarter_option_reads_the_forms_of_the_drops_period(text):
    assert quarter_text(text) == Quarter(2025, 4)


@pytest.mark.parametrize("text", ["2025Q5", "2025年", "Q4", "2025-11", ""])
def test_quarter_option_refuses_what_is_no_quarter(text):
    with pytest.raises(typer.BadParameter, match="季度应写成 YYYYQn"):
        quarter_text(text)


def test_synth_says_what_it_wrote_in_a_sentence(tmp_path):
    """Rows per file and where the truth is, not a printed Python object (an analysts' audit saw
    `SynthSummary(out=PosixPath(...), …)`)."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["synth", "--enterprises", "30", "--quarters", "4", "--seed", "3",
                                      "--out", str(tmp_path / "d")])
    text = "".join(result.output.split())
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert "企业登记30行" in text and "真实概率见" in text and "SynthSummary" not in text


def test_a_city_rulebook_config_is_used_and_a_broken_one_is_refused_in_chinese(tmp_path):
    """`--rules` names a city's own selection of the built-in rulebooks (e.g. Jiangsu's 2025
    potential-unicorn list, which the built-in Wuxi config leaves as an alternative); one naming an
    unknown rulebook, or two of a tier in force on one day, stops the run with exit 2 before the
    drop is read, and says why in Chinese."""
    import yaml
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.run import city_rulebooks
    from scoring.rulebook import RULEBOOK_DIR

    config = yaml.safe_load((RULEBOOK_DIR / "config.yaml").read_text(encoding="utf-8"))
    config["tiers"]["quasi_unicorn"] = ["jiangsu-2025-quasi_unicorn"]
    mine = tmp_path / "本市规则.yaml"
    mine.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    chosen = {b.id for b in city_rulebooks(mine) if b.tier == "quasi_unicorn"}
    assert chosen == {"jiangsu-2025-quasi_unicorn"}
    assert {b.id for b in city_rulebooks() if b.tier == "quasi_unicorn"} == {"jiangsu-2024-quasi_unicorn"}

    config["tiers"]["quasi_unicorn"] = ["jiangsu-2024-quasi_unicorn", "jiangsu-2025-quasi_unicorn", "no-such-book"]
    mine.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    (tmp_path / "DROP").mkdir()
    for rules, needles in ((mine, ["没有id为'no-such-book'的规则", "在2025-01-01同时有效"]),
                           (tmp_path / "缺.yaml", ["规则配置文件不存在"])):
        result = CliRunner().invoke(app, ["run", str(tmp_path / "DROP"), "--quarter", "2025Q4",
                                          "--out", str(tmp_path / "out"), "--rules", str(rules)])
        said = re.sub(r"[\s│]", "", result.output)
        assert result.exit_code == 2, result.output
        assert all(n in said for n in needles) and "Traceback" not in result.output, said


@pytest.mark.parametrize("command", [
    ["run", "DROP", "--quarter", "2025Q4"], ["validate", "DROP"], ["backtest", "DROP", "--as-of", "2024Q4"]])
def test_a_file_for_the_drop_or_an_output_folder_inside_the_drop_is_refused_before_anything_is_written(
        tmp_path, command):
    """A clerk gives the registry file instead of its folder, or writes the outputs into the drop
    (where the next run would read candidates.csv as one of the drop's files): exit 2 with the
    reason in Chinese, nothing written."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    drop = tmp_path / "DROP"
    drop.mkdir()
    registry = drop / "企业登记.csv"
    registry.write_text("统一社会信用代码,企业名称\n", encoding="utf-8")

    def invoke(given: Path, out: Path):
        args = [str(given) if a == "DROP" else a for a in command]
        return CliRunner().invoke(app, [*args, "--out", str(out)])

    result = invoke(registry, tmp_path / "out")
    flat = re.sub(r"[\s│]", "", result.output)
    assert result.exit_code == 2 and f"是一个文件;请给出数据包文件夹(即它所在的文件夹{drop})" in flat, result.output
    for inside in (drop, drop / "结果"):
        result = invoke(drop, inside)
        assert result.exit_code == 2 and "输出文件夹不能放在数据包文件夹中" in re.sub(r"[\s│]", "", result.output)
    assert sorted(p.name for p in drop.iterdir()) == ["企业登记.csv"] and not (tmp_path / "out").exists()
