"""What a user sees when a run stops on something that is not the data: a full disk gets its own
message (and no error.log, for which there is no room); a program error leaves its traceback in
error.log and a one-line notice."""

from __future__ import annotations

import errno

import pytest
import typer

from pipelines.cli import _guard


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
