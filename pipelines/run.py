"""The quarterly run, wired: drop → contracts → warehouse → panel → rules + model + SHAP → allocation → files.

Each stage is a function of frames (in its own room); this module says once where inputs come
from and where outputs go, times every stage, and writes the manifest.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from data_contracts.periods import Quarter, quarter_range
from data_contracts.schema import TABLES
from data_contracts.validate import ORDER, TableInput, ValidationResult, judge, type_table
from pipelines import warehouse
from pipelines.ingest import Drop, DropError, locate_tables, read_table
from pipelines.manifest import OUTPUT_FILES, OUTPUT_GLOBS, Manifest, peak_rss_mb
from pipelines.panel_files import PanelFiles
from reports.tables import (
    candidates_csv_view,
    write_allocation_xlsx,
    write_candidates_xlsx,
    write_csv,
)
from scoring.errors import (
    CannotScore,
    HistoryTooShort,
    QuarterAfterDrop,
    RulesConfigError,
    SavedModelUnusable,
)
from scoring.tiers import TIERS

if TYPE_CHECKING:
    from scoring.model import PromotionModel, TrainingPlan

MAX_QUARANTINE_SHARE = 0.5     # above this share of a table quarantined, nothing is scored
N_TOP_EXPLAINED = 3            # firms per tier with a page and a waterfall chart in the report
SHAP_SAMPLE = 2_000
SLICE = 250_000                # scored rows given their features (and SHAP values) at a time
RULE_SLICE = 250_000           # panel rows through the rulebooks at a time
TEXTS = ("gaps", "needs_review")  # the rule texts the run hands on (the scored quarter's)


class ContractFailure(Exception):
    """The data failed an error-severity contract badly enough that nothing is scored (exit 1)."""


@dataclass
class RunOptions:
    drop: Path
    quarter: Quarter
    out: Path
    policy: Path | None = None
    model: Path | None = None
    as_of: dt.date | None = None   # the day the drop's dates are checked against (None: today)
    city: str = "宜兴市"
    seed: int = 7
    render_pdf: bool = True
    rules: Path | None = None   # a city's rulebook config (scoring/rulebooks/config.yaml's form); None: built in


@dataclass
class Timer:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def import_ahead(module: str) -> None:
    """Import `module` on a thread of its own while the drop is read and typed. Great
    Expectations takes 4–7 s to import here (with and without compiled bytecode); reading and
    typing a province's drop is Polars' work, which releases the GIL, so on the main thread the
    import was time the run waited for and now it overlaps the reading. The stage imports it as
    before, and an import still under way makes it wait (Python's per-module import locks). A
    failure here is left to the stage's own import, which raises it where it is handled."""
    def work() -> None:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001, S110 - raised again, and handled, by the stage's import
            pass

    threading.Thread(target=work, name="tidu-import-ahead").start()


def check_drop(drop_folder: Path, out: Path, as_of: dt.date | None, timer: Timer
               ) -> tuple[Drop, ValidationResult]:
    """Read and judge a drop; write quarantine.csv, flags.csv and the Data Docs. Great
    Expectations is imported while the tables are read (import_ahead)."""
    # data_contracts.validate, imported above, has switched GX's analytics off before GX loads
    import_ahead("great_expectations")
    with timer.stage("read"):
        files, ignored = locate_tables(drop_folder)
        if "enterprises" not in files:
            raise DropError(f"{drop_folder}: 没有找到「企业登记」表 (enterprises / 企业登记 .csv/.xlsx/.parquet); "
                            "没有企业登记就无法核对其他表")
    # One table at a time: read, typed, its text let go before the next is read (at a million
    # firms the drop's text is gigabytes; only one table's is held at once).
    tables, inputs, typed = {}, {}, {}
    for name in (n for n in ORDER if n in files):
        with timer.stage("read"):
            raw = tables[name] = read_table(TABLES[name], files[name])
        with timer.stage("contracts"):
            inputs[name] = TableInput(raw.table, raw.take_frame(), raw.path.name, raw.unit_factors,
                                      raw.headers)
            typed[name] = type_table(inputs[name])
    drop = Drop(Path(drop_folder), {n: tables[n] for n in files},  # in file-name order, as read_drop
                ignored, [n for n in TABLES if n not in tables])
    with timer.stage("contracts"):
        result = judge(inputs, typed, as_of=as_of, docs_dir=out / "data_docs")
    write_csv(result.quarantine, out / "quarantine.csv")
    write_csv(result.flags, out / "flags.csv")
    return drop, result


def blocking_problems(result: ValidationResult) -> list[str]:
    """Table-level failures that stop scoring (row-level errors only quarantine rows)."""
    from data_contracts.schema import TABLES

    # an exact copy of a row kept is no loss of data: a file pasted in three times is whole, its
    # copies set aside (an outside audit had such a drop refused while validate passed it)
    lost_rows = dict(result.quarantine.group_by("table", "row")
                     .agg((pl.col("check") != "duplicate_row").any().alias("lost"))
                     .filter("lost").group_by("table").len().iter_rows())
    problems = []
    for name, c in result.counts.items():
        missing = lost_rows.get(name, 0)
        if c["rows_read"] and missing / c["rows_read"] > MAX_QUARANTINE_SHARE:
            problems.append(f"「{TABLES[name].stem_zh}」表 {c['rows_read']} 行中有 {missing} 行被隔离 (不计完全相同的重复行), "
                            f"超过 {MAX_QUARANTINE_SHARE:.0%}, 数据整体不可用")
    if result.counts.get("enterprises", {}).get("rows_accepted", 0) == 0:
        problems.append("企业登记表没有任何可接受的行")
    return problems


def run_quarter(opts: RunOptions) -> Manifest:
    _lean_malloc()
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    # An earlier run's lists in a reused folder go first: the manifest lists (and hashes) the
    # outputs in the folder, so a report.pdf left from a run with the PDF sat beside a --no-pdf
    # run's lists as if it were its own (and a run that stops early left the old lists standing).
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)
    scoring_with = opts.model.resolve() if opts.model is not None else None
    for pattern in OUTPUT_GLOBS:   # and the hashed model, tables and charts (an old chart of a tier)
        for path in out.glob(pattern):
            if path.is_file() and path.parent.resolve() != scoring_with:   # never the model to score with
                path.unlink()
    timer = Timer()
    manifest = Manifest.start(opts.quarter, opts.city, opts.seed)
    manifest.record_settings(opts.policy, opts.model, opts.render_pdf, opts.rules)
    try:
        return _score_quarter(opts, manifest, timer)
    except CannotScore as e:   # the manifest says why nothing was scored
        manifest.finish(out, timer.seconds, status="cannot_score", problems=[str(e)])
        raise


def _score_quarter(opts: RunOptions, manifest: Manifest, timer: Timer) -> Manifest:
    """run_quarter once its manifest is started."""
    out = opts.out
    if opts.model is not None:   # before the drop is read: at a province's size that is minutes
        check_saved_model(opts.model)
    books = city_rulebooks(opts.rules)   # likewise: a config naming no such rulebook stops here
    drop, result = check_drop(opts.drop, out, opts.as_of, timer)
    manifest.record_inputs(drop, result)
    problems = blocking_problems(result)
    if problems:
        manifest.finish(out, timer.seconds, status="contract_failed", problems=problems)
        raise ContractFailure("；".join(problems))

    with timer.stage("warehouse"):
        tables = load_warehouse(out / "warehouse.duckdb", drop, result)
    check_quarter_in_drop(tables, opts.quarter, training=opts.model is None)
    honors = tables["honors"]  # what the rest of the run reads besides the panel (the labels)
    # The panel lives on disk (a province's is 4 GB in memory): each stage reads what it needs
    # of it (PanelFiles); once the model is fitted, the rest of the run reads the scored quarter.
    with TemporaryDirectory(dir=out, prefix=".panel-") as scratch:
        with timer.stage("features"):
            # the tables are let go as the panel's last part is made from them
            files = PanelFiles.build(tables, panel_quarters(tables, opts.quarter, history=opts.model is None),
                                     Path(scratch))
        del tables
        _return_freed_memory()
        with timer.stage("rules"):
            rules, rulebooks = apply_rules(files.read(_rules_quarters(opts.quarter)), opts.quarter, books)
        manifest.data["rulebooks"] = rulebooks
        scored_quarter = pl.col("quarter") == str(opts.quarter)
        with timer.stage("train"):
            # Training reads the panel only at the rows its plan chose. The scored quarter's panel
            # rows and rule verdicts (~0.9 GB at 1M firms), which the rest of the run reads, wait
            # on disk while the model is fitted (held, they sat under the run's top in fitting).
            training = plan_training(files, rules, honors, opts)
            verdicts = Path(scratch) / "rules-scored.parquet"
            rules.filter(scored_quarter).write_parquet(verdicts, compression="lz4")
            del rules, honors
            _return_freed_memory()
            model = train_or_load(training, opts)
            del training
            panel, rules = files.read(scored_quarter), pl.read_parquet(verdicts)
            # no labels: the scored quarter's outcome window has not begun
            rows, baseline = model_rows(panel, rules), _rule_baseline(model)
    manifest.record_model(model, baseline)
    # The validation quarter's rows (6.6M at a province's size, ~0.5 GB) are read once more, for
    # the backtest table, and let go before the scored rows are explained.
    backtest_table(model).write_parquet(out / "tables" / "backtest.parquet")
    model.validation_ = None
    _return_freed_memory()
    with timer.stage("explain"):   # scores and explanations in one pass
        candidates = score_and_explain(model, rows, panel, rules, out, unknown_when_missing(drop))
    # The scored rows and their rule verdicts (with the texts: gigabytes at a province's size)
    # live on in the candidates; nothing after this reads them.
    del rows, rules
    _return_freed_memory()
    with timer.stage("allocate"):
        allocation = allocate_budget(candidates, panel, opts)
    with timer.stage("report"):
        write_outputs(out, candidates, allocation, panel, result, opts, manifest)
    manifest.data["peak_rss_mb"] = peak_rss_mb()
    manifest.finish(out, timer.seconds)
    if opts.render_pdf:
        with timer.stage("pdf"):
            from reports.pdf import render_report

            render_report(out)
        manifest.finish(out, timer.seconds)
    return manifest


MMAP_THRESHOLD = 1 << 20   # glibc: blocks from 1 MiB up get pages of their own, returned on free
ARENA_MAX = 2              # glibc: heaps shared by the threads (its default on 2 cores: 16)


def _lean_malloc() -> None:
    """Make glibc's malloc (NumPy's arrays, LightGBM, Python; Polars and DuckDB bring jemalloc)
    hand freed memory back. By default a freed block of up to 32 MiB raises the threshold under
    which blocks come from the heap, and each thread may get a heap of its own: at 1M firms the
    heaps kept ~0.5 GB of freed pages from training to the end of the run (1M run, 2026-11-23).
    A fixed threshold and two heaps: blocks of 1 MiB and more are unmapped when freed. mallopt
    changes allocations from the call on, for the whole process."""
    m_arena_max, m_mmap_threshold = -8, -3   # <malloc.h>
    _glibc_malloc("mallopt", m_mmap_threshold, MMAP_THRESHOLD)
    _glibc_malloc("mallopt", m_arena_max, ARENA_MAX)


def _return_freed_memory() -> None:
    """Hand the C heap's freed pages back to the system (glibc's malloc_trim): the tables read
    from DuckDB are freed by now but their pages would otherwise stay resident beside the model's
    frames."""
    _glibc_malloc("malloc_trim", 0)


def _glibc_malloc(function: str, *args: int) -> None:
    """Call one of glibc's malloc functions; a no-op where there is no glibc."""
    import ctypes

    try:  # by its soname: ctypes.util.find_library would run /sbin/ldconfig, a child process
        getattr(ctypes.CDLL("libc.so.6"), function)(*args)
    except (OSError, AttributeError):
        pass


def load_warehouse(path: Path, drop: Drop, result: ValidationResult) -> dict[str, pl.DataFrame]:
    """The checked tables loaded into the warehouse, and this drop's tables read back from it (not
    an earlier drop's rows the folder's warehouse may hold: `warehouse.read_tables`): from here
    these are the run's inputs. The checked copies are taken out of `result` and let go a table
    at a time as they are loaded (at a million firms each copy of the typed tables is gigabytes)."""
    files = {r.path.name: r.sha256 for r in drop.tables.values()}
    did = warehouse.drop_id(files)
    tables = dict(result.accepted)
    if "patents" in tables:   # without a 专利 table there are no owners (an empty frame is made below)
        tables["patent_owners"] = result.patent_owners
    result.accepted, result.patent_owners = {}, result.patent_owners.clear()
    con = warehouse.connect(path)
    try:
        warehouse.load_drop(con, did, str(drop.folder), files, result.counts, tables, result.quarantine)
        loaded = warehouse.read_tables(con, drop=did)
    finally:
        con.close()
    for name in ("filings", "patents", "patent_owners", "projects", "financing", "honors"):
        loaded.setdefault(name, _empty(name))
    return loaded


def check_saved_model(folder: Path) -> None:
    """Refuse a `--model` folder this tidu cannot score with: not a `model/` folder of a run
    (model.json and the booster files it lists), or a model reading features this version's
    panel does not make (a model of another version)."""
    from features.catalog import model_features

    where = f"模型文件夹 {folder}"
    if not (folder / "model.json").is_file():
        raise SavedModelUnusable(f"{where} 中没有 model.json。--model 应指向某次 tidu run 输出文件夹中的 model 文件夹")
    try:
        meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        files = [spec["file"] for spec in meta["boosters"].values()]
        features, _ = meta["features"], meta["calibrator"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SavedModelUnusable(f"{where} 中的 model.json 不完整或已损坏 ({type(e).__name__}: {e})") from None
    absent = [f for f in files if not (folder / f).is_file()]
    if absent:
        raise SavedModelUnusable(f"{where} 缺少模型文件: {', '.join(absent)}")
    known = set(model_features())
    unknown = [f for f in features if f not in known]
    if unknown:
        raise SavedModelUnusable(
            f"{where} 的模型用到本版本 tidu 不生成的特征 ({len(unknown)} 个, 如 {', '.join(unknown[:3])}), "
            "可能由其他版本训练。请不带 --model 运行, 用本版本重新训练")


def check_quarter_in_drop(tables: dict[str, pl.DataFrame], quarter: Quarter, training: bool) -> None:
    """Refuse a quarter later than the drop's latest return (报告期). Its features would read no
    return of its own, and the model would count the recognitions after the drop's end, which
    the drop cannot show, as none: the outcome windows of the quarters before it would look
    complete and empty. A drop without returns can be scored with a saved model only: the
    model's history is counted in the returns' periods."""
    periods = tables["filings"].get_column("period") if tables["filings"].height else None
    if periods is None:
        if training:
            raise HistoryTooShort("数据包中没有可用的财务快报 (缺少该表, 或全部行被隔离), 无法训练预测模型: "
                                  "模型的历史按财务快报的报告期计算。可用 --model 指定已保存的模型评分")
        return
    last = Quarter.parse(periods.max())
    if quarter > last:
        raise QuarterAfterDrop(
            f"评分季度 {quarter} 晚于数据包中最近的财务快报报告期 {last}。{quarter} 的财务数据不在数据包中, "
            f"{last} 之后的认定结果也不在其中 (模型会把它们当作未获认定)。请用 --quarter {last}, "
            f"或换用包含 {quarter} 报告期的数据包")


def _empty(name: str) -> pl.DataFrame:
    from data_contracts.coerce import column_dtype
    from data_contracts.schema import TABLES

    if name == "patent_owners":
        return pl.DataFrame(schema={"application_no": pl.Utf8, "uscc": pl.Utf8})
    return pl.DataFrame(schema={c.name: column_dtype(c.kind) for c in TABLES[name].columns})


def build_features(tables: dict[str, pl.DataFrame], quarter: Quarter, history: bool = True,
                   release: bool = False) -> pl.DataFrame:
    """The panel of panel_quarters, in memory (the run builds the same rows to disk, PanelFiles).
    With `release` the tables are taken out of `tables` as the panel reads them (build_panel)."""
    from features.panel import build_panel

    return build_panel(tables, panel_quarters(tables, quarter, history), release=release)


def panel_quarters(tables: dict[str, pl.DataFrame], quarter: Quarter, history: bool = True) -> list[Quarter]:
    """The quarters the run reads: those whose outcome window has closed by the
    scored quarter (training, tuning, validation) and the scored quarter itself. The HORIZON − 1
    quarters just before it have no label and feed nothing, so they are not built (at a
    province's size that is a quarter of the panel's memory). A history too short to train on
    is built whole, so that the model's refusal counts the drop's quarters.

    Without `history` (scoring with a saved model: nothing is trained or validated) only the
    scored quarter is built — the same rows, as every quarter's features read the drop's tables
    up to that quarter's end and no other quarter of the panel (at 1M firms 1 of 9 quarters; the
    whole panel was the scoring run's peak, 9.7 GB)."""
    from scoring.model import HORIZON, MIN_QUARTERS

    if not history:
        return [quarter]
    periods = tables["filings"].get_column("period") if tables["filings"].height else None
    first = Quarter.parse(periods.min()) if periods is not None else quarter
    first = min(first, quarter)
    span = quarter_range(first, quarter)
    if len(span) <= MIN_QUARTERS:
        return span
    return [*(q for q in span if q + HORIZON <= quarter), quarter]


def _rules_quarters(quarter: Quarter) -> pl.Expr:
    """The panel rows apply_rules judges: the scored quarter and the model's validation quarter."""
    from scoring.model import HORIZON

    return pl.col("quarter") >= str(quarter - HORIZON)


def city_rulebooks(config: Path | None = None) -> list:
    """The rulebooks the run judges with: those the city's config names (`--rules`; the built-in
    Wuxi config when None), checked (scoring.rulebook.select). A config that does not validate
    raises RulesConfigError, which the command line reports as bad input (exit 2)."""
    import yaml

    from scoring.rulebook import RulebookError
    from scoring.rules import load_rulebooks

    if config is not None and not config.is_file():
        raise RulesConfigError(f"规则配置文件不存在: {config}")
    try:
        return load_rulebooks(config=config)
    except (RulebookError, yaml.YAMLError, OSError, UnicodeDecodeError) as e:
        said = str(e).removeprefix(f"{config.name}: ") if config is not None else str(e)
        raise RulesConfigError(f"规则配置文件 {config}: {said}") from None


def apply_rules(panel: pl.DataFrame, quarter: Quarter, books: list | None = None
                ) -> tuple[pl.DataFrame, list[dict]]:
    """Rules for the scored quarter and the model's validation quarter (the rule-points baseline and
    the backtest compare against it); earlier quarters, the tuning quarter among them, feed nothing.

    Kept: the verdict (eligible, eligible_if_unknowns_hold, points) of every row and the texts
    (gaps, needs_review) of the scored quarter, the only ones the run reads, as categoricals (they
    repeat: at 10k firms 31k distinct gaps and 109 distinct needs_review texts over 80k rows).
    The candidates keep them categorical to the files (as text they were ~3 GB at 1M firms,
    needs_review alone 2.25 GB); the CSV and xlsx writers write their text. The
    `criteria` JSON is not built (nothing reads it, and at ~1 kB a row it was 3 GB at 100k
    firms). The texts are written only for each slice's latest quarter (`texts="latest"`): the
    panel ends at the scored quarter, so that is the scored quarter wherever a slice holds it.
    The panel goes RULE_SLICE rows at a time, two slices at once, so that the texts of two
    slices at most are in memory as text (each row's verdict is its own: the result is the same
    rows as one call)."""
    from scoring.rules import evaluate, rulebook_in_force

    books = city_rulebooks() if books is None else books
    recent = _rules_quarters(quarter)   # filtered a slice at a time: no copy of them all
    scored = pl.col("quarter") == str(quarter)

    def judge(start: int) -> pl.DataFrame | None:
        rows = panel.slice(start, RULE_SLICE).filter(recent)
        if rows.height == 0 and start > 0:
            return None
        part = evaluate(rows, books, details=False, texts="latest", tiers=TIERS)
        return part.select("uscc", "quarter", "tier", "eligible", "eligible_if_unknowns_hold", "points",
                           *[pl.when(scored).then(pl.col(c)).cast(pl.Categorical).alias(c) for c in TEXTS])

    # Two slices at a time: a slice's texts are written in Python between Polars' parallel parts,
    # so one slice alone kept 1.36 of the 2 cores busy. map keeps the slices' order.
    with ThreadPoolExecutor(2) as pool:
        rules = pl.concat([part for part in pool.map(judge, range(0, max(panel.height, 1), RULE_SLICE))
                           if part is not None])
    in_force = []
    for tier, zh in TIERS.items():
        if not any(b.tier == tier and b.in_force(quarter.end) for b in books):
            # e.g. 准独角兽 before 2024: evaluate leaves the tier's verdicts to manual review
            in_force.append({"tier": tier, "tier_zh": zh, "id": None, "version": None,
                             "source": f"tidu 未收录 {quarter} 适用的{zh}规则, 该层级全部待人工核实",
                             "effective_from": None, "effective_to": None, "next": _next_rulebook(books, tier, quarter.end)})
            continue
        book = rulebook_in_force(books, tier, quarter.end)
        in_force.append({"tier": tier, "tier_zh": zh, "id": book.id, "version": book.version,
                         "source": _source_text(book), "name_zh": book.name_zh,
                         "effective_from": book.effective_from.isoformat(),
                         "effective_to": book.effective_to and book.effective_to.isoformat(),
                         "next": _next_rulebook(books, tier, quarter.end)})
    return rules, in_force


def _next_rulebook(books, tier: str, day) -> dict | None:
    """The tier's rulebook that next comes into force after `day` (the quarter's end), if the city's
    rulebooks hold one: a list made for 2026Q1 is judged by 63号, in force at the quarter's end,
    while applications after 2026-04-01 are judged by the 2026 rules (the methods page says so)."""
    from scoring.rules import rulebook_in_force

    starts = sorted({b.effective_from for b in books if b.tier == tier and b.effective_from > day})
    if not starts:
        return None
    book = rulebook_in_force(books, tier, starts[0])
    return {"id": book.id, "version": book.version, "name_zh": book.name_zh,
            "effective_from": book.effective_from.isoformat()}


def _source_text(book) -> str:
    """Document and URL of a rulebook's source, for the methods page."""
    src = book.source
    return " ".join(part for part in (src.document, src.url) if part)


def model_rows(panel: pl.DataFrame, rules: pl.DataFrame) -> pl.DataFrame:
    """(firm, quarter, tier) keys for tiers not yet held by operating firms, with the rule verdict.
    Keys only: the panel's features are joined to the rows that are used (`with_features`)."""
    from scoring.model import candidate_keys, rule_verdict

    # only the columns the keys are made of (a filter of the whole panel copies every column)
    keys = panel.select("uscc", "quarter", "status", pl.selectors.starts_with("holds_"))
    rows = candidate_keys(keys.filter(_operating())).drop("_qi")
    verdict = rule_verdict(rules)
    if rows.height == 0:
        return rows.join(verdict, on=["uscc", "quarter", "tier"], how="left")
    # a tier at a time (rows come tier by tier): one join of all keys holds its hash table and
    # row indices beside both frames; the parts stay chunks of the result, not copied again
    on = ["uscc", "quarter", "tier"]
    parts = [part.join(verdict.filter(pl.col("tier") == part.get_column("tier")[0]), on=on, how="left",
                       maintain_order="left")
             for part in rows.partition_by("tier", maintain_order=True)]
    del rows
    return pl.concat(parts, rechunk=False)


def _operating() -> pl.Expr:
    """Firms the model scores: operating (存续/在业) or of unknown status."""
    return pl.col("status").is_in(["存续", "在业"]) | pl.col("status").is_null()


def model_keys(panel: pl.DataFrame, rules: pl.DataFrame, honors: pl.DataFrame, quarter: Quarter):
    """The model's rows of every panel quarter as integer keys (scoring.model.ModelKeys), labelled:
    the same rows, in the same order (tier by tier, then the panel's), with the same labels as
    model_rows with make_labels — built a tier at a time from the panel's holdings, so that a
    province's ~60M rows never exist as text keys (those and their joins outgrew 20 GB at 1M firms).
    The rule verdict stays in `rules`; the model joins it to the rows it keeps (validation)."""
    from scoring.model import (
        HORIZON,
        TIER_KEYS,
        ModelKeys,
        _quarter_index,
        firm_numbers,
        recognitions,
        tier_code,
    )

    uscc = panel.get_column("uscc")
    firms = uscc.unique(maintain_order=True)
    sorted_panel = uscc.is_sorted() and firms.is_sorted()   # the panel's order (uscc, quarter)
    numbered = firm_numbers(firms if sorted_panel else firms.sort())
    firms = numbered.get_column("uscc")
    number = (uscc.rle_id().cast(pl.UInt32) if sorted_panel  # a firm's number is its run's
              else uscc.to_frame().join(numbered, on="uscc", how="left", maintain_order="left").get_column("_f"))
    holds = [f"holds_{t}" for t in TIER_KEYS if f"holds_{t}" in panel.columns]
    base = panel.select(number.alias("_f"), _quarter_index().cast(pl.Int32).alias("_qi"), _operating().alias("_on"),
                        *holds)
    recognised = (recognitions(honors).join(numbered, on="uscc", how="inner")
                  .select("_f", tier_code("tier"), pl.col("rq").cast(pl.Int32)))
    complete = pl.col("_qi") + HORIZON <= quarter.index
    parts = []
    for code, tier in enumerate(TIER_KEYS):
        held = f"holds_{tier}"
        candidate = pl.col("_on") & (~pl.col(held).fill_null(False) if held in holds else pl.lit(True))
        rows = base.filter(candidate).select("_f", "_qi")
        hits = (rows.join(recognised.filter(pl.col("_t") == code).select("_f", "rq"), on="_f", how="inner")
                .filter((pl.col("rq") > pl.col("_qi")) & (pl.col("rq") <= pl.col("_qi") + HORIZON))
                .select("_f", "_qi").unique().with_columns(pl.lit(1, pl.Int8).alias("hit")))
        parts.append(rows.join(hits, on=["_f", "_qi"], how="left", maintain_order="left").select(
            "_f", "_qi", pl.lit(code, pl.UInt8).alias("_t"),
            pl.when(complete).then(pl.col("hit").fill_null(0)).cast(pl.Int8).alias("label")))
    return ModelKeys(pl.concat(parts), firms, verdict=rules)


@dataclass
class Training:
    """A model to fit and its plan (which rows it reads), the panel's columns at those rows attached."""

    model: PromotionModel
    plan: TrainingPlan   # with the panel's rows at its pairs attached (plan.panel)


def plan_training(files: PanelFiles, rules: pl.DataFrame, honors: pl.DataFrame, opts: RunOptions
                  ) -> Training | None:
    """The model's training plan, made from integer keys (`model_keys`, from a few columns of every
    panel row), with the panel's model columns at the plan's (firm, quarter) pairs (None when a
    saved model is used, opts.model)."""
    from features.catalog import load_catalog, model_features
    from scoring.model import DEFAULT_PARAMS, PromotionModel

    if opts.model is not None:
        return None
    catalog = load_catalog()
    features = model_features()
    monotone = {n: f.monotone for n, f in catalog.items() if f.monotone}
    model = PromotionModel(features, monotone, {**DEFAULT_PARAMS, "seed": opts.seed})
    holds = [c for c in files.scan().collect_schema().names() if c.startswith("holds_")]
    # (the keys, 0.55 GB at 1M firms, go once the plan is made: not held while the cut is read)
    plan = model.plan(model_keys(files.sorted(["uscc", "quarter", "status", *holds]), rules, honors,
                                 opts.quarter), opts.quarter)
    plan.panel = files.at(plan.pairs(), ["uscc", "quarter", *features])
    return Training(model, plan)


def train_or_load(training: Training | None, opts: RunOptions) -> PromotionModel:
    """The model: fitted to its plan and saved, or loaded from opts.model."""
    from scoring.model import PromotionModel

    if training is None:
        from lightgbm.basic import LightGBMError

        try:
            return PromotionModel.load(opts.model)
        except LightGBMError as e:   # a booster file check_saved_model found but LightGBM cannot read
            raise SavedModelUnusable(f"模型文件夹 {opts.model} 中的模型文件已损坏, LightGBM 无法读取 ({e})") from None
    # fit_plan lets the plan's panel rows (~1.5 GB at a province's size) go once it has cut out
    # the validation quarter, before its 6.6M rows are predicted (at 1M firms that moment was
    # the run's top while the rows were held).
    model = training.model.fit_plan(training.plan)
    model.save(opts.out / "model")
    return model


def _rule_baseline(model) -> dict:
    """The rule points alone as a score, on the model's own out-of-time validation rows."""
    from scoring.backtest import rule_score
    from scoring.model import tier_metrics

    valid = getattr(model, "validation_", None)
    if valid is None or valid.height == 0:
        return {}
    return tier_metrics(valid.with_columns(rule_score().alias("s")), "s", probabilistic=False)


def unknown_when_missing(drop: Drop) -> frozenset[str]:
    """Features whose null the catalog reads as "never" (从未认定, 从未融资), from a table the drop
    lacks: there a null is not known, and their values read 未知."""
    from features.catalog import load_catalog

    groups = {"financing": "financing", "honors": "honors"}   # table → its features' catalog group
    absent = {groups[t] for t in drop.missing_tables if t in groups}
    return frozenset(n for n, f in load_catalog().items() if f.missing_text and f.group in absent)


def score_and_explain(model, rows: pl.DataFrame, panel: pl.DataFrame, rules: pl.DataFrame, out: Path,
                      unknown: frozenset[str] = frozenset()) -> pl.DataFrame:
    """The scored quarter's ranked candidates with their probabilities and reasons, global
    importance and the SHAP tables, in one pass over SLICE rows at a time. `rows`, `panel` and
    `rules` are the scored quarter's only (run_quarter cuts them once; a filter here would copy
    a province's 7M rows and their texts again).

    A row's exact SHAP values and base value add up to its log-odds (TreeSHAP is additive), so the
    probability is the calibrated sum: no second pass through the trees to predict (at a province's
    7M rows that pass took 65–90 s). Of each slice only the reasons text, the log-odds, the running
    Σ|SHAP| and the sampled rows' values are kept (one (n × F) matrix of 7M rows would be ~6 GB,
    twice with the design matrix); the top-ranked rows' values for their waterfalls are computed
    again once the ranking is known (N_TOP_EXPLAINED a tier)."""
    from scoring.explain import AbsoluteSum, importance_table, reasons, reasons_series
    from scoring.model import with_features
    from scoring.ranking import list_columns, rank_order

    n = rows.height
    sample = _shap_sample_rows(n)
    # Each scored row's sort keys and the row numbers of its panel and rules rows, joined before
    # the rows are explained: the joins' tables are then not held beside the reasons texts (at a
    # province's 7.4M rows that moment was the scoring run's peak, 8.0 GB).
    keys = (rows.select("uscc", "tier")
            .join(panel.select("uscc").with_row_index("_p"), on="uscc", how="left", maintain_order="left")
            .join(rules.select("uscc", "tier", "eligible", "eligible_if_unknowns_hold", "points")
                  .with_row_index("_r"), on=["uscc", "tier"], how="left", maintain_order="left"))
    margins, texts, kept_c, kept_x, names, total = [], [], [], [], None, None
    slices = _with_features_in_slices(rows, panel, keys.get_column("_p"), model.features)
    for start, (contrib, x, names) in zip(range(0, max(n, 1), SLICE), _explained(model, slices), strict=True):
        margins.append(contrib.sum(axis=1))
        # (no rows: the text column of before, an empty list)
        texts.append(reasons_series(contrib, x, names, unknown=unknown) if n
                     else pl.Series("reasons", reasons(contrib, x, names)))
        if total is None:
            total = AbsoluteSum(len(names))
        total.add(contrib)
        mine = sample[(sample >= start) & (sample < start + len(contrib))] - start
        kept_c.append(contrib[mine])
        kept_x.append(x[mine])
        del contrib, x
    # The lists' order from the sort keys alone. The wide columns (names, rule texts, reasons) are
    # then gathered once each, already in that order, through the row numbers of their source
    # (a join would copy every column of its left side again, and the texts held as text twice:
    # at a province's 7.4M rows each of these copies was gigabytes, and the run's peak).
    keys = keys.with_columns(pl.Series("probability", model.calibrate(np.concatenate(margins))))
    order = rank_order(keys)
    position = order.get_column("_row")
    keys = keys.gather(position)
    p, r = keys.get_column("_p"), keys.get_column("_r")
    ranked = keys.with_columns(
        order.get_column("rank"), position.alias("_i"),
        pl.concat(texts, rechunk=False).alias("reasons").gather(position),
        *[panel.get_column(c).gather(p) for c in ("name", "district")],
        *[rules.get_column(c).gather(r) for c in TEXTS],   # still categorical (apply_rules)
    ).select(list_columns(keep=["_i"]))
    del keys, order, position, texts, p, r
    # uscc, tier_key, rank and scored row number of the N_TOP_EXPLAINED of each tier
    top = ranked.filter(pl.col("rank") <= N_TOP_EXPLAINED).select("uscc", "tier_key", "rank", "_i")
    # the top rows' values: from the sample where it holds them, else computed for them alone
    extra = np.setdiff1d(top.get_column("_i").to_numpy(), sample).astype(np.int64)
    if len(extra):
        contrib, x, _ = model.contributions(with_features(rows[extra], panel))
        kept_c.append(contrib)
        kept_x.append(x)
    at = {int(i): k for k, i in enumerate(np.concatenate([sample, extra]))}
    importance_table(total.mean(), names).write_parquet(out / "tables" / "shap_global.parquet")
    _shap_tables(sample, rows.select("uscc", pl.col("tier").alias("tier_key"))[sample], top,
                 np.concatenate(kept_c), np.concatenate(kept_x), at, names, out, unknown)
    return ranked.drop("_i")


def _explained(model, slices):
    """model.contributions of each slice in turn, the next slice's computed on a second thread
    while the caller puts this one into words. The TreeSHAP kernel keeps both cores busy only
    while it runs; the reasons, the design matrix and the running sums between its calls are
    mostly one thread's work (at a province's size the explain stage used 1.35 cores of 2).
    Each slice's values are computed alone, as before: the same results, in order."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = None
        for part in slices:
            job = pool.submit(model.contributions, part)
            del part  # the job holds it while it runs
            if ahead is not None:
                yield ahead.result()
            ahead = job
        if ahead is not None:
            yield ahead.result()


def _with_features_in_slices(rows: pl.DataFrame, panel: pl.DataFrame, at: pl.Series, features: list[str]):
    """rows in slices of SLICE (one empty slice if no rows), each with the panel's `features`
    taken at its panel row numbers `at` (not joined: the quarter's panel probed 30 times at 1M
    firms)."""
    from scoring.model import with_features_at

    for start in range(0, max(rows.height, 1), SLICE):
        yield with_features_at(rows.slice(start, SLICE), panel, at.slice(start, SLICE), features)


def _shap_sample_rows(n: int) -> np.ndarray:
    """Row numbers of the SHAP_SAMPLE scored rows in shap_sample.parquet (sorted)."""
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(n, size=min(SHAP_SAMPLE, n), replace=False)) if n else np.array([], int)


def _shap_tables(sample, sampled: pl.DataFrame, top, contrib, x, at: dict[int, int], names, out: Path,
                 unknown: frozenset[str] = frozenset()) -> None:
    """shap_sample.parquet (the sampled rows, long: each row's firm and tier, so that an auditor
    can find it in candidates.csv) and shap_top.parquet (the top rows' waterfalls); contrib and x
    hold only the kept rows, row `at[i]` for scored row i; `sampled` the sample's uscc and tier_key."""
    from scoring.explain import label, value_text

    model_cols = [j for j, nm in enumerate(names) if not nm.startswith("tier_")]
    kept = np.array([at[int(i)] for i in sample], dtype=np.int64)
    width = len(model_cols)
    pl.DataFrame({
        "row_id": np.repeat(np.asarray(sample, dtype=np.int64), width),
        "uscc": sampled.get_column("uscc").gather(np.repeat(np.arange(len(sample)), width)),
        "tier_key": sampled.get_column("tier_key").gather(np.repeat(np.arange(len(sample)), width)),
        "feature": np.tile(np.array([names[j] for j in model_cols], dtype=object), len(sample)),
        "label": np.tile(np.array([label(names[j]) for j in model_cols], dtype=object), len(sample)),
        "value": x[np.ix_(kept, model_cols)].astype(np.float64).ravel(),
        "shap": contrib[np.ix_(kept, model_cols)].astype(np.float64).ravel(),
    }, schema={"row_id": pl.Int64, "uscc": pl.Utf8, "tier_key": pl.Utf8, "feature": pl.Utf8, "label": pl.Utf8,
               "value": pl.Float64, "shap": pl.Float64}).write_parquet(out / "tables" / "shap_sample.parquet")
    # the tier one-hots together say which tier the row is (the others' 0 pushes too, up to 0.6
    # log-odds in the pooled booster): one bar, the row's own tier, carries their sum, so that the
    # waterfall ends at the row's log-odds (an audit found the chart's f(x) short of it by 0.45)
    tiers = [j for j, nm in enumerate(names) if nm.startswith("tier_")]
    records = []
    for uscc, tier_key, rank, i in top.iter_rows():
        k = at[int(i)]
        tier_push = float(contrib[k, tiers].sum())
        for j, nm in enumerate(names):
            if nm.startswith("tier_") and nm != f"tier_{tier_key}":
                continue
            records.append({"uscc": uscc, "tier_key": tier_key, "rank": rank, "base_value": float(contrib[k, -1]),
                            "feature": nm, "label": label(nm), "value_text": value_text(nm, x[k, j], unknown),
                            "shap": tier_push if nm.startswith("tier_") else float(contrib[k, j])})
    pl.DataFrame(records, schema={"uscc": pl.Utf8, "tier_key": pl.Utf8, "rank": pl.Int64, "base_value": pl.Float64,
                                  "feature": pl.Utf8, "label": pl.Utf8, "value_text": pl.Utf8,
                                  "shap": pl.Float64}).write_parquet(out / "tables" / "shap_top.parquet")


def backtest_table(model) -> pl.DataFrame:
    """Out-of-time lists at the last validation quarter: rule points alone against tidu."""
    from scoring.backtest import lift_table, list_score, rule_score

    valid = getattr(model, "validation_", None)
    if valid is None or valid.height == 0:
        return lift_table(pl.DataFrame(schema={"uscc": pl.Utf8, "tier": pl.Utf8, "label": pl.Int8,
                                               "p": pl.Float64, "score_rules": pl.Float64}))
    last = valid.get_column("quarter").max()
    return lift_table(valid.filter(pl.col("quarter") == last).with_columns(
        rule_score().alias("score_rules"), list_score().alias("p")))


def backtest_at(drop: Path, as_of: Quarter, out: Path, seed: int = 7, rules: Path | None = None) -> pl.DataFrame:
    """`tidu backtest`: the lists tidu would have produced at `as_of` against later recognitions."""
    from scoring.backtest import lift_table
    from scoring.model import HORIZON, make_labels

    manifest = run_quarter(RunOptions(drop, as_of, out, seed=seed, render_pdf=False, rules=rules))
    con = warehouse.connect(out / "warehouse.duckdb", read_only=True)
    try:
        tables = warehouse.read_tables(con, drop=manifest.data["drop_id"])
    finally:
        con.close()
    honors = tables["honors"]
    last_seen = Quarter.of(honors.get_column("recognized_on").max()) if honors.height else as_of
    candidates = pl.read_parquet(out / "tables" / "candidates.parquet")
    firms = candidates.select("uscc", pl.lit(str(as_of)).alias("quarter"), "tier_key").unique()
    panel_like = firms.select("uscc", "quarter").unique()
    labels = make_labels(panel_like, honors, max(last_seen, as_of + HORIZON)).rename({"tier": "tier_key"})
    frame = (candidates.join(labels, on=["uscc", "tier_key"], how="left")
             .with_columns(pl.col("label").fill_null(0),
                           (pl.col("eligible").cast(pl.Float64) + pl.col("points").fill_null(0) / 100.0)
                           .alias("score_rules"), (-pl.col("rank")).alias("p"))   # the published order
             .drop("tier").rename({"tier_key": "tier"}))
    table = lift_table(frame)
    table.write_parquet(out / "tables" / "backtest.parquet")
    write_csv(table, out / "backtest.csv")
    manifest.data["backtest"] = {"as_of": str(as_of), "outcomes_through": str(last_seen),
                                 "window_complete": last_seen >= as_of + HORIZON}
    manifest.finish(out, manifest.data.get("seconds", {}))
    return table


def allocate_budget(candidates: pl.DataFrame, panel: pl.DataFrame, opts: RunOptions):
    """The allocation and its policy; `panel` is the scored quarter's (as the run holds it)."""
    from scoring.allocation import allocate
    from scoring.policy import load_policy

    policy = load_policy(opts.policy)
    return allocate(candidates, panel, policy), policy


FACT_COLUMNS = ["revenue_ttm", "revenue_growth_yoy", "rd_expense_py", "rd_intensity_py", "invention_granted_valid",
                "ip_class_1", "employees", "rd_staff_share", "debt_ratio", "post_money_last_yi", "age_years"]


def workbook_notes(quarter: str, city: str) -> list[tuple[str, str]]:
    """candidates.xlsx's notes, the comments of its header cells: what its words and columns mean,
    for a reader who has only the workbook (the PDF says the same on its summary and methods pages)."""
    from scoring.ranking import RANK_RULE

    return [
        ("名单", (f"{city}{quarter} 季度的候选名单, 每个层级一张工作表, 按排名排列; 与 candidates.csv 内容相同。"
                  "完整的方法说明见 report.pdf 的最后一页。")),
        ("是否符合条件", ("是 = 数据能判定的认定条件全部满足, 且没有待人工核实的条件; "
                       "待核实 = “需人工核实”列中的条件核实成立后即符合 (tidu 未收录该季度适用规则的层级也记为待核实); "
                       "否 = 尚有差距, 见“差距”列。candidates.csv 的 eligible 列只有 true/false, 待核实记为 false。")),
        ("差距", ("未满足的条件及其数值, 如“研发费用占比 2.1% < 3%”。“最高可能 X 分”是人工核实后最多能达到的分数; "
                  "“无数据”表示数据包中没有该项, 需补充或人工核实; "
                  "“（或 …，需人工核实）”表示另有一条数据不能判定的途径 (如软件著作权), 人工核实成立后仍可符合。")),
        ("需人工核实", "数据不能判定、须由人工核实的条件 (如企业未列入经营异常名录、专利以外的知识产权)。"),
        ("评分", "按该层级评分表计算的分数 (没有评分表的层级为空); 须人工核实的加分项按未得分计。"),
        ("认定概率", "模型估计的该企业在未来四个季度内新获该层级认定的概率 (已校准), 只用季度末以前的数据。"),
        ("排名", RANK_RULE),
        ("主要因素", "对认定概率影响最大的三个因素及其数值: ↑ 提高概率, ↓ 降低概率 (SHAP 值)。"),
    ]


def write_outputs(out: Path, candidates, allocation, panel, result: ValidationResult, opts: RunOptions,
                  manifest: Manifest) -> None:
    from features.catalog import load_catalog
    from reports.memo import draft_memo

    alloc, policy = allocation
    write_csv(candidates_csv_view(candidates), out / "candidates.csv")
    candidates.write_parquet(out / "tables" / "candidates.parquet")
    write_candidates_xlsx(candidates, out / "candidates.xlsx", TIERS,
                          created=dt.datetime.combine(opts.quarter.end, dt.time()),
                          notes=workbook_notes(str(opts.quarter), opts.city))
    a = alloc.allocation
    write_csv(a.select("uscc", "name", "tier", "instrument", "amount_wan", "rationale"), out / "allocation.csv")
    write_allocation_xlsx(a, out / "allocation.xlsx", created=dt.datetime.combine(opts.quarter.end, dt.time()))
    a.write_parquet(out / "tables" / "allocation.parquet")
    for name in ("sensitivity", "baseline", "kpis"):
        getattr(alloc, name).write_parquet(out / "tables" / f"{name}.parquet")
    metrics = (manifest.data.get("model") or {}).get("metrics") or {}
    unvalidated = {TIERS[t]: m.get("note") or "无验证指标" for t, m in metrics.items()   # its why, as the
                   if t in TIERS and m.get("auc") is None}                                # methods page says it
    memo = draft_memo(alloc, policy, str(opts.quarter), opts.city, unvalidated)
    (out / "memo.md").write_text(memo, encoding="utf-8")
    now = panel   # the scored quarter's (as the run holds it from training on)
    top = candidates.filter(pl.col("rank") <= N_TOP_EXPLAINED).select("uscc").unique()
    cols = [c for c in FACT_COLUMNS if c in now.columns]
    now.join(top, on="uscc").select("uscc", "name", "district", *cols).sort("uscc").write_parquet(
        out / "tables" / "firm_facts.parquet")
    catalog = load_catalog()
    pl.DataFrame([{"feature": c, "label": catalog[c].label_zh, "unit": catalog[c].unit} for c in cols],
                 schema={"feature": pl.Utf8, "label": pl.Utf8, "unit": pl.Utf8}).write_parquet(
        out / "tables" / "firm_facts_labels.parquet")
    quality = pl.DataFrame([{"table": n, "file": manifest.file_of(n), **c,
                             "match_rate": result.match_rates.get(n)} for n, c in result.counts.items()],
                           schema={"table": pl.Utf8, "file": pl.Utf8, "rows_read": pl.Int64,
                                   "rows_accepted": pl.Int64, "rows_quarantined": pl.Int64,
                                   "match_rate": pl.Float64})
    quality.write_parquet(out / "tables" / "quality.parquet")
    result.checks.write_parquet(out / "tables" / "checks.parquet")
    from scoring.ranking import RANK_RULE

    manifest.data.update({"rank_rule": RANK_RULE, "budget_wan": policy.budget.total_wan,
                          "allocation": alloc.summary()})
