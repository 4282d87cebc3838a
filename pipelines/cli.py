"""`tidu`: the commands the bureaus run. Exit 0 success, 1 contract failure, 2 bad usage or input.

A data problem never shows a traceback: it is printed in Chinese naming the file, row and column.
An internal error (a bug in tidu) is written to error.log in the output folder with a short note.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Optional

import polars as pl
import typer
from rich.console import Console

from data_contracts.periods import Quarter

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="tidu 梯度培育: 读取季度数据包, 核验, 评分, 排名, 分配资金, 生成评审材料。")
err = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)

DEMO_SEED = 20251231
DEMO_ENTERPRISES = 2_000
DEMO_QUARTERS = 16
DEMO_END = Quarter(2025, 4)


def quarter_text(text: str) -> Quarter:
    """A quarter as the drop's 报告期 may write it: 2025Q4, 2025q4, 2025年四季度, 2025年1-12月, 2025-12.
    (The notebook reads its `quarter` parameter with it too.) typer.BadParameter, in Chinese, else."""
    import polars as pl

    from data_contracts.parsing import parse_period

    value, _ = parse_period(pl.Series([text], dtype=pl.Utf8))
    if value[0] is None:
        raise typer.BadParameter(f"季度应写成 YYYYQn, 例如 2025Q4 (或 2025年四季度), 而不是 {text!r}")
    return Quarter.parse(value[0])


def checked_on_text(text: str | None) -> dt.date | None:
    """--checked-on (and the notebook's `checked_on`): a date as the drop's dates may be written
    (2026-01-15, 2026/1/15, 2026年1月15日), not after today (or none: today). A later day would let
    dates that cannot have happened yet pass the check."""
    from data_contracts.parsing import parse_date

    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:   # 2026/1/15, 2026年1月15日: as the drop's dates are read (years 1800–2200)
        day = parse_date(pl.Series([text], dtype=pl.Utf8))[0][0]
    if day is None:
        raise typer.BadParameter(f"日期应写成 YYYY-MM-DD (或 2026年1月15日), 例如 2026-01-15, 而不是 {text!r}")
    if day > dt.date.today():
        raise typer.BadParameter(f"核验日 {day} 晚于今天; 核验日只能是今天或更早的一天 (复核以前的运行时用它当时的核验日)")
    return day


RULES_HELP = ("本市的规则配置 YAML 文件, 写法同内置的 scoring/rulebooks/config.yaml: 每个层级按日期先后列出所用规则 id "
              "(如准独角兽用 jiangsu-2025-quasi_unicorn; 默认: 内置无锡配置)")


CHECKED_ON_HELP = ("核验日 YYYY-MM-DD: 成立、认定、融资、申请日期晚于这一天的行被隔离 (默认今天; "
                   "记录在 manifest.json 的 checked_on, 复核时按同一天核验)")


def _require_folder(drop: Path, out: Path | None = None) -> None:
    """A drop folder that exists (else exit 2 with the reason, before anything is written), and
    an --out that is neither the drop itself nor inside it: the outputs (CSV files among them)
    would sit beside the drop's tables, and the next run read them as a drop's files."""
    if drop.is_file():
        err.print(f"[bold red]无法读取数据:[/] {drop} 是一个文件; 请给出数据包文件夹 (即它所在的文件夹 {drop.parent})")
        raise typer.Exit(2)
    if not drop.is_dir():
        err.print(f"[bold red]无法读取数据:[/] 数据目录不存在: {drop}")
        raise typer.Exit(2)
    if out is not None and out.resolve().is_relative_to(drop.resolve()):
        err.print(f"[bold red]输出文件夹不能放在数据包文件夹中:[/] --out {out} 在 {drop} 之内, 输出文件会和数据表混在一起, "
                  "下次读取时被当作数据; 请用 --out 另选一个文件夹")
        raise typer.Exit(2)


def _folder(path: Path | None) -> Path | None:
    """An --out folder: it may not exist yet, but it may not be a file, and it must be possible to
    make it (usage, exit 2, before anything runs: not an internal error once the run has begun)."""
    if path is None:
        return path
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} 是一个文件, 不是文件夹; 请用 --out 指定一个文件夹 (不存在时会自动创建)")
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise typer.BadParameter(f"无法创建文件夹 {path}: {ancestor} 是一个文件, 不是文件夹; 请用 --out 指定别的位置")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"无法创建文件夹 {path}: 没有在 {ancestor} 中写入的权限; 请用 --out 指定别的位置")
    return path


def known_failure(e: Exception) -> tuple[str, str, int] | None:
    """(heading, message, exit code) of a failure the run expects (a data or settings problem, said
    in Chinese; no traceback), or None for a program error. The commands and the notebook both
    say them so."""
    from pipelines.ingest import DropError
    from pipelines.run import ContractFailure
    from pipelines.verify import CannotVerify
    from scoring.errors import CannotScore
    from scoring.policy import PolicyError

    for kind, heading, code in ((DropError, "无法读取数据", 2), (CannotVerify, "无法复核", 2),
                                (CannotScore, "无法评分", 2), (PolicyError, "政策文件有误", 2),
                                (ContractFailure, "数据未通过核验, 本次不评分", 1)):
        if isinstance(e, kind):
            detail = f"{e}\n详见 quarantine.csv" if kind is ContractFailure else str(e)
            return heading, detail, code
    return None


def _guard(out: Path | None, action):
    """Run an action; map known failures (`known_failure`) to exit codes without tracebacks."""
    try:
        return action()
    except (typer.Exit, typer.BadParameter, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - the top of the command: every other error ends here
        if (known := known_failure(e)) is not None:
            heading, detail, code = known
            err.print(f"[bold red]{heading}:[/] {detail}")
            raise typer.Exit(code) from None
        if not _disk_full(e) or os.environ.get("TIDU_DEBUG"):
            _internal_error(out, e)
        # not a program error, and no room for an error.log either
        where = getattr(e, "filename", None) or out or Path(".")
        err.print(f"[bold red]磁盘空间不足:[/] 写入 {where} 时磁盘已满, 本次运行未完成。请清理磁盘, "
                  "或用 --out 指向空间更大的磁盘后重新运行 (docs/scale.md 列出各规模所需的空间)。")
        raise typer.Exit(3) from None


DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def _disk_full(e: BaseException) -> bool:
    """The disk (or the user's quota) is full: Python's own OSError, or the message of a library
    that reports it in its own exception (DuckDB's IOException, Polars' errors)."""
    if isinstance(e, OSError) and e.errno in DISK_FULL:
        return True
    text = str(e)
    return "No space left on device" in text or "Disk quota exceeded" in text


def _internal_error(out: Path | None, error: Exception) -> None:
    """A program error: the traceback goes to error.log, the user gets one line about it; with
    TIDU_DEBUG set, the exception itself."""
    if os.environ.get("TIDU_DEBUG"):
        raise error
    text = "".join(traceback.format_exception(error))
    log = (out or Path(".")) / "error.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(text, encoding="utf-8")
    except OSError:   # the output folder cannot take it (not writable, or not a folder)
        log = Path(tempfile.gettempdir()) / f"tidu-error-{os.getpid()}.log"
        log.write_text(text, encoding="utf-8")
    err.print(f"[bold red]tidu 内部错误[/] (这是程序问题, 不是您的数据问题)。详细信息已写入 {log}, "
              "请把该文件发给技术支持。")
    raise typer.Exit(3) from None


@app.command()
def run(drop: Path = typer.Argument(..., help="数据包文件夹 (企业登记、财务快报、专利、重点项目、融资、资质荣誉)"),
        quarter: str = typer.Option(..., "--quarter", help="评分季度, 如 2025Q4 或 2025年四季度 (不晚于数据包中最近的财务快报报告期)"),
        out: Path = typer.Option(Path("out/run"), "--out", help="输出文件夹", callback=_folder),
        policy: Optional[Path] = typer.Option(None, "--policy", help="资金政策 YAML 文件 (默认: 内置宜兴政策, 其预算和奖励标准为假设值)"),
        rules: Optional[Path] = typer.Option(None, "--rules", help=RULES_HELP),
        model: Optional[Path] = typer.Option(None, "--model", help="用已保存的模型文件夹评分, 不重新训练"),
        city: str = typer.Option("宜兴市", "--city", help="报告封面和资金分配建议稿上的城市名 (默认宜兴市, 其他城市请填写)"),
        seed: int = typer.Option(7, "--seed", help="随机种子 (同样的输入和种子 → 同样的输出)"),
        checked_on: Optional[str] = typer.Option(None, "--checked-on", help=CHECKED_ON_HELP),
        no_pdf: bool = typer.Option(False, "--no-pdf", help="不生成 report.pdf")):
    """季度评分: 核验 → 入库 → 特征 → 规则 + 模型 + SHAP → 排名 → 资金分配 → 报告。"""
    from pipelines.run import RunOptions, run_quarter

    q, day = quarter_text(quarter), checked_on_text(checked_on)
    _require_folder(drop, out)
    opts = RunOptions(drop, q, out, policy, model, as_of=day, city=city, seed=seed, render_pdf=not no_pdf,
                      rules=rules)
    manifest = _guard(out, lambda: run_quarter(opts))
    _summary(out, manifest.data)


@app.command()
def demo(out: Path = typer.Option(Path("out/demo"), "--out", help="输出文件夹", callback=_folder),
         no_pdf: bool = typer.Option(False, "--no-pdf", help="不生成 report.pdf")):
    """生成内置的宜兴示范城市 (合成数据, 固定种子) 并完整运行一次季度评分。"""
    from pipelines.run import RunOptions, run_quarter
    from pipelines.synth import synthesize

    drop = out / "drop"
    _guard(out, lambda: synthesize(drop, enterprises=DEMO_ENTERPRISES, quarters=DEMO_QUARTERS,
                                   seed=DEMO_SEED, end_quarter=DEMO_END, demo=True))
    opts = RunOptions(drop, DEMO_END, out, as_of=DEMO_END.end + dt.timedelta(days=60),
                      render_pdf=not no_pdf)
    manifest = _guard(out, lambda: run_quarter(opts))
    _summary(out, manifest.data)


@app.command()
def validate(drop: Path = typer.Argument(..., help="数据包文件夹"),
             out: Path = typer.Option(Path("out/validate"), "--out", help="输出文件夹 (quarantine.csv、Data Docs)", callback=_folder),
             checked_on: Optional[str] = typer.Option(None, "--checked-on", help=CHECKED_ON_HELP)):
    """只做数据核验。没有 error 级问题时退出码 0, 否则 1。"""
    from pipelines.manifest import Manifest
    from pipelines.run import Timer, check_drop

    day = checked_on_text(checked_on)
    _require_folder(drop, out)
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    loaded, result = _guard(out, lambda: check_drop(drop, out, day, timer))
    manifest = Manifest({"command": "validate", "drop": str(drop)})
    manifest.record_inputs(loaded, result)
    manifest.finish(out, timer.seconds, status="ok" if result.error_rows == 0 else "contract_failed")
    from data_contracts.schema import TABLES

    for name, c in result.counts.items():
        out_console.print(f"{TABLES[name].stem_zh}: 读取 {c['rows_read']} 行, 接受 {c['rows_accepted']} 行, "
                          f"隔离 {c['rows_quarantined']} 行")
    for note in manifest.data["drop_notes"]:
        out_console.print(f"注意: {note}")
    counted = manifest.data["quarantine"]   # the rows as the manifest counts them (and run prints them)
    if counted["flags"]:
        out_console.print(f"{counted['flag_rows']} 行有警告 ({counted['flags']} 条; 已接受, 请核对), 详见 {out / 'flags.csv'}")
    if counted["error_rows"]:
        rest = counted["rows"] - counted["error_rows"]   # rows quarantined without an error: copies and the like
        also = f" (另有 {rest} 行重复等也已隔离, 共 {counted['rows']} 行)" if rest else ""
        err.print(f"[bold red]{counted['error_rows']} 行有错误, 未通过核验[/]{also}, 详见 {out / 'quarantine.csv'}")
        raise typer.Exit(1)
    out_console.print(f"核验通过。各表行数见 {out / 'manifest.json'}; Great Expectations 的检查报告 (英文, 离线时"
                      f"无样式) 在 {out / 'data_docs' / 'index.html'}")


@app.command()
def backtest(drop: Path = typer.Argument(..., help="数据包文件夹 (须含评分季度之后的资质荣誉)"),
             as_of: str = typer.Option(..., "--as-of", help="回测季度: 只用该季度末以前的数据评分, 如 2024Q4"),
             out: Path = typer.Option(Path("out/backtest"), "--out", help="输出文件夹", callback=_folder),
             seed: int = typer.Option(7, "--seed", help="随机种子"),
             rules: Optional[Path] = typer.Option(None, "--rules", help=RULES_HELP)):
    """回测: 用某季度末以前的数据生成名单, 与之后四个季度实际新认定的企业对比 (前 k 名的召回率和精确率)。"""
    from pipelines.run import backtest_at

    _require_folder(drop, out)
    table = _guard(out, lambda: backtest_at(drop, quarter_text(as_of), out, seed, rules))
    for row in table.filter(pl.col("k") == 50).iter_rows(named=True):
        # too few later recognitions: one firm swings the figure (the report prints "—" too)
        rr, rt = (row["recall_rules"], row["recall_tidu"]) if row["enough_positives"] else (None, None)
        out_console.print(f"{row['tier']}: 前 50 名召回率 规则 {_pct(rr)} · tidu {_pct(rt)} (后续新认定 {row['positives']} 家)")
    out_console.print(f"详见 {out / 'backtest.csv'}")


@app.command()
def verify(run: Path = typer.Argument(..., help="要复核的运行的输出文件夹 (含 manifest.json)"),
           drop: Path = typer.Option(..., "--drop", help="该次运行读取的数据包文件夹"),
           out: Path = typer.Option(Path("out/verify"), "--out", help="重新运行的输出文件夹", callback=_folder),
           policy: Optional[Path] = typer.Option(None, "--policy", help="原运行使用的资金政策文件 (原运行用内置政策时不填)"),
           model: Optional[Path] = typer.Option(None, "--model", help="原运行使用的已保存模型文件夹 (原运行自行训练时不填)"),
           rules: Optional[Path] = typer.Option(None, "--rules", help="原运行使用的规则配置文件 (原运行用内置配置时不填)")):
    """复核: 按 manifest.json 记录的输入和设置重新运行, 逐个比对输出文件。全部一致退出码 0; 输入或输出不一致 1; 无法按原样重新运行 (无 manifest、政策文件、规则配置或模型未提供或不一致, 或程序代码已改变而输出不同) 2。"""
    from pipelines.verify import verify as verify_run

    _require_folder(drop, out)
    if out.resolve() == run.resolve():
        err.print(f"[bold red]无法复核:[/] 重新运行的输出文件夹不能是被复核的文件夹 {run}; 请用 --out 另选一个")
        raise typer.Exit(2)
    found = _guard(out, lambda: verify_run(run, drop, out, policy, model, rules))
    if found.inputs:
        err.print("[bold red]数据包与原运行读取的文件不一致, 未重新运行:[/]")
        for line in found.inputs:
            err.print(f"  {line}")
        raise typer.Exit(1)
    width = max((len(o["file"]) for o in found.outputs), default=16)
    for o in found.outputs:
        mark = "一致" if o["same"] else "[bold red]不一致[/]"
        recorded = (o["recorded"] or "(原运行没有此文件)")[:12]
        again = (o["again"] or "(复核没有生成此文件)")[:12]
        edited = " [bold red](原文件夹中的该文件已被改动)[/]" if o["file"] in found.edited else ""
        out_console.print(f"{o['file']:<{width}} 原 {recorded} 复核 {again} {mark}{edited}", soft_wrap=True)
    for line in found.edited.values():
        err.print(f"[bold red]{line}[/]")
    for note in found.notes:
        out_console.print(f"注意: {note}")
    if found.not_repeatable:
        err.print(f"[bold red]无法复核:[/] tidu 的程序代码与原运行不同, 重新运行的输出与记录不一致, "
                  f"不能据此判断数据或输出被改动; 请用原运行时的程序复核。重新运行的结果在 {out}")
        raise typer.Exit(2)
    if not found.same:
        why = ("有输出与原运行的记录不同" if found.rerun_differs else
               "原运行文件夹中的文件在运行后被改动过 (重新运行的结果与 manifest.json 的记录一致)")
        err.print(f"[bold red]复核未通过:[/] {why}; 重新运行的结果在 {out}")
        raise typer.Exit(1)
    out_console.print(f"复核通过: {len(found.outputs)} 个输出文件与原运行逐字节一致 (sha256)。重新运行的结果在 {out}")


def _pct(x) -> str:
    return "—" if x is None else f"{x:.0%}"


@app.command()
def synth(enterprises: int = typer.Option(..., "--enterprises", min=1, max=1_000_000,
                                          help="企业数 (1 到 1,000,000; 一个省约 100 万户)"),
          quarters: int = typer.Option(12, "--quarters", min=1,
                                       help="季度数 (≥ 1; tidu run 训练模型需要约 12 个季度以上的历史)"),
          seed: int = typer.Option(0, "--seed", help="随机种子"),
          end_quarter: str = typer.Option("2025Q4", "--end-quarter", help="最后一个季度"),
          dirty: bool = typer.Option(False, "--dirty", help="加入真实数据常见的问题 (编码、标题行、元/万元、重复、错误代码…)"),
          fmt: str = typer.Option("csv", "--format", help="csv 或 parquet"),
          out: Path = typer.Option(..., "--out", help="数据包输出文件夹", callback=_folder)):
    """生成合成城市的季度数据包 (与真实数据包格式完全相同), 同一种子结果相同。"""
    from pipelines.synth import synthesize

    summary = _guard(out, lambda: synthesize(out, enterprises=enterprises, quarters=quarters, seed=seed,
                                             end_quarter=quarter_text(end_quarter), dirty=dirty, fmt=fmt))
    counts = "、".join(f"{name} {rows:,} 行" for name, rows in summary.rows.items())   # by file stem
    faults = f"; 有意加入的数据问题 {sum(summary.faults.values())} 处 (清单见 _synth/faults.csv)" if summary.faults else ""
    out_console.print(f"已写入 {out} ({summary.seconds:.1f} 秒): {counts}{faults}; 真实概率见 {summary.truth_dir}")


def _summary(out: Path, data: dict) -> None:
    secs = data.get("seconds", {})
    files = [f for f in ("report.pdf", "candidates.csv", "candidates.xlsx", "allocation.csv", "allocation.xlsx",
                         "quarantine.csv", "memo.md", "manifest.json") if (out / f).exists()]
    out_console.print(f"完成 {data.get('quarter')} ({sum(secs.values()):.1f} 秒)。输出在 {out}: {', '.join(files)}")
    for note in data.get("drop_notes", []):
        out_console.print(f"注意: {note}")
    checked = data.get("quarantine", {})
    if checked.get("rows") or checked.get("flags"):
        # in the words of tidu validate: rows quarantined (those with an error among them), rows
        # accepted with a warning (and how many warnings)
        errors = f"; 其中 {checked['error_rows']} 行有错误" if "error_rows" in checked else ""
        warned = (f"{checked['flag_rows']} 行 ({checked.get('flags', 0)} 条; " if "flag_rows" in checked
                  else f"{checked.get('flags', 0)} 条 (")
        out_console.print(f"数据核验: 隔离 {checked.get('rows', 0)} 行 (quarantine.csv, 未参与评分{errors}), "
                          f"警告 {warned}flags.csv, 已接受)")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
