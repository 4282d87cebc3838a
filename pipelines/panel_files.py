"""The run's feature panel on disk: built a few quarters at a time, each part written to a parquet
file in the run's scratch folder and let go, then read back by each stage for what it needs — the
rules the two quarters they judge, the model's keys a few columns of every quarter, training the
rows its plan chose, scoring the scored quarter.

At a province's size the panel is 4 GB in memory (1M firms × 9 quarters × 84 columns). Held
whole, it sat beside the input tables while it was built and beside the rule verdicts and the
model's keys after (the run's top, 10.5 GB at 1M firms); on disk, no stage holds more of it than
it reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from data_contracts.periods import Quarter
from features.panel import build_panel

QUARTERS_AT_ONCE = 3   # panel quarters built (and held) at a time


@dataclass(frozen=True)
class PanelFiles:
    """The panel's parts: each file holds the panel's rows of some quarters, in the panel's order
    (uscc, then quarter)."""

    files: tuple[Path, ...]

    @classmethod
    def build(cls, tables: dict[str, pl.DataFrame], quarters: Sequence[Quarter], folder: Path,
              at_once: int = QUARTERS_AT_ONCE) -> PanelFiles:
        """build_panel over `quarters`, `at_once` quarters at a time, each part written to `folder`.
        The part of a quarter is the same rows as the whole panel's, since a quarter's features
        read the tables up to its own end and no other quarter of the panel. The last part
        takes the tables out of `tables` as it reads them (build_panel's release)."""
        ordered = sorted(set(quarters))
        groups = [ordered[i:i + at_once] for i in range(0, len(ordered), at_once)]
        files = []
        for i, group in enumerate(groups):
            path = folder / f"panel-{i}.parquet"
            build_panel(tables, group, release=i == len(groups) - 1).write_parquet(path, compression="lz4")
            files.append(path)
        return cls(tuple(files))

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(list(self.files))

    def read(self, where: pl.Expr | None = None, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The rows where `where` holds (all when None) with `columns` (all when None), file by
        file: rows of one quarter come in the panel's order; use sorted() for several."""
        frame = self.scan()
        if where is not None:
            frame = frame.filter(where)
        if columns is not None:
            frame = frame.select(columns)
        return frame.collect()

    def sorted(self, columns: Sequence[str]) -> pl.DataFrame:
        """`columns` (uscc and quarter among them) of every row, in the panel's order."""
        return self.read(columns=columns).sort("uscc", "quarter", maintain_order=True)

    def at(self, pairs: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
        """`columns` of the rows at `pairs` (uscc, quarter), file by file (a semi-join streamed
        through each file, so only the matched rows are held). A column the panel lacks is left
        out (the model names it when it is given the rows)."""
        have = set(self.scan().collect_schema().names())
        wanted = [c for c in columns if c in have]
        return (self.scan().select(wanted)
                .join(pairs.lazy(), on=["uscc", "quarter"], how="semi", maintain_order="left")
                .collect(engine="streaming"))
