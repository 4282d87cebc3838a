"""The synthetic city's truth: the probability a firm has at a quarter's end, estimated by
re-simulating the future after it (pipelines/synth.py, `_write_truth`).

Checked here: the drop does not depend on the number of paths; the Monte Carlo mean is calibrated
against the realised recognitions and the realised-path probability; replaying the realised
future reproduces the realised-path probability exactly, and a changed year in progress moves only
the quarters whose next four batches use it; a title valid through the horizon gives 0; the
pending-application posterior and the re-drawn IP and financing counts match the generator's own
forward draws."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from data_contracts.periods import Quarter
from pipelines import synth as S
from pipelines.synth import MAIN_TIERS, TIERS, synthesize

END = Quarter(2025, 4)


def _state(n: int, quarters: int, seed: int) -> SimpleNamespace:
    """The generator's simulation without writing a drop (the steps `synthesize` takes)."""
    clock, streams = S._Clock(END, quarters), S._streams(seed)
    f = S._draw_firms(streams["firms"], streams["names"], streams["codes"], n, clock, False)
    a, _ = S._draw_accounts(streams["annual"], f, clock)
    _, ip = S._draw_patents(streams["patents"], f, clock)
    _, fin = S._draw_financing(streams["financing"], f, clock)
    _, h = S._simulate_honors(streams["honors"], f, a, ip, fin, clock)
    return SimpleNamespace(f=f, a=a, ip=ip, fin=fin, h=h, clock=clock)


class _Replay:
    """The future as it happened (one path), optionally with the R&D of the years asked for
    scaled: a year `_path_probabilities` asks for is one it treats as not closed."""

    def __init__(self, st: SimpleNamespace, firms: np.ndarray, rd_scale: float = 1.0) -> None:
        self.st, self.firms, self.rd_scale = st, firms, rd_scale
        self.hits = {(j, t): hit for hit, j, t in st.h.events}
        self.asked: set[int] = set()

    def year(self, y: int) -> dict[str, np.ndarray]:
        self.asked.add(y)
        out = S._year_accounts(self.st.a, y, self.firms)
        return {**out, "rd": out["rd"] * self.rd_scale}

    def ip(self, s: int) -> SimpleNamespace:
        return S._rows(S._at_quarter(self.st.ip, S._IP_COUNTS, s - self.st.clock.h0, self.st.f.n),
                       self.firms)

    def fin(self, s: int) -> SimpleNamespace:
        return S._rows(S._at_quarter(self.st.fin, S._FIN_COUNTS, s - self.st.clock.h0,
                                     self.st.f.n), self.firms)

    def recognise(self, j: int, t: int, h: np.ndarray) -> np.ndarray:
        hit = np.zeros(self.st.f.n, dtype=bool)
        hit[self.hits.get((S._K[MAIN_TIERS[j]], t), [])] = True
        return hit[self.firms][None, :]


@pytest.fixture(scope="module")
def small() -> SimpleNamespace:
    return _state(400, 8, 7)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


# --- the drop and the files ---------------------------------------------------------------------

@pytest.mark.parametrize("dirty", [False, True])
def test_drop_files_do_not_depend_on_the_number_of_paths(tmp_path, dirty):
    one, six = tmp_path / "one", tmp_path / "six"
    synthesize(one, enterprises=300, quarters=8, seed=3, dirty=dirty, truth_paths=1)
    synthesize(six, enterprises=300, quarters=8, seed=3, dirty=dirty, truth_paths=6)
    assert _digest(one) == _digest(six)
    assert len(_digest(one)) == 6
    path = [pl.read_parquet(d / "_synth" / "truth.parquet") for d in (one, six)]
    assert path[0]["probability_path"].equals(path[1]["probability_path"])
    assert not path[0]["probability"].equals(path[1]["probability"])


def test_same_seed_same_truth(tmp_path):
    for name in ("a", "b"):
        synthesize(tmp_path / name, enterprises=300, quarters=8, seed=5, fmt="parquet",
                   truth_paths=3)
    files = ("truth.parquet", "latent.parquet", "params.json")
    assert all((tmp_path / "a" / "_synth" / f).read_bytes() == (tmp_path / "b" / "_synth" / f)
               .read_bytes() for f in files)
    params = json.loads((tmp_path / "a" / "_synth" / "params.json").read_text(encoding="utf-8"))
    assert params["truth"]["paths"] == 3
    assert 0 < params["truth"]["standard_error_mean"] < params["truth"]["standard_error_max"] < 0.5


# --- calibration ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def city(tmp_path_factory) -> pl.DataFrame:
    """Candidate rows with a complete four-quarter window, their label from the drop's 资质荣誉,
    the Monte Carlo truth and the realised-path probability."""
    drop = tmp_path_factory.mktemp("truth_city")
    synthesize(drop, enterprises=6000, quarters=12, seed=5, fmt="parquet", truth_paths=8)
    key = {t.honor: t.key for t in TIERS}
    recognised = pl.read_parquet(drop / "资质荣誉.parquet").select(
        pl.col("统一社会信用代码").alias("uscc"),
        pl.col("资质名称").replace_strict(key).alias("tier"),
        (pl.col("认定日期").dt.year() * 4 + (pl.col("认定日期").dt.month() - 1) // 3).alias("at"))
    truth = pl.read_parquet(drop / "_synth" / "truth.parquet").with_columns(
        pl.col("uscc", "quarter", "tier").cast(pl.Utf8),
        qi=pl.col("quarter").str.slice(0, 4).cast(pl.Int64) * 4
        + pl.col("quarter").str.slice(5, 1).cast(pl.Int64) - 1)
    return _with_labels(truth, recognised)


def _with_labels(truth: pl.DataFrame, recognised: pl.DataFrame) -> pl.DataFrame:
    rows = truth.filter(~pl.col("holds") & (pl.col("qi") <= END.index - 4))
    hits = (rows.join(recognised, on=["uscc", "tier"])
            .filter((pl.col("at") > pl.col("qi")) & (pl.col("at") <= pl.col("qi") + 4))
            .select("uscc", "quarter", "tier").unique().with_columns(label=pl.lit(1.0)))
    return rows.join(hits, on=["uscc", "quarter", "tier"], how="left").with_columns(
        pl.col("label").fill_null(0.0))


def _z(rows: pl.DataFrame, a: str, b: str) -> float:
    """Mean of a − b over rows in standard errors, the rows of one firm counted as one cluster
    (a firm's quarters share its future)."""
    per_firm = rows.group_by("uscc").agg((pl.col(a) - pl.col(b)).sum()).get_column(a).to_numpy()
    return per_firm.sum() / (np.sqrt(per_firm.size) * per_firm.std())


def test_truth_mean_equals_the_realised_recognition_rate(city):
    assert city.get_column("label").sum() > 1000
    assert abs(_z(city, "label", "probability")) < 3


def test_truth_mean_equals_the_realised_path_mean(city):
    """科技型中小企业 is left out: along the realised path its hazard after an in-horizon
    recognition is counted with `ever` raised, so the path value runs high there (checked below)."""
    rows = city.filter(pl.col("tier") != "tech_sme")
    assert abs(_z(rows, "probability_path", "probability")) < 3.5
    tech = city.filter(pl.col("tier") == "tech_sme")
    assert _z(tech, "probability_path", "probability") > 0


def test_the_truth_is_less_certain_than_the_realised_path(city):
    """Averaging over futures pulls the probabilities together: fewer near 0, a smaller spread."""
    mc, path = city.get_column("probability"), city.get_column("probability_path")
    assert mc.std() < path.std()
    assert (mc < 1e-4).sum() < (path < 1e-4).sum()


# --- the known part stays known ------------------------------------------------------------------

def test_replaying_the_realised_future_gives_the_realised_path_probability(small):
    """Exactly, except 科技型 rows recognised within the horizon (the truth stops its own hazard at
    the first recognition; the path value goes on with `ever` raised)."""
    firms = np.arange(small.f.n)
    path = S._realised_probabilities(small.h, small.clock, 0, small.f.n)
    tech = MAIN_TIERS.index("tech_sme")
    tech_hits = {t: hit for hit, j, t in small.h.events if j == S._K["tech_sme"]}
    raised_ever = 0
    for w, qi in enumerate(small.clock.window):
        replayed = S._path_probabilities(small, firms, 1, qi, _Replay(small, firms))[:, 0]
        recognised = np.zeros(small.f.n, dtype=bool)
        for t in range(qi + 1, qi + 4):
            recognised[tech_hits.get(t, [])] = True
        same = np.ones(replayed.shape, dtype=bool)
        same[tech] = ~recognised
        assert np.array_equal(replayed[same], path[w][same]), Quarter.from_index(qi)
        assert path[w].max() > 0.05
        assert (replayed[tech][recognised] <= path[w][tech][recognised]).all()
        raised_ever += int((path[w][tech] > replayed[tech] + 1e-6).sum())
    assert raised_ever > 0


def test_only_a_year_in_progress_is_drawn_afresh(small):
    """At a Q4's end the year is closed: its accounts stay, so scaling R&D in the future changes
    nothing. At a Q1's end the next four batches (Q2–Q4) use the last closed year. At Q2's and
    Q3's ends next year's Q2/Q3 batches use the year in progress: scaling its R&D moves them."""
    firms = np.arange(small.f.n)
    for qi in small.clock.window:
        base = S._path_probabilities(small, firms, 1, qi, _Replay(small, firms))
        replay = _Replay(small, firms, rd_scale=0.1)
        scaled = S._path_probabilities(small, firms, 1, qi, replay)
        year = qi // 4
        if qi % 4 in (0, 3):
            assert np.array_equal(base, scaled), Quarter.from_index(qi)
            assert replay.asked == set(), Quarter.from_index(qi)
        else:
            assert replay.asked == {year}, Quarter.from_index(qi)
            assert np.abs(base - scaled).max() > 0.02, Quarter.from_index(qi)


def test_a_title_valid_through_the_horizon_gives_probability_zero(small):
    mean, _ = S._expected_probabilities(small, 0, small.f.n, np.random.default_rng(0), 4)
    for w, qi in enumerate(small.clock.window):
        held = small.h.expires[w] > qi + S.HORIZON
        assert held.sum() > 20
        assert (mean[w][held] == 0).all(), Quarter.from_index(qi)
        for j, tier in enumerate(MAIN_TIERS[:-1]):
            assert mean[w, j][~held[j]].max() > 0.05, (Quarter.from_index(qi), tier)


# --- the re-drawn parts follow the generator -----------------------------------------------------

def test_pending_applications_are_granted_as_the_generator_would():
    """The generator's own fates for many applications filed on one day; among those still pending
    after `waited` days, the share granted later and the mean grant day match the posterior draw."""
    rng, m = np.random.default_rng(11), 400_000
    f = SimpleNamespace(z=rng.standard_normal(m), industry=rng.integers(0, len(S.INDUSTRIES), m))
    firm, filed = np.arange(m), np.zeros(m, dtype=np.int64)
    kind, grant, decided, _ = S._patent_fates(rng, f, firm, filed)
    invention, design = (kind == 1) | (kind == 8), kind == 3
    for waited in (200, 450, 800):
        pending = (grant > waited) & ~((grant >= S._NEVER) & (decided <= waited))
        for group in (invention, design, ~invention & ~design):
            sel = pending & group
            if sel.sum() < 2000:
                continue
            drawn = S._pending_grant_days(rng, f.z[sel], filed[sel], invention[sel], design[sel],
                                          waited)
            real_granted, drawn_granted = grant[sel] < S._NEVER, drawn < S._NEVER
            assert abs(real_granted.mean() - drawn_granted.mean()) < 0.02, (waited, sel.sum())
            assert (drawn[drawn_granted] > waited).all()
            if real_granted.sum() < 500:     # e.g. designs: granted within 300 days or never
                assert drawn_granted.sum() < 5 + 2 * real_granted.sum()
                continue
            assert abs(grant[sel][real_granted].mean() - drawn[drawn_granted].mean()) < 8


def test_future_ip_and_financing_counts_follow_the_generator():
    """At a quarter's end, the re-drawn counts of the next three quarter-ends average (over firms)
    to what the generator actually drew, within sampling error: IP counts, the share of firms with
    a new round (a changed valuation), equity raised."""
    st = _state(20_000, 8, 9)
    qi = st.clock.window[2]
    future = S._DrawnFuture(np.random.default_rng(3), st, np.arange(st.f.n), 8, qi)
    before = S._at_quarter(st.ip, S._IP_COUNTS, qi - st.clock.h0, st.f.n)
    before_fin = S._at_quarter(st.fin, S._FIN_COUNTS, qi - st.clock.h0, st.f.n)
    for s in range(qi + 1, qi + 4):
        k = s - st.clock.h0
        real = S._at_quarter(st.ip, S._IP_COUNTS, k, st.f.n)
        for name in S._IP_COUNTS:
            gain = getattr(real, name).astype(float) - getattr(before, name)
            drawn = getattr(future.ip(s), name).mean(axis=0) - getattr(before, name)
            assert abs(gain.mean()) > 5 * np.sqrt(gain.var() / st.f.n), name
            assert abs(gain.mean() - drawn.mean()) < 3.5 * np.sqrt(gain.var() / st.f.n), (name, s)
        real_fin, drawn_fin = S._at_quarter(st.fin, S._FIN_COUNTS, k, st.f.n), future.fin(s)
        moved = (real_fin.valuation != before_fin.valuation).astype(float)
        drawn_moved = (drawn_fin.valuation != before_fin.valuation).mean(axis=0)
        se = np.sqrt(moved.var() / st.f.n)
        assert moved.mean() > 5 * se
        assert abs(moved.mean() - drawn_moved.mean()) < 3.5 * se, s
        raised = real_fin.raised_3y.astype(float)
        se = np.sqrt(raised.var() / st.f.n)
        assert abs(raised.mean() - drawn_fin.raised_3y.mean()) < 3.5 * se, s
