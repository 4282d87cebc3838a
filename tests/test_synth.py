"""The synthetic city: same seed same bytes, the spec's headers, valid identifiers, year-to-date
returns, a truth that is a probability and follows the latent quality, dirty faults that really
are faults, and the demo's named entities. Identifier checks are re-implemented here from
criteria.md §5 so that the generator is not checked against itself."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from data_contracts.periods import Quarter
from pipelines.synth import HEADERS, synthesize

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "input-format.md"
STEMS = ("企业登记", "财务快报", "专利", "重点项目", "融资", "资质荣誉")
MARKERS = {"-", "—", "/", "无"}


# --- independent identifier checks (criteria.md §5) ---------------------------------------------

_A31 = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_A36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def uscc_ok(code: str) -> bool:
    if len(code) != 18 or any(c not in _A31 for c in code):
        return False
    total = sum(_A31.index(c) * pow(3, i, 31) for i, c in enumerate(code[:17]))
    return _A31[(31 - total % 31) % 31] == code[17]


def org_code_ok(code: str) -> bool:
    """GB 11714 check of the 组织机构代码 inside a credit code (characters 9–17)."""
    body, check = code[8:16], code[16]
    r = 11 - sum(_A36.index(c) * w for c, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2))) % 11
    return check == {10: "X", 11: "0"}.get(r, str(r))


def application_no_ok(number: str) -> bool:
    m = re.fullmatch(r"(?:CN)?(\d{12})\.([0-9X])", number)
    if not m:
        return False
    r = sum(int(d) * w for d, w in zip(m.group(1), (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5))) % 11
    return m.group(2) == ("X" if r == 10 else str(r))


def legacy_no_ok(number: str) -> bool:
    if not re.fullmatch(r"\d{15}", number):
        return False
    p = 10
    for d in number[:14]:
        s = (int(d) + p) % 10 or 10
        p = 2 * s % 11
    return (p + int(number[14])) % 10 == 1


def personal_id_ok(number: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(number[:17], weights)) % 11] == number[17]


SECTION_DIVISIONS = {"A": (1, 5), "B": (6, 12), "C": (13, 43), "D": (44, 46), "E": (47, 50),
                     "F": (51, 52), "G": (53, 60), "H": (61, 62), "I": (63, 65), "J": (66, 69),
                     "K": (70, 70), "L": (71, 72), "M": (73, 75), "N": (76, 79), "O": (80, 82),
                     "P": (83, 83), "Q": (84, 85), "R": (86, 90), "S": (91, 96), "T": (97, 97)}


# --- drops, drawn once per module ----------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_drop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    synthesize(out, 400, seed=7, demo=True)
    return out


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("city")
    synthesize(out, 4000, seed=3, fmt="parquet")
    return out


@pytest.fixture(scope="module")
def dirty_drop(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirty")
    summary = synthesize(out, 2000, seed=5, dirty=True)
    return out, summary


def read_csv(path: Path, encoding: str = "utf-8-sig") -> pl.DataFrame:
    text = path.read_bytes().decode(encoding)
    return pl.read_csv(io.BytesIO(text.encode("utf-8")), infer_schema_length=0)


def read_table(drop: Path, stem: str) -> pl.DataFrame:
    """Every cell as text, whatever the file type."""
    if (drop / f"{stem}.parquet").exists():
        frame = pl.read_parquet(drop / f"{stem}.parquet")
        return frame.select(pl.all().cast(pl.Utf8))
    if (drop / f"{stem}.xlsx").exists():
        return pl.read_excel(drop / f"{stem}.xlsx", read_options={"header_row": 1},
                             infer_schema_length=0)
    raw = (drop / f"{stem}.csv").read_bytes()
    try:
        return read_csv(drop / f"{stem}.csv")
    except UnicodeDecodeError:
        return pl.read_csv(io.BytesIO(raw.decode("gb18030").encode("utf-8")), infer_schema_length=0)


def spec_headers() -> dict[str, list[str]]:
    """The header column of each table section of input-format.md."""
    if not SPEC.exists():
        pytest.skip("../shared/spec/input-format.md is not present")
    out: dict[str, list[str]] = {}
    stem = None
    for line in SPEC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"## \w+ \((\S+)\)", line)
        if m:
            stem = m.group(1)
            out[stem] = []
        elif stem and line.startswith("| ") and not line.startswith(("| header", "|---")):
            out[stem].append(line.split("|")[1].strip())
    return out


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- clean drops ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{"demo": True}, {"fmt": "parquet"}, {"dirty": True}])
def test_same_arguments_give_the_same_bytes(tmp_path, kwargs):
    synthesize(tmp_path / "a", 150, seed=11, **kwargs)
    synthesize(tmp_path / "b", 150, seed=11, **kwargs)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    synthesize(tmp_path / "c", 150, seed=12, **kwargs)
    assert digests(tmp_path / "a") != digests(tmp_path / "c")


def test_headers_are_the_specs(demo_drop):
    spec = spec_headers()
    for stem in STEMS:
        text = (demo_drop / f"{stem}.csv").read_text(encoding="utf-8-sig")
        header = text.splitlines()[0].split(",")
        extra = set(header) - set(spec[stem])
        assert [h for h in header if h in spec[stem]] == spec[stem], stem
        assert extra <= {"曾用名"}, (stem, extra)   # the registry's former names (architecture.md)
        assert tuple(header) == HEADERS[stem]
    assert (demo_drop / "企业登记.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_credit_codes_are_valid_and_local(city):
    ent = pl.read_parquet(city / "企业登记.parquet")
    codes = ent["统一社会信用代码"].to_list()
    assert len(set(codes)) == len(codes)
    assert all(uscc_ok(c) and org_code_ok(c) for c in codes)
    assert {c[:2] for c in codes} == {"91"}
    regions = {c[2:8] for c in codes}
    assert "320282" in regions and regions <= {"320282", "320200", "320205", "320206", "320211",
                                               "320213", "320214"}
    # Firms registered since the 2015 reform carry an MA… 组织机构代码.
    new = ent.filter(pl.col("成立日期") >= pl.date(2016, 1, 1))["统一社会信用代码"].to_list()
    assert new and all(c[8:10] == "MA" for c in new)


def test_registry_values_are_plausible(city):
    ent = pl.read_parquet(city / "企业登记.parquet")
    assert ent["企业名称"].n_unique() == ent.height
    for code in ent["行业代码"].unique().to_list():
        lo, hi = SECTION_DIVISIONS[code[0]]
        assert re.fullmatch(r"[A-T]\d{2,4}", code) and lo <= int(code[1:3]) <= hi, code
    assert set(ent["登记状态"].unique().to_list()) == {"存续", "在业", "注销", "吊销", "迁出"}
    assert 0.2 < ent["产业链环节"].is_not_null().mean() < 0.4
    assert ent["成立日期"].min() >= dt.date(1995, 1, 1)
    assert ent["成立日期"].max() <= Quarter(2025, 4).end
    ids = ent["法定代表人证件号"].drop_nulls().to_list()
    assert ids and all(len(i) == 18 and not personal_id_ok(i) for i in ids)  # fake on purpose


def test_application_numbers_are_valid_and_agree_with_the_type(city):
    pat = pl.read_parquet(city / "专利.parquet")
    numbers = pat["申请号"].to_list()
    assert len(set(numbers)) == len(numbers)
    assert all(application_no_ok(n) for n in numbers)
    kind = {"1": "发明", "8": "发明", "2": "实用新型", "9": "实用新型", "3": "外观设计"}
    assert all(kind[n[4]] == t for n, t in zip(numbers, pat["专利类型"].to_list()))
    assert (pat["授权公告日"].is_null() | (pat["授权公告日"] >= pat["申请日"])).all()
    assert pat.filter(pl.col("授权公告日").is_null() & (pl.col("法律状态") == "有效")).height == 0
    # Some applications are joint with a university: a firm name, ';', the university.
    joint = pat.filter(pl.col("申请人").str.contains(";"))["申请人"].to_list()
    assert joint and any(a.split(";")[1].endswith("大学") for a in joint)
    names = set(pl.read_parquet(city / "企业登记.parquet")["企业名称"].to_list())
    assert all(a.split(";")[0] in names for a in pat["申请人"].to_list())


def test_year_to_date_flows_never_fall_within_a_year(city):
    fil = pl.read_parquet(city / "财务快报.parquet")
    assert fil.select(pl.col("报告期").str.contains(r"^\d{4}Q[1-4]$").all()).item()
    fil = fil.with_columns(year=pl.col("报告期").str.slice(0, 4)).sort("统一社会信用代码", "报告期")
    flows = ["营业收入(万元)", "主营业务收入(万元)", "研发费用(万元)", "出口额(万元)"]
    falls = fil.select(
        [(pl.col(c).diff().over("统一社会信用代码", "year") < 0).sum().alias(c) for c in flows])
    assert falls.row(0) == (0, 0, 0, 0)
    assert (fil["主营业务收入(万元)"] <= fil["营业收入(万元)"]).all()
    assert (fil["研发人员数"] <= fil["从业人员期末人数"]).all()
    assert fil.select(pl.struct("统一社会信用代码", "报告期").is_unique().all()).item()
    assert set(fil["统一社会信用代码"].to_list()) <= set(pl.read_parquet(city / "企业登记.parquet")[
        "统一社会信用代码"].to_list())


def test_honors_follow_their_rules(city):
    hon = pl.read_parquet(city / "资质荣誉.parquet")
    assert hon["认定日期"].min() < Quarter(2023, 1).start            # some pre-date the window
    three = hon.filter(pl.col("资质名称").is_in(["高新技术企业", "专精特新中小企业", "专精特新小巨人"]))
    assert (three["有效期至"] == three["认定日期"].dt.offset_by("3y")).all()
    levels = dict(hon.select("资质名称", "级别").unique().iter_rows())
    assert levels["专精特新小巨人"] == "国家级" and levels["专精特新中小企业"] == "省级"
    assert levels["雏鹰企业"] == "市级" and levels["瞪羚企业"] == "市级"
    # The ladder: almost every 小巨人 already held 专精特新 before.
    first = hon.group_by("统一社会信用代码", "资质名称").agg(pl.col("认定日期").min())
    giant = first.filter(pl.col("资质名称") == "专精特新小巨人")
    spec = first.filter(pl.col("资质名称") == "专精特新中小企业")
    climbed = giant.join(spec, on="统一社会信用代码", how="left", suffix="_prev").select(
        (pl.col("认定日期_prev") < pl.col("认定日期")).fill_null(False).mean()).item()
    assert climbed > 0.8


def test_truth_is_a_probability_that_rises_with_latent_quality(city):
    truth = pl.read_parquet(city / "_synth" / "truth.parquet")
    latent = pl.read_parquet(city / "_synth" / "latent.parquet")
    assert truth["probability"].min() >= 0 and truth["probability"].max() <= 1
    assert set(truth["tier"].unique().to_list()) == {
        "innovative_sme", "specialised_sme", "little_giant", "high_tech_enterprise", "tech_sme",
        "eaglet", "gazelle", "quasi_unicorn"}
    by = (truth.join(latent, on="uscc")
          .with_columns(upper=pl.col("latent") > pl.col("latent").median())
          .group_by("tier", "upper").agg(pl.col("probability").mean())
          .pivot(on="upper", index="tier", values="probability"))
    assert (by["true"] > by["false"]).all(), by


def test_truth_matches_the_recognitions_that_happened(city):
    """Mean true probability ≈ share of candidates newly recognised within four quarters."""
    from data_contracts.honors import HONOR_KEYS

    year, q = pl.col("quarter").str.slice(0, 4), pl.col("quarter").str.slice(5)
    truth = pl.read_parquet(city / "_synth" / "truth.parquet").with_columns(
        qi=year.cast(pl.Int64) * 4 + q.cast(pl.Int64) - 1)
    rec = pl.read_parquet(city / "_synth" / ".." / "资质荣誉.parquet").select(
        pl.col("统一社会信用代码").alias("uscc"), pl.col("资质名称").replace_strict(HONOR_KEYS).alias("tier"),
        (pl.col("认定日期").dt.year() * 4 + (pl.col("认定日期").dt.month() - 1) // 3).alias("rq"))
    cand = truth.filter(~pl.col("holds") & (pl.col("qi") + 4 <= truth["qi"].max()))
    hits = (cand.join(rec, on=["uscc", "tier"])
            .filter((pl.col("rq") > pl.col("qi")) & (pl.col("rq") <= pl.col("qi") + 4))
            .select("uscc", "quarter", "tier").unique())
    expected, observed = cand["probability"].sum(), hits.height
    assert observed > 500
    assert abs(observed - expected) / expected < 0.15, (observed, expected)


def test_recognitions_are_neither_rare_nor_everywhere(city):
    hon = pl.read_parquet(city / "资质荣誉.parquet").filter(pl.col("认定日期").dt.year() == 2024)
    per_year = dict(hon.group_by("资质名称").len().iter_rows())
    firms = pl.read_parquet(city / "企业登记.parquet").height
    for honor, low, high in (("创新型中小企业", 0.005, 0.05), ("专精特新中小企业", 0.001, 0.03),
                             ("高新技术企业", 0.003, 0.04), ("科技型中小企业", 0.003, 0.04),
                             ("雏鹰企业", 0.003, 0.04), ("瞪羚企业", 0.001, 0.03),
                             ("专精特新小巨人", 0.0002, 0.005)):
        assert low < per_year.get(honor, 0) / firms < high, (honor, per_year.get(honor))


def test_demo_embeds_the_named_entities(demo_drop, city):
    ent = read_csv(demo_drop / "企业登记.csv")
    leader = ent.filter(pl.col("企业名称") == "易鸿智能装备(宜兴)有限公司")
    assert leader.height == 1 and leader["链主企业"].item() == "是"
    assert ent.filter(pl.col("企业名称") == "无锡市海容电子有限公司").height == 1
    prj = read_csv(demo_drop / "重点项目.csv").filter(pl.col("项目名称") == "超级陶瓷电容器与智能传感器制造项目")
    assert prj.height > 0
    assert set(prj["项目单位"].to_list()) == {"无锡市海容电子有限公司"}
    assert set(prj["起止年限"].to_list()) == {"2022-2029"}
    assert set(prj["计划总投资(亿元)"].cast(pl.Float64).to_list()) == {103.0}
    assert prj.filter(pl.col("年度") == "2023")["年度计划投资(亿元)"].cast(pl.Float64).to_list() == [8.0]
    assert set(ent["所属板块"].to_list()) >= {"环科园", "经开区", "宜城街道", "万石镇"}
    assert ent.filter(pl.col("企业名称").str.contains("示例")).height >= 5   # placeholders, marked
    names = pl.read_parquet(city / "企业登记.parquet")["企业名称"]
    assert not names.str.contains("易鸿|海容|示例").any()                    # only with demo=True


# --- dirty drops ---------------------------------------------------------------------------

def test_dirty_drop_mixes_formats_and_rates(dirty_drop):
    drop, summary = dirty_drop
    assert (drop / "重点项目.xlsx").exists() and (drop / "资质荣誉.parquet").exists()
    raw = (drop / "财务快报.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert raw.decode("gb18030").startswith("统一社会信用代码,报告期")
    faults = read_csv(drop / "_synth" / "faults.csv")
    assert sum(summary.faults.values()) == faults.height
    rate = faults.filter(pl.col("row").is_not_null()).height / sum(summary.rows.values())
    assert 0.005 <= rate <= 0.02, rate
    assert {"unit_yuan", "revision", "ytd_decrease", "exact_duplicate", "conflicting_duplicate",
            "bad_uscc_check", "bad_uscc_length", "legacy_registration_no", "period_form",
            "date_format", "thousands_separator", "missing_marker", "amount_undisclosed",
            "formula_injection", "applicant_bracket_width", "applicant_spaces",
            "applicant_org_form", "applicant_former_name", "title_row",
            "encoding_gb18030"} <= set(summary.faults)


def _row(frame: pl.DataFrame, row: int, file: str) -> dict:
    return frame.row(int(row) - (3 if file.endswith(".xlsx") else 2), named=True)


def test_faults_point_at_rows_that_are_faulty(dirty_drop):
    drop, _ = dirty_drop
    tables = {stem: read_table(drop, stem) for stem in STEMS}
    by_file = {f"{stem}{ext}": tables[stem]
               for stem in STEMS for ext in (".csv", ".xlsx", ".parquet")}
    ent = tables["企业登记"]
    names = set(ent["企业名称"].to_list())
    former = set(ent["曾用名"].drop_nulls().to_list())
    fil = tables["财务快报"].with_columns(
        rev=pl.col("营业收入(万元)").str.replace_all(",", "").cast(pl.Float64, strict=False),
        i=pl.int_range(pl.len()) + 2)
    faults = read_csv(drop / "_synth" / "faults.csv").filter(pl.col("row").is_not_null())
    for f in faults.iter_rows(named=True):
        frame = by_file[f["file"]]
        row = _row(frame, f["row"], f["file"])
        value = row.get(f["column"]) if f["column"] else None
        kind = f["kind"]
        where = (f["file"], f["row"], kind)
        if kind == "unit_yuan":
            others = fil.filter((pl.col("统一社会信用代码") == row["统一社会信用代码"])
                                & (pl.col("i") != int(f["row"])))["rev"].drop_nulls()
            assert float(value.replace(",", "")) / others.median() > 1000, where
        elif kind == "ytd_decrease":
            prev = fil.filter((pl.col("统一社会信用代码") == row["统一社会信用代码"])
                              & (pl.col("i") < int(f["row"]))
                              & (pl.col("报告期").str.slice(0, 4) == row["报告期"][:4]))
            assert float(value) < prev["rev"].max(), where
        elif kind == "revision":
            same = fil.filter((pl.col("统一社会信用代码") == row["统一社会信用代码"])
                              & (pl.col("报告期") == row["报告期"]))
            assert same.height == 2 and same["rev"].n_unique() == 2, where
        elif kind == "exact_duplicate":
            same = pl.all_horizontal(pl.col(c).eq_missing(pl.lit(v, pl.Utf8))
                                     for c, v in row.items())
            assert frame.filter(same).height >= 2, where
        elif kind == "conflicting_duplicate":
            key = "申请号" if f["table"] == "patents" else "统一社会信用代码"
            same = frame.filter(pl.col(key) == row[key])
            assert same.height == 2 and same[f["column"]].n_unique() == 2, where
        elif kind == "bad_uscc_check":
            assert len(value) == 18 and not uscc_ok(value), where
        elif kind == "bad_uscc_length":
            assert len(value) == 17, where
        elif kind == "legacy_registration_no":
            assert legacy_no_ok(value), where
        elif kind == "period_form":
            assert not re.fullmatch(r"\d{4}Q[1-4]", value), where
        elif kind == "date_format":
            assert not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value), where
        elif kind == "thousands_separator":
            assert "," in value, where
        elif kind in ("missing_marker",):
            assert value in MARKERS, where
        elif kind == "amount_undisclosed":
            assert not re.fullmatch(r"[\d.,]+", value), where
        elif kind == "formula_injection":
            assert value.startswith("="), where
        elif kind == "application_no_form":
            assert value.startswith("CN") and application_no_ok(value), where
        elif kind.startswith("applicant_"):
            first = value.split(";")[0]
            assert first not in names, where
            if kind == "applicant_former_name":
                assert first in former, where
        elif kind == "title_row":
            continue
        else:
            raise AssertionError(f"untested fault kind {kind}")


def test_undeclared_rows_are_clean(dirty_drop):
    """faults.csv is complete for the faults a check can find on its own."""
    drop, _ = dirty_drop
    faults = read_csv(drop / "_synth" / "faults.csv")
    fil = read_table(drop, "财务快报")
    odd_periods = fil.with_columns(row=pl.int_range(pl.len()) + 2).filter(
        ~pl.col("报告期").str.contains(r"^\d{4}Q[1-4]$"))["row"].cast(pl.Utf8).to_list()
    declared = faults.filter(pl.col("kind") == "period_form")["row"].to_list()
    assert sorted(odd_periods) == sorted(declared)
    for stem in ("企业登记", "财务快报", "资质荣誉"):
        frame = read_table(drop, stem).with_columns(row=(pl.int_range(pl.len()) + 2).cast(pl.Utf8))
        bad = frame.filter(~pl.col("统一社会信用代码").map_elements(uscc_ok, return_dtype=pl.Boolean))
        declared = faults.filter(pl.col("kind").str.contains("uscc|legacy")
                                 & pl.col("file").str.starts_with(stem))
        assert sorted(bad["row"].to_list()) == sorted(declared["row"].to_list()), stem


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError):
        synthesize(tmp_path, 10, fmt="xlsx")
    with pytest.raises(ValueError):
        synthesize(tmp_path, 5, demo=True)


def test_params_and_latent_are_written(demo_drop):
    import json

    params = json.loads((demo_drop / "_synth" / "params.json").read_text(encoding="utf-8"))
    assert params["enterprises"] == 400 and params["seed"] == 7 and params["demo"] is True
    latent = pl.read_parquet(demo_drop / "_synth" / "latent.parquet")
    assert latent.height == 400 and np.isfinite(latent["latent"].to_numpy()).all()


def test_the_entry_tier_is_granted_under_its_2026_name_from_april_2026(tmp_path):
    """工信部企业〔2026〕2号: from 2026-04-01 the entry tier's recognitions are 科技和创新型中小企业 (which
    tidu counts as the 创新型中小企业 tier), before it 创新型中小企业."""
    from pipelines.synth import synthesize

    synthesize(tmp_path / "drop", enterprises=1000, quarters=8, seed=3, end_quarter=Quarter(2026, 3))
    honors = pl.read_csv(tmp_path / "drop" / "资质荣誉.csv", infer_schema=False)
    entry = honors.filter(pl.col("资质名称").is_in(["创新型中小企业", "科技和创新型中小企业"]))
    after = pl.col("认定日期") >= "2026-04-01"
    assert set(entry.filter(after)["资质名称"]) == {"科技和创新型中小企业"}
    assert set(entry.filter(~after)["资质名称"]) == {"创新型中小企业"}


@pytest.mark.parametrize("enterprises,quarters", [(1, 1), (2, 12), (7, 3)])
@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "dirty"])
def test_a_drop_of_any_size_is_written(tmp_path, enterprises, quarters, dirty):
    """outputs.md: synth writes a drop of any size. One firm has no patents, and a dirty drop's
    faults then have fewer rows than they ask for: neither may break the generator."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    drop = tmp_path / "drop"
    args = ["synth", "--enterprises", str(enterprises), "--quarters", str(quarters), "--seed", "5",
            "--out", str(drop)] + (["--dirty"] if dirty else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    tables = {p.stem for p in drop.iterdir() if p.suffix in (".csv", ".xlsx", ".parquet")}
    assert tables == {"企业登记", "财务快报", "专利", "重点项目", "融资", "资质荣誉"}
    if not dirty:   # a dirty drop writes some tables as xlsx or parquet, with title rows and duplicates
        registry = pl.read_csv(drop / "企业登记.csv", infer_schema=False)
        assert registry.height == enterprises
