"""`tidu verify`: an auditor runs a finished quarterly run again from its inputs and compares.

The run's manifest.json says what went in (each input file's sha256), the day the drop's dates
were checked against (`checked_on`), the quarter, city, seed and settings (policy file, saved
model, PDF), and the sha256 of every output. `verify` checks that the drop given holds the same
files, runs the same command on them into a folder of its own, and compares each output's sha256
with the one recorded. Same inputs and seed give the same bytes (tests/test_end_to_end.py), so any
difference is worth an auditor's question: a changed file, another tidu version, or a bug.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from data_contracts.periods import Quarter
from pipelines.ingest import DropError, locate_tables
from pipelines.manifest import code_sha256, file_sha256, folder_sha256, package_version


class CannotVerify(Exception):
    """The recorded run cannot be run again as it was (exit 2): no manifest, a run that did not
    finish, a policy or saved model not given or not the same."""


@dataclass
class Verification:
    """What `verify` found: input files that differ from the recorded ones (then nothing is run),
    each recorded output with its recorded and new sha256, the run folder's outputs that no longer
    match their recorded sha256 (edited after the run), and notes (a different tidu version)."""

    inputs: list[str] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    edited: dict[str, str] = field(default_factory=dict)   # run folder's file → what changed
    notes: list[str] = field(default_factory=list)
    code_changed: bool = False   # tidu's code is not the recorded run's (manifest code_sha256)

    @property
    def same(self) -> bool:
        return (not self.inputs and not self.edited and bool(self.outputs)
                and all(o["same"] for o in self.outputs))

    @property
    def rerun_differs(self) -> bool:
        """Some output of the run made again differs from its recorded sha256."""
        return any(not o["same"] for o in self.outputs)

    @property
    def not_repeatable(self) -> bool:
        """Outputs differ and the code is another: the difference says nothing of the data or the
        run's outputs (exit 2, as for a policy or model not the same)."""
        return self.code_changed and self.rerun_differs


def recorded_run(run: Path) -> dict:
    """The manifest of a finished run, or CannotVerify saying why it cannot be run again."""
    path = run / "manifest.json"
    if not path.is_file():
        raise CannotVerify(f"{run} 中没有 manifest.json; 请指定 tidu run 或 tidu demo 的输出文件夹")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CannotVerify(f"{path} 不是有效的 manifest.json ({e})") from None
    if manifest.get("command") == "validate":
        raise CannotVerify(f"{path} 来自 tidu validate (只核验, 没有名单), 无可复核的输出")
    if manifest.get("status") != "ok":
        raise CannotVerify(f"{path} 记录的运行没有正常完成 (status: {manifest.get('status')}), 没有可复核的输出")
    missing = [k for k in ("quarter", "seed", "city", "inputs", "outputs", "checked_on", "settings")
               if k not in manifest]
    if missing:
        raise CannotVerify(f"{path} 缺少 {', '.join(missing)}: 它由较早版本的 tidu 写出, 没有记录重新运行所需的全部设置 "
                           "(如核验日 checked_on); 请用当前版本重新运行后再复核")
    return manifest


def changed_inputs(manifest: dict, drop: Path) -> list[str]:
    """The drop's files against the run's: each one missing, changed or new, in Chinese."""
    try:
        found, _ = locate_tables(drop)
    except DropError as e:
        return [str(e)]
    recorded = {i["table"]: i for i in manifest["inputs"]}
    problems = []
    for table, item in recorded.items():
        path = found.get(table)
        if path is None:
            problems.append(f"数据包中没有 {item['file']} (原运行读取了它)")
        elif path.name != item["file"]:
            problems.append(f"原运行读取的是 {item['file']}, 数据包中现在是 {path.name}")
        elif (digest := file_sha256(path)) != item["sha256"]:
            problems.append(f"{item['file']} 与原运行读取的文件不同 (sha256 原为 {item['sha256'][:16]}…, "
                            f"现为 {digest[:16]}…)")
    problems += [f"数据包中多了 {path.name} (原运行没有这张表)" for table, path in found.items()
                 if table not in recorded]
    return problems


def edited_outputs(manifest: dict, run: Path) -> dict[str, str]:
    """The run folder's recorded outputs that are gone or no longer have their recorded sha256:
    file → what is wrong with it."""
    problems = {}
    for name, digest in manifest["outputs"].items():
        path = run / name
        if not path.is_file():
            problems[name] = f"原运行文件夹中的 {name} 已不存在"
        elif file_sha256(path) != digest:
            problems[name] = f"原运行文件夹中的 {name} 与 manifest.json 记录的不一致 (运行后被改动过)"
    return problems


def _same_file(manifest: dict, key: str, given: Path | None, option: str, what: str) -> Path | None:
    """The file the run was given as `option` (its settings' `key`: name and sha256), checked to be
    the same; None where the run used the built-in one."""
    recorded = manifest["settings"].get(key)
    if recorded is None:
        if given is not None:
            raise CannotVerify(f"原运行使用内置{what}, 复核时不应指定 {option}")
        return None
    if given is None:
        raise CannotVerify(f"原运行使用了{what}文件 {recorded['file']}; 请用 {option} 指定该文件")
    if not given.is_file():
        raise CannotVerify(f"{what}文件不存在: {given}")
    if file_sha256(given) != recorded["sha256"]:
        raise CannotVerify(f"{given} 与原运行使用的{what}文件 {recorded['file']} 内容不同 (sha256 不一致)")
    return given


def _model(manifest: dict, model: Path | None) -> Path | None:
    recorded = manifest["settings"].get("saved_model")
    if recorded is None:
        if model is not None:
            raise CannotVerify("原运行自行训练了模型 (复核时同样重新训练), 不应指定 --model")
        return None
    folder = recorded["folder"] if isinstance(recorded, dict) else recorded   # (a string before 2026-11-24)
    if model is None:
        raise CannotVerify(f"原运行使用了已保存的模型 (文件夹 {folder}, 模型 id "
                           f"{manifest.get('model', {}).get('id')}); 请用 --model 指定该模型文件夹")
    if not model.is_dir():
        raise CannotVerify(f"模型文件夹不存在: {model}")
    if isinstance(recorded, dict) and recorded.get("sha256") and folder_sha256(model) != recorded["sha256"]:
        raise CannotVerify(f"{model} 与原运行使用的模型文件夹 {folder} 内容不同 (sha256 不一致; 例如校准参数被改动)")
    return model


def verify(run: Path, drop: Path, again: Path, policy: Path | None = None,
           model: Path | None = None, rules: Path | None = None) -> Verification:
    """Run the recorded run again on `drop` into `again` and compare its outputs with the run's."""
    from pipelines.run import RunOptions, run_quarter

    manifest = recorded_run(run)
    result = Verification()
    opts = RunOptions(drop, Quarter.parse(manifest["quarter"]), again,
                      _same_file(manifest, "policy", policy, "--policy", "资金政策"),
                      _model(manifest, model), as_of=dt.date.fromisoformat(manifest["checked_on"]),
                      city=manifest["city"], seed=int(manifest["seed"]),
                      render_pdf=bool(manifest["settings"].get("pdf", True)),
                      rules=_same_file(manifest, "rules", rules, "--rules", "规则配置"))
    result.inputs = changed_inputs(manifest, drop)
    if result.inputs:
        return result
    if manifest.get("package_version") != package_version():
        result.notes.append(f"原运行的 tidu 版本为 {manifest.get('package_version')}, 当前为 {package_version()}: "
                            "版本不同, 输出可能因此不同")
    recorded_code, code = manifest.get("code_sha256"), code_sha256()
    if recorded_code is None:
        result.notes.append("原运行没有记录 tidu 程序代码的指纹 (code_sha256, 较早的版本): 无法确认程序相同")
    elif recorded_code != code:
        result.code_changed = True
        result.notes.append(f"tidu 的程序代码与原运行不同 (code_sha256 原为 {recorded_code[:12]}…, 现为 {code[:12]}…): "
                            "输出的不同可能来自程序改动, 不能据此判断数据或输出被改动; 请用原运行时的程序复核")
    result.edited = edited_outputs(manifest, run)
    now = run_quarter(opts).data
    if now.get("model", {}).get("id") != manifest.get("model", {}).get("id"):
        result.notes.append(f"模型 id 不同: 原为 {manifest.get('model', {}).get('id')}, "
                            f"复核为 {now.get('model', {}).get('id')}")
    recorded, produced = manifest["outputs"], now.get("outputs", {})
    for name in sorted(set(recorded) | set(produced), key=lambda n: (n not in recorded, n)):
        result.outputs.append({"file": name, "recorded": recorded.get(name), "again": produced.get(name),
                               "same": recorded.get(name) == produced.get(name)})
    return result
