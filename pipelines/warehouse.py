"""The warehouse: one DuckDB file holding every accepted row with the drop it came from.

Each table has a `<table>_history` (all drops) and a `<table>` view with the latest value per key
over every drop, for analysts: a revised period replaces the earlier value while both stay in the
history. A run scores its own drop's rows (`read_tables(con, drop=...)`). A drop loads in one
transaction and is identified by the hashes of its files, so loading the same drop twice changes
nothing — unless its checks now accept other rows (a newer tidu's contracts, or a date that was in
the future at the first load): then its rows are replaced by what the checks accept now.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import polars as pl

KEYS = {
    "enterprises": ["uscc"], "filings": ["uscc", "period"], "patents": ["application_no"],
    "patent_owners": ["application_no", "uscc"], "projects": ["project_name", "year"],
    "financing": ["uscc", "financed_on", "round"], "honors": ["uscc", "honor", "recognized_on"],
}


def drop_id(file_hashes: dict[str, str]) -> str:
    """Content address of a drop: the same files give the same id, whatever the folder."""
    text = json.dumps(sorted(file_hashes.items()), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    if not read_only:
        con.execute("CREATE TABLE IF NOT EXISTS drops (drop_id VARCHAR PRIMARY KEY, drop_seq INTEGER, "
                    "folder VARCHAR, files JSON, counts JSON)")
        con.execute("CREATE TABLE IF NOT EXISTS quarantine_history (drop_id VARCHAR, \"table\" VARCHAR, "
                    "file VARCHAR, \"row\" BIGINT, \"column\" VARCHAR, value VARCHAR, \"check\" VARCHAR, "
                    "severity VARCHAR, message VARCHAR)")
    return con


def load_drop(con: duckdb.DuckDBPyConnection, did: str, folder: str, files: dict[str, str],
              counts: dict, tables: dict[str, pl.DataFrame], quarantine: pl.DataFrame) -> bool:
    """Load one validated drop in a single transaction; False when it was loaded before with the
    same rows accepted and quarantined per table (`counts`). A drop loaded before whose counts
    differ now has its rows replaced, keeping its place in the order of drops: the rows a run
    reads back are then the ones its own checks accepted. Each table is taken out of `tables` as
    it is loaded, so that it can go once it is in the warehouse (at a province's size the checked
    tables are 1.4 GB, read back beside them)."""
    before = con.execute("SELECT drop_seq, counts FROM drops WHERE drop_id = ?", [did]).fetchall()
    if before and json.loads(before[0][1]) == json.loads(json.dumps(counts, ensure_ascii=False)):
        return False
    con.execute("BEGIN TRANSACTION")
    try:
        if before:
            seq = before[0][0]
            histories = [r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%\\_history' ESCAPE '\\'"
            ).fetchall()]
            for history in histories:
                con.execute(f"DELETE FROM {history} WHERE drop_id = ?", [did])
            con.execute("DELETE FROM drops WHERE drop_id = ?", [did])
        else:
            seq = con.execute("SELECT coalesce(max(drop_seq), 0) + 1 FROM drops").fetchall()[0][0]
        for name in list(tables):
            _append(con, name, tables.pop(name), did, seq)
        if quarantine.height:
            con.register("_q", quarantine.to_arrow())
            con.execute("INSERT INTO quarantine_history SELECT ? AS drop_id, * FROM _q", [did])
            con.unregister("_q")
        con.execute("INSERT INTO drops VALUES (?, ?, ?, ?, ?)",
                    [did, seq, folder, json.dumps(files, ensure_ascii=False),
                     json.dumps(counts, ensure_ascii=False)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True


def _append(con, name: str, frame: pl.DataFrame, did: str, seq: int) -> None:
    if "_row" in frame.columns:
        frame = frame.rename({"_row": "source_row"})
    else:  # derived tables (patent owners) have no spreadsheet row of their own
        frame = frame.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("source_row"))
    con.register("_f", frame.to_arrow())
    history = f"{name}_history"
    con.execute(f"CREATE TABLE IF NOT EXISTS {history} AS "
                f"SELECT *, ''::VARCHAR AS drop_id, 0::INTEGER AS drop_seq FROM _f LIMIT 0")
    # A column that a later tidu adds (e.g. registered_capital_currency) is added to an older
    # warehouse, empty for the drops loaded before it.
    have = {r[0] for r in con.execute(f"DESCRIBE {history}").fetchall()}
    for column, dtype, *_ in con.execute("DESCRIBE SELECT * FROM _f").fetchall():
        if column not in have:
            con.execute(f'ALTER TABLE {history} ADD COLUMN "{column}" {dtype}')
    con.execute(f"INSERT INTO {history} BY NAME SELECT *, ?::VARCHAR AS drop_id, ?::INTEGER AS drop_seq FROM _f",
                [did, seq])
    con.unregister("_f")
    key = ", ".join(KEYS[name])
    # sorted by key: an analyst's `SELECT * FROM filings` gives the same rows in the same order each
    # time (the window alone returned them in whatever order its threads finished)
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * EXCLUDE (drop_seq) FROM {history} "
                f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY drop_seq DESC, source_row) = 1 "
                f"ORDER BY {key}")


def read_tables(con: duckdb.DuckDBPyConnection, drop: str | None = None) -> dict[str, pl.DataFrame]:
    """The latest value per key of every table, as Polars frames (architecture.md's typed tables).

    With `drop` (a drop_id), that drop's rows only, sorted by key: what a run scores. Drops are
    cumulative (input-format.md), so a run's inputs are its own drop whatever else the file holds
    — an earlier drop of the folder, even another city's, adds no row and changes no value, and
    the manifest's input files are the whole of what the lists were made from. A table the drop
    lacks reads empty."""
    present = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    if drop is None:
        return {name: con.sql(latest_query(con, name)).pl() for name in KEYS if name in present}
    return {name: con.sql(f"SELECT * EXCLUDE (drop_seq) FROM {name}_history WHERE drop_id = ? "
                          f"ORDER BY {', '.join(KEYS[name])}", params=[drop]).pl()
            for name in KEYS if name in present}


def latest_query(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """The query of a table's latest value per key, sorted by the key. A history holding one
    drop is its own latest value — the contracts let one row per key into a drop (repeated rows
    and key conflicts are quarantined, patent owners are made unique) — so it is sorted as
    stored, without the view's window (at a province's size reading took 8-11 s through the
    view, 7 s so). The panel reads the returns firm by firm: in a file's order (by period) its
    gathers run ~2 s slower per part, more than the sort costs."""
    key = ", ".join(KEYS[name])
    drops = con.execute(f"SELECT count(DISTINCT drop_seq) FROM {name}_history").fetchall()[0][0]
    if drops <= 1:
        return f"SELECT * EXCLUDE (drop_seq) FROM {name}_history ORDER BY {key}"
    return f"SELECT * FROM {name} ORDER BY {key}"
