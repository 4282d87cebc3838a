"""No look-ahead: a feature of quarter q reads no row dated after q's end.

Build the panel from random tables, then alter, delete and append only rows dated after a
cutoff quarter — one input table at a time, then all together — and check that every panel row
of a quarter ≤ the cutoff is exactly unchanged, while later quarters do change (so the
alteration is not a no-op).
"""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from data_contracts.periods import Quarter, quarter_range
from features.panel import INPUT_SCHEMAS, build_panel

QUARTERS = quarter_range(Quarter(2022, 1), Quarter(2025, 4))
HONORS = ["高新技术企业", "科技型中小企业", "专精特新中小企业", "专精特新小巨人", "雏鹰企业", "瞪羚企业"]


def day(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randrange((last - first).days + 1))


def filing(rng: random.Random, uscc: str, quarter: Quarter) -> dict:
    revenue = rng.uniform(10, 1000) * quarter.q
    return {"uscc": uscc, "period": str(quarter), "revenue_ytd": revenue,
            "main_revenue_ytd": revenue * rng.uniform(0.5, 1), "profit_ytd": rng.uniform(-50, 50),
            "net_profit_ytd": rng.uniform(-50, 50), "rd_expense_ytd": revenue * rng.uniform(0, 0.1),
            "total_assets": rng.uniform(100, 900), "total_liabilities": rng.uniform(0, 600),
            "employees": rng.randrange(1, 300), "rd_staff": rng.randrange(0, 30)}


def patent(rng: random.Random, no: str, first: dt.date, last: dt.date) -> dict:
    filed = day(rng, first, last)
    granted = None if rng.random() < 0.3 else filed + dt.timedelta(days=rng.randrange(0, 1500))
    return {"application_no": no, "patent_type": rng.choice(["发明", "实用新型", "外观设计"]),
            "filed_on": filed, "granted_on": granted,
            "legal_status": rng.choice(["有效", "有效", "失效", "审中"])}


def event(rng: random.Random, uscc: str, first: dt.date, last: dt.date) -> dict:
    return {"uscc": uscc, "financed_on": day(rng, first, last),
            "amount": None if rng.random() < 0.2 else rng.uniform(100, 5000),
            "currency": rng.choice(["人民币", "美元", None]),
            "post_money": None if rng.random() < 0.4 else rng.uniform(1e4, 1e5)}


def honor(rng: random.Random, uscc: str, first: dt.date, last: dt.date) -> dict:
    recognized = day(rng, first, last)
    valid = None if rng.random() < 0.3 else recognized + dt.timedelta(days=rng.randrange(300, 1500))
    return {"uscc": uscc, "honor": rng.choice(HONORS), "recognized_on": recognized,
            "valid_until": valid}


def project(rng: random.Random, uscc: str, year: int) -> dict:
    return {"uscc": uscc, "year": year, "planned_year": rng.uniform(0.1, 5),
            "completed_year": None if rng.random() < 0.3 else rng.uniform(0, 5)}


def random_tables(seed: int = 11, n: int = 40) -> dict[str, pl.DataFrame]:
    rng = random.Random(seed)
    firms = [{"uscc": f"9132{i:014d}", "name": f"企业{i}",
              "founded_on": day(rng, dt.date(2012, 1, 1), dt.date(2025, 6, 30)),
              "district": rng.choice(["环科园", "经开区"]),
              "chain_layer": rng.choice([None, "基础支撑层", "技术产品层", "应用示范层"]),
              "chain_leader": rng.random() < 0.15, "status": rng.choice(["存续", "注销"])}
             for i in range(n)]
    for firm in firms:  # no 链主 in the application layer until one is founded after the cutoff
        firm["chain_leader"] = firm["chain_leader"] and firm["chain_layer"] != "应用示范层"
    usccs = [f["uscc"] for f in firms]
    filings = [filing(rng, u, q) for u in usccs
               for q in quarter_range(Quarter(2018, 1), Quarter(2025, 4)) if rng.random() < 0.9]
    patents = [patent(rng, f"P{i}", dt.date(2008, 1, 1), dt.date(2026, 6, 30)) for i in range(150)]
    owners = [{"application_no": p["application_no"], "uscc": u}
              for p in patents for u in rng.sample(usccs, rng.choice([1, 1, 2]))]
    return {
        "enterprises": pl.DataFrame(firms, schema=INPUT_SCHEMAS["enterprises"]),
        "filings": pl.DataFrame(filings, schema=INPUT_SCHEMAS["filings"]),
        "patents": pl.DataFrame(patents, schema=INPUT_SCHEMAS["patents"]),
        "patent_owners": pl.DataFrame(owners, schema=INPUT_SCHEMAS["patent_owners"]),
        "financing": pl.DataFrame([event(rng, rng.choice(usccs), dt.date(2016, 1, 1),
                                         dt.date(2026, 6, 30)) for _ in range(80)],
                                  schema=INPUT_SCHEMAS["financing"]),
        "honors": pl.DataFrame([honor(rng, rng.choice(usccs), dt.date(2016, 1, 1),
                                      dt.date(2026, 6, 30)) for _ in range(80)],
                               schema=INPUT_SCHEMAS["honors"]),
        "projects": pl.DataFrame([project(rng, rng.choice(usccs), y) for y in range(2021, 2027)
                                  for _ in range(8)], schema=INPUT_SCHEMAS["projects"]),
    }


# ── alter only what is dated after the cutoff ─────────────────────────────────────────────

def after_cutoff(name: str, tables: dict[str, pl.DataFrame], cut: Quarter, rng: random.Random
                 ) -> dict[str, pl.DataFrame]:
    """Replace table `name` (and its link table) with one whose rows dated after `cut` are
    changed, partly deleted and added to; rows dated by `cut`'s end are untouched."""
    end, later = cut.end, cut.end + dt.timedelta(days=1)
    horizon = dt.date(2026, 12, 31)
    out = dict(tables)
    t = tables[name]
    usccs = tables["enterprises"]["uscc"].to_list()
    if name == "enterprises":
        late = t.filter(pl.col("founded_on") > end)
        new = [{"uscc": f"9133{i:014d}", "name": "新企业", "founded_on": day(rng, later, horizon),
                "district": d, "chain_layer": "应用示范层", "chain_leader": True,
                "status": "存续"} for i, d in enumerate(["环科园", "经开区"])]
        changed = late.with_columns(pl.lit(True).alias("chain_leader"),
                                    pl.lit("技术产品层").alias("chain_layer"),
                                    pl.lit("改名").alias("name"))
        out[name] = pl.concat([t.filter(pl.col("founded_on") <= end), changed,
                               pl.DataFrame(new, schema=INPUT_SCHEMAS[name])])
    elif name == "filings":
        period_qi = pl.col("period").str.slice(0, 4).cast(pl.Int32) * 4 + pl.col(
            "period").str.slice(5, 1).cast(pl.Int32) - 1
        late = t.filter(period_qi > cut.index)
        kept = late.sample(fraction=0.7, seed=1).with_columns(
            pl.col("revenue_ytd") * 3, pl.col("total_assets") + 1, pl.col("employees") * 2)
        new = [filing(rng, u, Quarter(2026, q)) for u in usccs for q in (1, 2)]
        out[name] = pl.concat([t.filter(period_qi <= cut.index), kept,
                               pl.DataFrame(new, schema=INPUT_SCHEMAS[name])])
    elif name == "patents":
        # filed later: anything may change; filed earlier but granted later: only the grant date
        late = t.filter(pl.col("filed_on") > end).with_columns(
            pl.lit("发明").alias("patent_type"), pl.lit(None, pl.Date).alias("granted_on"))
        early = t.filter(pl.col("filed_on") <= end).with_columns(
            pl.when(pl.col("granted_on") > end).then(pl.lit(horizon))
            .otherwise(pl.col("granted_on")).alias("granted_on"))
        new = [patent(rng, f"N{i}", later, horizon) for i in range(20)]
        out[name] = pl.concat([early, late, pl.DataFrame(new, schema=INPUT_SCHEMAS[name])])
        out["patent_owners"] = pl.concat([tables["patent_owners"], pl.DataFrame(
            [{"application_no": p["application_no"], "uscc": rng.choice(usccs)} for p in new],
            schema=INPUT_SCHEMAS["patent_owners"])])
    elif name in ("financing", "honors"):
        column = "financed_on" if name == "financing" else "recognized_on"
        make = event if name == "financing" else honor
        late = t.filter(pl.col(column) > end).sample(fraction=0.6, seed=2)
        new = [make(rng, rng.choice(usccs), later, horizon) for _ in range(30)]
        out[name] = pl.concat([t.filter(pl.col(column) <= end), late,
                               pl.DataFrame(new, schema=INPUT_SCHEMAS[name])])
    elif name == "projects":
        late = t.filter(pl.col("year") > cut.year).with_columns(pl.col("planned_year") * 5)
        new = [project(rng, rng.choice(usccs), cut.year + 1) for _ in range(10)]
        out[name] = pl.concat([t.filter(pl.col("year") <= cut.year), late,
                               pl.DataFrame(new, schema=INPUT_SCHEMAS[name])])
    return out


TABLES = ("enterprises", "filings", "patents", "financing", "honors", "projects")


@pytest.fixture(scope="module")
def base() -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    tables = random_tables()
    return tables, build_panel(tables, QUARTERS)


def up_to(panel: pl.DataFrame, cut: Quarter) -> pl.DataFrame:
    return panel.filter(pl.col("quarter") <= str(cut))


@pytest.mark.parametrize("cut", [Quarter(2023, 3), Quarter(2024, 4)])
@pytest.mark.parametrize("name", [*TABLES, "all"])
def test_rows_dated_after_the_quarter_change_nothing_up_to_it(base, name, cut):
    tables, before = base
    rng = random.Random(5)
    altered = tables
    for table in (TABLES if name == "all" else (name,)):
        altered = after_cutoff(table, altered, cut, rng)
    after = build_panel(altered, QUARTERS)
    assert_frame_equal(up_to(after, cut), up_to(before, cut), check_exact=True)
    later_before = before.filter(pl.col("quarter") > str(cut))
    later_after = after.filter(pl.col("quarter") > str(cut))
    assert not later_after.equals(later_before), f"altering {name} after {cut} changed nothing"
