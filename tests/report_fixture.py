"""A small but realistic run folder, as the pipeline leaves it before the report is rendered.

`write_run_folder(path)` writes manifest.json, memo.md, quarantine.csv and tables/*.parquet in the
shapes reports/pdf.py reads. Everything comes from a seeded generator, so the same arguments give
the same files. Two firms carry names that break naive markup: one full of typst special
characters and one that looks like a spreadsheet formula; both rank first in a tier.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from scoring.allocation import ALLOCATION_SCHEMA
from scoring.backtest import lift_table
from scoring.tiers import TIERS

POINT_TIERS = {"innovative_sme", "specialised_sme", "little_giant", "tech_sme"}

SPECIAL_NAME = '#井号*星号_下划线$美元=等号"引号[方括号]\\反斜杠@艾特<尖括号>科技有限公司'
FORMULA_NAME = '=HYPERLINK("http://x","y")'

# feature, label, unit, kind of value generator
FEATURES = [
    ("revenue_ttm", "营业收入(近四季)", "万元", "money"),
    ("revenue_growth_yoy", "营业收入同比增长", "%", "growth"),
    ("rd_intensity_py", "研发费用占比(上年)", "%", "ratio"),
    ("rd_expense_py", "研发费用(上年)", "万元", "money_small"),
    ("invention_granted_valid", "发明专利(有效)", "件", "count"),
    ("ip_class_1", "Ⅰ类知识产权", "件", "count"),
    ("employees", "从业人员", "人", "people"),
    ("rd_staff_share", "研发人员占比", "%", "ratio"),
    ("debt_ratio", "资产负债率", "%", "ratio"),
    ("post_money_last_yi", "最近一轮投后估值", "亿元", "valuation"),
    ("age_years", "成立年限", "年", "age"),
    ("patents_filed_2y", "近两年专利申请", "件", "count"),
    ("equity_raised_2y", "近两年股权融资", "万元", "money_small"),
    ("months_since_last_round", "距上轮融资", "月", "age"),
    ("main_business_share_py", "主营业务收入占比(上年)", "%", "ratio"),
    ("net_margin_py", "净利率(上年)", "%", "growth"),
    ("holds_high_tech_enterprise", "已获高新技术企业", "", "flag"),
    ("project_intensity", "重点项目投资强度", "", "growth"),
    ("rule_points", "规则评分", "分", "points"),
    ("rule_eligible", "符合认定条件", "", "flag"),
]
FACTS = [
    "revenue_ttm",
    "revenue_growth_yoy",
    "rd_intensity_py",
    "rd_expense_py",
    "invention_granted_valid",
    "ip_class_1",
    "employees",
    "rd_staff_share",
    "debt_ratio",
    "post_money_last_yi",
    "age_years",
]

BRANDS = [
    "华创",
    "远航",
    "精工",
    "恒瑞",
    "天合",
    "新宇",
    "中科",
    "博达",
    "润泽",
    "宏远",
    "金陶",
    "紫砂",
    "东氿",
    "阳羡",
    "竹海",
    "云湖",
    "晶锐",
    "智达",
    "鼎新",
    "汇川",
    "长风",
    "凯实",
    "科润",
    "和信",
]
TRADES = [
    "微电子",
    "环保科技",
    "新材料",
    "精密机械",
    "智能装备",
    "生物医药",
    "陶瓷科技",
    "电缆",
    "光电科技",
    "软件",
    "传感技术",
    "节能科技",
]
DISTRICTS = ["宜城街道", "丁蜀镇", "环科园", "和桥镇", "高塍镇", "经济开发区", "张渚镇", "官林镇"]


def _firms(n: int, rng: np.random.Generator) -> pl.DataFrame:
    names, seen = [], set()
    while len(names) < n:
        name = f"宜兴{rng.choice(BRANDS)}{rng.choice(BRANDS)}{rng.choice(TRADES)}" + (
            "股份有限公司" if rng.random() < 0.2 else "有限公司"
        )
        if name not in seen:
            seen.add(name)
            names.append(name)
    names[0], names[1] = SPECIAL_NAME, FORMULA_NAME
    uscc = [f"91320282MA{i:07d}X" for i in range(n)]
    return pl.DataFrame(
        {"uscc": uscc, "name": names, "district": [str(rng.choice(DISTRICTS)) for _ in range(n)]}
    )


def _value(kind: str, rng: np.random.Generator) -> float:
    return {
        "money": lambda: float(rng.lognormal(9, 1)),
        "money_small": lambda: float(rng.lognormal(6, 1)),
        "growth": lambda: float(rng.normal(0.12, 0.2)),
        "ratio": lambda: float(rng.uniform(0.01, 0.6)),
        "count": lambda: float(rng.poisson(3)),
        "people": lambda: float(rng.integers(8, 900)),
        "valuation": lambda: float(rng.lognormal(1, 1)),
        "age": lambda: float(rng.uniform(1, 25)),
        "points": lambda: float(rng.uniform(30, 100)),
        "flag": lambda: float(rng.random() < 0.4),
    }[kind]()


def _text(feature: str, unit: str, value: float) -> str:
    if unit == "%":
        return f"{value * 100:.1f}%"
    if unit in ("件", "人", "月"):
        return f"{value:.0f} {unit}"
    if unit == "" and value in (0.0, 1.0):
        return "是" if value else "否"
    return f"{value:,.1f} {unit}".strip()


def _reason(feature: tuple, rng: np.random.Generator) -> str:
    name, label, unit, kind = feature
    arrow = "↑" if rng.random() < 0.7 else "↓"
    return f"{label} {_text(name, unit, _value(kind, rng))} {arrow}"


def _candidates(firms: pl.DataFrame, n_per_tier: int, rng: np.random.Generator) -> pl.DataFrame:
    rows = []
    for t, (key, zh) in enumerate(TIERS.items()):
        picks = rng.choice(firms.height, size=min(n_per_tier, firms.height), replace=False)
        special = {"little_giant": 0, "gazelle": 1}.get(key)
        if special is not None and special not in picks:
            picks[0] = special
        for i in picks:
            prob = float(rng.beta(1.2, 4.0))
            eligible = bool(rng.random() < 0.35)
            if special is not None and i == special:
                prob, eligible = 0.97, True
            points = round(float(rng.uniform(35, 98)), 1) if key in POINT_TIERS else None
            gaps = (
                ""
                if eligible
                else "；".join(
                    rng.choice(
                        [
                            f"研发费用占比 {rng.uniform(0.5, 2.9):.1f}% < 3%",
                            "发明专利 0 件 < 1 件",
                            f"营业收入 {rng.uniform(300, 900):.0f} 万元 < 1000 万元",
                            f"评分 {rng.uniform(40, 59):.0f} 分 < 60 分",
                            "Ⅰ类知识产权 1 件 < 2 件",
                        ],
                        size=2,
                        replace=False,
                    )
                )
            )
            review = "；".join(
                rng.choice(
                    ["主导产品属于重点领域", "近三年无重大安全质量事故", "产业链配套情况"],
                    size=int(rng.integers(0, 3)),
                    replace=False,
                )
            )
            feats = rng.choice(len(FEATURES) - 2, size=3, replace=False)
            reasons = "；".join(_reason(FEATURES[j], rng) for j in feats)
            rows.append(
                {
                    "uscc": firms["uscc"][int(i)],
                    "name": firms["name"][int(i)],
                    "district": firms["district"][int(i)],
                    "tier": zh,
                    "eligible": eligible,
                    "points": points,
                    "gaps": gaps,
                    "probability": prob,
                    "reasons": reasons,
                    "tier_key": key,
                    "eligible_if_unknowns_hold": eligible or bool(rng.random() < 0.3),
                    "needs_review": review,
                    "_t": t,
                }
            )
    frame = pl.DataFrame(rows)
    group = (
        pl.when(pl.col("eligible"))
        .then(0)
        .when(pl.col("eligible_if_unknowns_hold"))
        .then(1)
        .otherwise(2)
    )
    frame = (
        frame.with_columns(group.alias("_g"))
        .sort(["_t", "_g", "probability", "uscc"], descending=[False, False, True, False])
        .with_columns(pl.int_range(1, pl.len() + 1).over("tier_key").alias("rank"))
    )
    return frame.select(
        "uscc",
        "name",
        "district",
        "tier",
        "eligible",
        "points",
        "gaps",
        "probability",
        pl.col("rank").cast(pl.Int64),
        "reasons",
        "tier_key",
        "eligible_if_unknowns_hold",
        "needs_review",
    )


INSTRUMENTS = ["认定奖励", "研发费用补助", "先投后股", "风险补偿资金池", "天使投资引导基金"]


def _allocation(cands: pl.DataFrame, rng: np.random.Generator, empty: bool) -> pl.DataFrame:
    schema = ALLOCATION_SCHEMA
    if empty:
        return pl.DataFrame(schema=schema)
    top = cands.filter(pl.col("rank") <= 3).sort("tier_key", "rank")
    rows = []
    for r in top.iter_rows(named=True):
        instrument = str(rng.choice(INSTRUMENTS))
        amount = float(rng.choice([30, 50, 80, 100, 150, 200]))
        rows.append(
            {
                "uscc": r["uscc"],
                "name": r["name"],
                "tier": r["tier"],
                "instrument": instrument,
                "amount_wan": amount,
                "expected_value": round(amount * r["probability"] * 1.8, 1),
                "rationale": f"认定概率 {r['probability']:.0%}，{instrument}每万元期望价值较高；"
                f"位列{r['tier']}第 {r['rank']} 名",
            }
        )
    return pl.DataFrame(rows, schema=schema)


def _shap_tables(cands: pl.DataFrame, rng: np.random.Generator) -> tuple[pl.DataFrame, ...]:
    labels = {f: lab for f, lab, _, _ in FEATURES}
    weights = np.linspace(1.2, 0.05, len(FEATURES))
    glob = pl.DataFrame(
        {
            "feature": [f for f, *_ in FEATURES],
            "label": list(labels.values()),
            "mean_abs_shap": weights * 0.4,
        }
    )
    sample = []
    for row_id in range(300):
        for j, (f, lab, _, kind) in enumerate(FEATURES):
            v = _value(kind, rng)
            sample.append(
                {
                    "row_id": row_id,
                    "feature": f,
                    "label": lab,
                    "value": v,
                    "shap": float(weights[j] * (rng.normal(0, 0.5) + 0.3 * np.log1p(abs(v)) - 0.3)),
                }
            )
    top = []
    for r in cands.filter(pl.col("rank") <= 3).iter_rows(named=True):
        base = -2.4
        for f, lab, unit, kind in FEATURES:
            v = _value(kind, rng)
            top.append(
                {
                    "uscc": r["uscc"],
                    "tier_key": r["tier_key"],
                    "rank": r["rank"],
                    "base_value": base,
                    "feature": f,
                    "label": lab,
                    "value_text": _text(f, unit, v),
                    "shap": float(
                        rng.normal(0.15, 0.45) * weights[FEATURES.index((f, lab, unit, kind))]
                    ),
                }
            )
        top.append(
            {
                "uscc": r["uscc"],
                "tier_key": r["tier_key"],
                "rank": r["rank"],
                "base_value": base,
                "feature": f"tier_{r['tier_key']}",
                "label": f"所评层级: {r['tier']}",
                "value_text": "",
                "shap": float(rng.normal(0, 0.6)),
            }
        )
    return glob, pl.DataFrame(sample), pl.DataFrame(top)


def _facts(
    firms: pl.DataFrame, cands: pl.DataFrame, rng: np.random.Generator
) -> tuple[pl.DataFrame, ...]:
    top = cands.filter(pl.col("rank") <= 3).select("uscc").unique().sort("uscc")
    kinds = {f: (lab, unit, kind) for f, lab, unit, kind in FEATURES}
    facts = firms.join(top, on="uscc").sort("uscc")
    facts = facts.with_columns(
        [pl.Series(f, [_value(kinds[f][2], rng) for _ in range(facts.height)]) for f in FACTS]
    )
    facts = facts.with_columns(
        pl.when(pl.col("uscc").str.ends_with("3X"))
        .then(None)
        .otherwise(pl.col("post_money_last_yi"))
        .alias("post_money_last_yi")
    )
    labels = pl.DataFrame(
        [{"feature": f, "label": kinds[f][0], "unit": kinds[f][1]} for f in FACTS]
    )
    return facts, labels


def _quality(rng: np.random.Generator) -> tuple[pl.DataFrame, pl.DataFrame, list[dict]]:
    files = {
        "enterprises": "企业名录.xlsx",
        "filings": "财务快报.csv",
        "patents": "专利清单.csv",
        "projects": "重点项目.xlsx",
        "financing": "融资事件.csv",
        "honors": "资质荣誉.csv",
    }
    quality, inputs = [], []
    for table, file in files.items():
        read = int(rng.integers(800, 20000))
        bad = int(rng.integers(0, 40))
        match = (
            None
            if table in ("enterprises", "filings")
            else round(float(rng.uniform(0.85, 0.995)), 3)
        )
        quality.append(
            {
                "table": table,
                "file": file,
                "rows_read": read,
                "rows_accepted": read - bad,
                "rows_quarantined": bad,
                "match_rate": match,
            }
        )
        inputs.append(
            {
                "table": table,
                "file": file,
                "sha256": f"{rng.integers(1 << 62):016x}" * 4,
                "rows_read": read,
                "rows_accepted": read - bad,
                "rows_quarantined": bad,
            }
        )
    # the columns data_contracts.validate writes (its check ids and the sheets' headers)
    checks = pl.DataFrame(
        [
            ("filings", "format_number", "营业收入(万元)", "error", 17),
            ("filings", "main_revenue_within_revenue", "主营业务收入(万元)", "error", 9),
            ("enterprises", "uscc_valid", "统一社会信用代码", "error", 12),
            ("patents", "application_no_valid", "申请号", "error", 6),
            ("financing", "company_matches_code", "企业名称", "warn", 3),
            ("honors", "honor_known", "资质名称", "warn", 0),
        ],
        schema=["table", "check", "column", "severity", "rows_failing"],
        orient="row",
    )
    return pl.DataFrame(quality), checks, inputs


def _quarantine_csv(path: Path, n: int) -> None:
    rows = [
        {
            "table": "filings",
            "file": "财务快报.csv",
            "row": 57 + 3 * i,
            "column": "营业收入(万元)",
            "value": "12,3a4" if i % 3 else '=cmd|"/c calc"!A1 #*_',
            "check": "format_number",
            "severity": "error",
            "message": f'财务快报.csv 第 {57 + 3 * i} 行, 营业收入(万元): "12,3a4" 不是数值',
        }
        for i in range(n)
    ]
    body = pl.DataFrame(
        rows,
        schema={
            "table": pl.Utf8,
            "file": pl.Utf8,
            "row": pl.Int64,
            "column": pl.Utf8,
            "value": pl.Utf8,
            "check": pl.Utf8,
            "severity": pl.Utf8,
            "message": pl.Utf8,
        },
    ).write_csv()
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))


def _flags_csv(path: Path, n: int) -> None:
    """flags.csv: rows accepted with a warning (a 级别 that does not match the title)."""
    body = pl.DataFrame({
        "table": ["honors"] * n, "file": ["资质荣誉.csv"] * n, "row": [12 + i for i in range(n)],
        "column": ["级别"] * n, "value": ["市级"] * n, "check": ["level_matches_title"] * n,
        "severity": ["warn"] * n,
        "message": [f"资质荣誉.csv 第 {12 + i} 行, 级别: 级别「市级」与专精特新中小企业的认定级别 (省级) 不符"
                    for i in range(n)],
    }, schema={"table": pl.Utf8, "file": pl.Utf8, "row": pl.Int64, "column": pl.Utf8, "value": pl.Utf8,
               "check": pl.Utf8, "severity": pl.Utf8, "message": pl.Utf8}).write_csv()
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))


MEMO = """# 宜兴市2025Q4梯度培育资金分配建议（草稿）

本稿依据政策文件 yixing-default（版本 2026.1，2026-01-01 起执行）和本季度候选名单评分结果，
由 tidu 按模板自动起草；
文中数字均取自分配结果表，逐行计算过程见 allocation.csv 的“理由”列。

## 推荐意见

本期可分配预算 **3,000 万元**。建议资助 24 家企业、共 24 项，占用预算 2,640 万元（88.0%）。

## 理由

1. 测算口径。每一项的期望价值 = 四个季度内新获认定概率 × 层级权重 × 产业链优先系数
   × 工具效应 × 金额。

2. 与固定奖励普惠方案比较。本方案期望价值高 29.2%。

## 风险提示

- 认定概率为模型估计值，工具效应系数为政策设定的假设值，并非实测的政策因果效应。
- 先投后股须在企业下一轮定价融资时转股；协议中应约定到期未转股的处置方式。
- 部分企业的“主导产品属于重点领域”需人工核实，下达前应先完成核实。

## 预算变化的影响

预算增加 20% 时期望价值增加约 11%；减少 20% 时减少约 17%。
"""


def _manifest(inputs: list[dict], n_per_tier: int) -> dict:
    metric = {
        "auc": 0.842,
        "pr_auc": 0.311,
        "recall_top10": 0.573,
        "brier": 0.061,
        "ece": 0.012,
        "rows": 48210,
        "positives": 1533,
    }
    base = {
        "auc": 0.731,
        "pr_auc": 0.182,
        "recall_top10": 0.402,
        "brier": 0.094,
        "ece": 0.051,
        "rows": 48210,
        "positives": 1533,
    }
    per_tier = {
        k: {**metric, "auc": round(0.78 + 0.01 * i, 3), "positives": 80 + 10 * i}
        for i, k in enumerate(TIERS)
        if k != "quasi_unicorn"
    }
    per_tier["quasi_unicorn"] = {"note": "验证期正样本不足 10 个，不计算指标"}
    return {
        "city": "宜兴市",
        "quarter": "2025Q4",
        "data_as_of": "2025-12-31",
        "run_id": "a1b2c3d4e5f6",
        "package_version": "0.1.0",
        "code_sha256": "3f2a9c0d41be" + "0" * 52,
        "inputs": inputs,
        "rulebooks": [
            {
                "tier": k,
                "tier_zh": zh,
                "id": f"{k}-2024",
                "version": "2024.1",
                "source": f"工信部/科技部 {zh}认定办法(2024 年修订)",
                "effective_from": "2024-01-01",
                "effective_to": "2026-03-31" if k in RULES_CHANGING else None,
                "next": {"id": f"{k}-2026", "version": "2026.1", "effective_from": "2026-04-01"}
                if k in RULES_CHANGING else None,
            }
            for k, zh in TIERS.items()
        ],
        "model": {
            "id": "promo-2025Q4-7f3a",
            "window": {
                "train_quarters": ["2019Q1", "2023Q4"],
                "validation_quarters": ["2024Q1", "2024Q4"],
                "positives_by_tier": {k: 120 + 7 * i for i, k in enumerate(TIERS)},
                "best_iteration": 187,
            },
            "metrics": {"overall": metric, **per_tier},
            "baseline_metrics": {"overall": base, **{k: {**base, "auc": 0.7} for k in TIERS}},
        },
        "match_rates": {"patents": 0.97, "projects": 0.91, "financing": 0.88, "honors": 0.995},
        "drop_notes": [DROP_NOTE],
        "honor_names": [{"name": "国家高新技术企业", "read_as": "高新技术企业", "rows": 37},
                        {"name": "瞪羚企业（培育）", "read_as": None, "rows": 4}],
        "seconds": {
            "read": 0.4,
            "contracts": 1.2,
            "features": 2.3,
            "train": 5.1,
            "allocate": 0.6,
        },
        "rank_rule": "排名规则: 先按是否符合认定条件分组(符合 → 待人工核实后可符合 → 暂不符合), "
        "组内按模型预测的认定概率从高到低, 概率相同时按评分高低, 再按统一社会信用代码排序。",
        "budget_wan": 3000,
        "n_per_tier": n_per_tier,
    }


def backtest_table(rng: np.random.Generator, firms: int = 400) -> pl.DataFrame:
    """scoring.backtest.lift_table on made-up outcomes: every tier with 40 firms later recognised,
    except 准独角兽 with 3 (too few for figures: FEW_POSITIVES_TIER)."""
    parts = []
    for key in TIERS:
        positives = 3 if key == FEW_POSITIVES_TIER else 40
        label = np.zeros(firms, dtype=np.int64)
        label[:positives] = 1
        p = np.clip(0.3 * label + rng.random(firms) * 0.7, 0, 1)
        parts.append(pl.DataFrame({
            "uscc": [f"9132{key[:4]}{i:06d}" for i in range(firms)], "tier": key, "label": label, "p": p,
            "score_rules": 0.2 * label + rng.random(firms)}))
    return lift_table(pl.concat(parts), ks=(10, 50))


FEW_POSITIVES_TIER = "quasi_unicorn"
DROP_NOTE = "专利.csv: 没有可选列「授权公告日」, 按空值处理; 未识别的列「授权时间」已忽略"
RULES_CHANGING = ("specialised_sme", "little_giant")   # tiers whose rules the manifest says change after the quarter


def write_run_folder(
    run_dir: Path,
    *,
    n_per_tier: int = 80,
    seed: int = 7,
    empty_allocation: bool = False,
    with_backtest: bool = True,
    quarantine_rows: int = 45,
    flag_rows: int = 3,
) -> Path:
    """Write a run folder at run_dir and return it (created when absent)."""
    rng = np.random.default_rng(seed)
    tables = run_dir / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    firms = _firms(max(n_per_tier * 2, 60), rng)
    cands = _candidates(firms, n_per_tier, rng)
    cands.write_parquet(tables / "candidates.parquet")
    alloc = _allocation(cands, rng, empty_allocation)
    alloc.write_parquet(tables / "allocation.parquet")
    shares = [0.5, 0.75, 1.0, 1.25, 1.5]
    pl.DataFrame(
        {
            "budget_share": shares,
            "budget_wan": [3000 * s for s in shares],
            "expected_value": [2100.0, 2900.0, 3500.0, 3900.0, 4150.0],
            "firms_funded": [12, 18, 24, 29, 33],
        }
    ).write_parquet(tables / "sensitivity.parquet")
    pl.DataFrame(
        {
            # the columns scoring.allocation._baseline writes
            "scheme": ["tidu优化分配", "固定奖励普惠（全部可资助企业）"],
            "expected_value": [3500.0, 2710.0],
            "firms_funded": [24, 407],
            "budget_used_wan": [2980.0, 3000.0],
        }
    ).write_parquet(tables / "baseline.parquet")
    pl.DataFrame(
        {
            "target": [
                "新增专精特新中小企业",
                "新增高新技术企业",
                "规上工业企业研发投入增长",
                "新增瞪羚企业",
            ],
            "target_value": [30.0, 60.0, 12.0, 8.0],
            "current_value": [21.0, 31.0, 9.1, 2.0],
            "projected_value": [33.0, 55.0, 12.5, 5.4],
            "unit": ["家", "家", "%", "家"],
            "status": ["达标", "进度正常", "达标", "存在风险"],
        }
    ).write_parquet(tables / "kpis.parquet")
    (run_dir / "memo.md").write_text(MEMO, encoding="utf-8")
    quality, checks, inputs = _quality(rng)
    quality.write_parquet(tables / "quality.parquet")
    checks.write_parquet(tables / "checks.parquet")
    _quarantine_csv(run_dir / "quarantine.csv", quarantine_rows)
    _flags_csv(run_dir / "flags.csv", flag_rows)
    glob, sample, top = _shap_tables(cands, rng)
    glob.write_parquet(tables / "shap_global.parquet")
    sample.write_parquet(tables / "shap_sample.parquet")
    top.write_parquet(tables / "shap_top.parquet")
    facts, labels = _facts(firms, cands, rng)
    facts.write_parquet(tables / "firm_facts.parquet")
    labels.write_parquet(tables / "firm_facts_labels.parquet")
    if with_backtest:
        backtest_table(rng).write_parquet(tables / "backtest.parquet")
    manifest = _manifest(inputs, n_per_tier)
    (run_dir / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return run_dir
