"""Run the suites with Great Expectations, offline, and return the failing spreadsheet rows.

An ephemeral GX context per run: nothing is written except the Data Docs, which go into the
run's output folder. GX 1.24 has no analytics client; we still set the documented switch off.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import polars as pl

from data_contracts.suites import SUITES, Check

os.environ["GX_ANALYTICS_ENABLED"] = "False"  # forced: an inherited "True" must not survive
# The failing rows by `_row`; not the pandas query for them (nobody reads it, and building it
# copies the whole frame once more per expectation).
_RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": ["_row"],
                  "include_unexpected_rows": False, "partial_unexpected_count": 0,
                  "return_unexpected_index_query": False}


class ContractRun:
    """One ephemeral GX context for a whole drop: suites run table by table, Data Docs built once."""

    def __init__(self, docs_dir: Path | None = None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        self._gx = gx
        self.docs_dir = docs_dir
        self.ctx = gx.get_context(mode="ephemeral")
        self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        if docs_dir is not None:
            self.ctx.add_data_docs_site(site_name="tidu", site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(Path(docs_dir).resolve())},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
        self.source = self.ctx.data_sources.add_pandas("drop")

    def run(self, frames: dict[str, pl.DataFrame]) -> dict[str, list[tuple[Check, list[int], bool]]]:
        """For each table: (check, failing `_row` numbers, ran) per expectation of its suite."""
        gx = self._gx
        outcome: dict[str, list[tuple[Check, list[int], bool]]] = {}
        for name, frame in frames.items():
            checks = [c for c in SUITES[name] if _columns_present(c, frame)]
            batch = self.source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
            suite = self.ctx.suites.add(gx.ExpectationSuite(
                name=f"{name}_contract", expectations=[c.expectation() for c in checks]))
            vd = self.ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
            data = _to_pandas(frame, checks)
            result = vd.run(batch_parameters={"dataframe": data}, result_format=_RESULT_FORMAT)
            # matched by the check's id in each result's meta, not by position: GX returns the
            # results grouped by the column they read, not in the suite's order
            by_check = {r.expectation_config.meta["check"]: r for r in result.results}
            outcome[name] = [(c, _failing_rows(by_check[c.id]), True) for c in checks]
            self._release_batches()
        return outcome

    def _release_batches(self) -> None:
        """Let a judged table's pandas frame go: GX keeps every batch in its execution engine's
        caches, and its global project manager keeps the context (and so every table's frame)
        alive until the process ends."""
        manager = self.source.get_execution_engine().batch_manager
        manager.reset_batch_cache()
        manager.batch_data_cache.clear()

    def build_docs(self) -> None:
        if self.docs_dir is not None:
            self.ctx.build_data_docs(site_names=["tidu"])


def run_suites(frames: dict[str, pl.DataFrame], docs_dir: Path | None = None
               ) -> dict[str, list[tuple[Check, list[int], bool]]]:
    """Run the suites of these tables in one context (and build their Data Docs)."""
    session = ContractRun(docs_dir)
    outcome = session.run(frames)
    session.build_docs()
    return outcome


def _columns_present(check: Check, frame: pl.DataFrame) -> bool:
    return all(c in frame.columns for c in check.columns)


def _to_pandas(frame: pl.DataFrame, checks: list[Check]):
    """The columns the expectations read, and `_row` (by which GX reports failing rows).

    Columns checked against a list of values go over as categoricals: the same values, but GX
    copies the frame for most expectations and hashes it (as the batch's fingerprint), and a
    categorical column is a small array of codes. Columns whose expectations only ask whether a
    cell is empty (a credit code that must be present, a derived problem text that must be
    absent) go over as that alone: a one-category column, empty where the cell is. GX reports
    no values for them (the failing rows' texts are taken from the polars frame), and at 8M
    filings the text would be ~0.7 GB of the frame. Numbers are not gathered into one 2-D block
    (pandas' default): each column stays the array polars made, uncopied.
    """
    needed = set().union(*(c.columns for c in checks)) | {"_row"}
    kinds: dict[str, set[str]] = {}
    for check in checks:
        for c in check.columns:
            kinds.setdefault(c, set()).add(check.kind)
    columns = []
    for c, t in frame.schema.items():
        if c not in needed:
            continue
        read = kinds.get(c, set())
        if read and read <= {"null", "not_null"}:
            columns.append(pl.when(pl.col(c).is_not_null()).then(pl.lit(_PRESENT)).cast(pl.Categorical).alias(c))
        elif "in_set" in read and t == pl.Utf8:
            columns.append(pl.col(c).cast(pl.Categorical))
        else:
            columns.append(pl.col(c))
    return frame.select(columns).to_pandas(split_blocks=True)


_PRESENT = "有值"  # what stands for a cell's value where only its presence is checked


def _failing_rows(result) -> list[int]:
    if result.exception_info.get("raised_exception"):
        raise RuntimeError(f"GX expectation failed to run: {result.exception_info}")
    rows = result.result.get("unexpected_index_list") or []
    return sorted(int(r["_row"]) for r in rows)
