"""The run manifest: what went in (with hashes), what rules and model were used, what came out.

An auditor reproduces a list from its inputs with this file: the input files' sha256, the day
their dates were checked against, the rulebook ids and versions, the model id, window and metrics,
the seed, the run's settings, the package version, and each output's sha256 (`tidu verify` runs
it again from them and compares).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import resource
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from data_contracts.periods import Quarter

OUTPUT_FILES = ("quarantine.csv", "flags.csv", "candidates.csv", "allocation.csv", "candidates.xlsx",
                "allocation.xlsx", "memo.md", "report.pdf")
# Outputs hashed beside them: the saved model a later quarter may score with, the tables the report
# reads and its charts. Not hashed: warehouse.duckdb (the same rows, but DuckDB's file bytes differ
# from run to run), data_docs/ (Great Expectations writes the time of the run into its pages) and
# manifest.json itself (it holds the run's seconds).
OUTPUT_GLOBS = ("model/*", "tables/*.parquet", "charts/*")
# tidu's own code: what `code_sha256` hashes (the rulebooks, policy, catalog and report template
# decide outputs as much as the Python does)
CODE_PACKAGES = ("data_contracts", "features", "scoring", "reports", "pipelines")
CODE_SUFFIXES = (".py", ".yaml", ".yml", ".typ", ".json")


def code_sha256(root: Path | None = None) -> str:
    """One sha256 over tidu's source files (path and bytes, in path order): two runs with the same
    digest ran the same code, whatever the version number says (it stays 0.1.0 across commits)."""
    root = root or Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts and path.is_file():
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def folder_sha256(folder: Path) -> str:
    """One sha256 over a folder's files (relative path and bytes, in path order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + file_sha256(path).encode())
    return digest.hexdigest()


def package_version() -> str:
    try:
        return version("tidu")
    except PackageNotFoundError:
        return "0+unknown"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024, 1)


@dataclass
class Manifest:
    data: dict = field(default_factory=dict)
    # (path, size, modification time) → sha256 of the outputs this run has hashed: `finish` runs
    # again after the PDF, and a province's outputs are 3.3 GB to read again for one new file
    _digests: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def start(cls, quarter: Quarter, city: str, seed: int) -> Manifest:
        return cls({"quarter": str(quarter), "data_as_of": quarter.end.isoformat(), "city": city,
                    "seed": seed, "package_version": package_version(), "code_sha256": code_sha256(),
                    "python": sys.version.split()[0], "status": "running"})

    def record_inputs(self, drop, result) -> None:
        files = {r.path.name: r.sha256 for r in drop.tables.values()}
        from pipelines.warehouse import drop_id

        self.data["drop_id"] = drop_id(files)
        self.data["run_id"] = hashlib.sha256(
            f"{self.data['drop_id']}|{self.data.get('quarter')}|{self.data.get('seed')}".encode()).hexdigest()[:12]
        self.data["inputs"] = [
            {"table": name, "file": raw.path.name, "sha256": raw.sha256, "encoding": raw.encoding,
             "title_rows": raw.title_rows, "unit_factors": raw.unit_factors,
             "extra_columns": raw.extra_columns, "personal_columns_dropped": raw.personal_columns_dropped,
             "blank_rows_skipped": raw.blank_rows_skipped, "total_rows_skipped": raw.total_rows,
             **({"sheet": raw.sheet} if raw.sheet is not None else {}),
             **result.counts[name]}
            for name, raw in drop.tables.items()]
        if result.checked_on is not None:   # what `tidu verify` checks the drop against again
            self.data["checked_on"] = result.checked_on.isoformat()
        self.data["ignored_files"] = drop.ignored_files
        self.data["missing_tables"] = drop.missing_tables
        from pipelines.ingest import drop_notes

        self.data["drop_notes"] = drop_notes(drop)   # the console and the report's appendix say them
        self.data["match_rates"] = result.match_rates
        honors = result.accepted.get("honors")
        if honors is not None:
            from data_contracts.honors import honor_name_readings

            self.data["honor_names"] = honor_name_readings(honors.get_column("honor"))
        self.data["quarantine"] = {"rows": int(result.quarantine.select("table", "row").n_unique())
                                   if result.quarantine.height else 0,
                                   "error_rows": int(result.error_rows),
                                   "findings": result.quarantine.height, "flags": result.flags.height,
                                   "flag_rows": int(result.flags.select("table", "row").n_unique())
                                   if result.flags.height else 0}

    def record_settings(self, policy: Path | None, model: Path | None, pdf: bool,
                        rules: Path | None = None) -> None:
        """The run's options beyond quarter, city and seed, as `tidu verify` needs them to run it
        again: the policy file and the city's rulebook config (each its name and sha256; none: the
        built-in one), the saved model's folder (none: trained by the run itself) and whether the
        PDF was made."""
        def named_file(path: Path | None) -> dict | None:
            # (a file that cannot be read is reported when it is loaded)
            return None if path is None else {
                "file": path.name, "sha256": file_sha256(path) if path.is_file() else None}

        self.data["settings"] = {
            "policy": named_file(policy),
            "rules": named_file(rules),
            "saved_model": None if model is None else {
                "folder": model.name, "sha256": folder_sha256(model) if model.is_dir() else None},
            "pdf": pdf,
        }

    def file_of(self, table: str) -> str | None:
        return next((i["file"] for i in self.data.get("inputs", []) if i["table"] == table), None)

    def record_model(self, model, baseline: dict) -> None:
        self.data["model"] = {"id": model.model_id, "kind": ("LightGBM: mean log-odds of a model pooled over tiers (tier one-hot) and the tier's own "
                                       "model where it has enough positives (window.tiers_with_own_model); Platt calibration out of time"),
                              "features": model.features, "params": model.params, "window": model.window_,
                              "metrics": model.metrics_, "baseline_metrics": baseline,
                              "data_hash": model.data_hash_}

    def finish(self, out: Path, seconds: dict[str, float], status: str = "ok",
               problems: list[str] | None = None) -> Path:
        self.data["status"] = status
        if problems:
            self.data["problems"] = problems
        self.data["seconds"] = dict(seconds)
        self.data["finished_at"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        names = [*OUTPUT_FILES, *sorted(str(p.relative_to(out)) for pattern in OUTPUT_GLOBS
                                        for p in out.glob(pattern) if p.is_file())]
        self.data["outputs"] = {name: self._sha256(out / name) for name in names if (out / name).exists()}
        path = out / "manifest.json"
        path.write_text(json.dumps(self.data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        return path

    def _sha256(self, path: Path) -> str:
        """The file's sha256, read again only when its size or modification time has changed
        since this manifest last hashed it."""
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = file_sha256(path)
        return self._digests[key]
