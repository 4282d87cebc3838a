"""Data quality in CI: the GX suites run on the demo drop and on the test fixtures, and an
error-severity breach fails."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.synth import synthesize


def _validate(drop: Path, out: Path):
    result = CliRunner().invoke(app, ["validate", str(drop), "--out", str(out)])
    assert "Traceback" not in result.output
    return result


def test_demo_drop_passes_every_error_check(demo_drop, tmp_path):
    result = _validate(demo_drop, tmp_path / "dq")
    assert result.exit_code == 0, result.output
    docs = tmp_path / "dq" / "data_docs"
    assert (docs / "index.html").exists()
    pages = list((docs / "validations").rglob("*.html"))
    assert len(pages) == 6  # one validation page per table suite
    manifest = json.loads((tmp_path / "dq" / "manifest.json").read_text())
    assert all(i["rows_quarantined"] == 0 for i in manifest["inputs"])


def test_dirty_fixture_breaches_and_fails(tmp_path):
    drop = tmp_path / "dirty"
    synthesize(drop, enterprises=300, quarters=12, seed=9, dirty=True)
    out = tmp_path / "dq"
    result = _validate(drop, out)
    assert result.exit_code == 1
    quarantine = pl.read_csv(out / "quarantine.csv", infer_schema=False)
    faults = pl.read_csv(drop / "_synth" / "faults.csv", infer_schema=False)
    meant = faults.filter(pl.col("expect") == "quarantine").select("file", "row")
    caught = quarantine.filter(pl.col("severity") == "error").select("file", "row").unique()
    missed = meant.join(caught, on=["file", "row"], how="anti")
    assert missed.height == 0, missed  # every fault the generator meant to be quarantined is
