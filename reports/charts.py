"""Charts for the review pack: matplotlib drawn to SVG with Chinese labels, from saved tables only.

Every chart is drawn on its own `Figure` (no pyplot state) inside an rc_context that names the
CJK face explicitly, so the output does not depend on the font cache or on what ran before. SVGs
carry no date and use a fixed hash salt, so the same table always gives the same bytes. Text
stays text (`svg.fonttype: none`, naming Noto Sans CJK SC): typst sets it with the report's own
embedded font, so chart labels are searchable in the PDF, and drawing is a third faster than
writing every glyph as an outline.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import polars as pl
from matplotlib import cm, font_manager, ticker
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

CJK_FONT_FILE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
CJK_FAMILY = "Noto Sans CJK SC"
POSITIVE = "#ff0051"  # the colours shap uses, so the charts read like the ones analysts know
NEGATIVE = "#008bfb"
NEUTRAL = "#7f8c9a"
SHAP_CMAP = LinearSegmentedColormap.from_list("tidu_shap", [NEGATIVE, "#7b2ff7", POSITIVE])
WIDTH_IN = 6.6


class FontMissingError(RuntimeError):
    """The CJK font the report needs is not installed; Chinese would render as boxes."""


def register_cjk_font(font_file: Path = CJK_FONT_FILE) -> None:
    """Register the Noto Sans CJK collection with matplotlib, or fail with what to install."""
    if not font_file.is_file():
        raise FontMissingError(
            f"CJK font not found: {font_file}. Install the Debian package fonts-noto-cjk "
            f"(apt-get install fonts-noto-cjk); without it Chinese labels render as empty boxes."
        )
    if not any(f.fname == str(font_file) for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(str(font_file))
    if CJK_FAMILY not in {f.name for f in font_manager.fontManager.ttflist}:
        raise FontMissingError(f"{font_file} does not provide the face {CJK_FAMILY!r}")


RC = {
    "font.family": "sans-serif",
    "font.sans-serif": [CJK_FAMILY, "DejaVu Sans"],
    "axes.unicode_minus": False,
    "svg.hashsalt": "tidu",
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
}


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None}, dpi=200)
    return path


def _figure(height_in: float) -> Figure:
    return Figure(figsize=(WIDTH_IN, height_in), layout="constrained")


def _text_width_in(text: str, size_pt: float) -> float:
    """Approximate printed width: a CJK character is one em, anything else about half."""
    ems = sum(1.0 if ord(ch) > 0x2E80 else 0.58 for ch in text)
    return ems * size_pt / 72


def _barh_figure(
    labels: list[str],
    height_in: float,
    *,
    right_in: float = 0.25,
    top_in: float = 0.35,
    bottom_in: float = 0.5,
) -> Figure:
    """A figure for long Chinese y labels, margins computed rather than searched for.

    constrained layout measures every label several times; with two dozen charts per report
    that was most of the render time.
    """
    fig = Figure(figsize=(WIDTH_IN, height_in))
    left = min(
        max((_text_width_in(t, RC["ytick.labelsize"]) for t in labels), default=0.5) + 0.2,
        WIDTH_IN * 0.55,
    )
    fig.subplots_adjust(
        left=left / WIDTH_IN,
        right=1 - right_in / WIDTH_IN,
        top=1 - top_in / height_in,
        bottom=bottom_in / height_in,
    )
    return fig


def waterfall(rows: pl.DataFrame, path: Path, max_features: int = 10,
              probability: float | None = None) -> Path:
    """SHAP waterfall for one scored row: base value → each feature's push → f(x), in log-odds.

    rows: base_value, label, value_text, shap for every feature of that row (shap_top's shape);
    probability: the row's calibrated probability, named in the title beside the f(x) it comes from.
    """
    rows = rows.with_columns(
        pl.col("shap").abs().alias("_abs"), pl.coalesce("label", "feature").alias("label")
    ).sort(["_abs", "label"], descending=[True, False])
    base = float(rows["base_value"][0])
    shown = rows.head(max_features)
    rest = rows.slice(max_features)
    names = [
        f"{lab} = {txt}" if txt else lab
        for lab, txt in zip(shown["label"], shown["value_text"], strict=True)
    ]
    values = shown["shap"].to_list()
    if rest.height:
        names.append(f"其他 {rest.height} 项特征")
        values.append(float(rest["shap"].sum()))
    # drawn bottom-up like shap's waterfall: the smallest push sits on the base value
    names, values = names[::-1], values[::-1]
    with matplotlib.rc_context(RC):
        fig = _barh_figure(names, 0.3 * len(values) + 0.9)
        ax = fig.add_subplot()
        v = np.array(values, dtype=float)
        starts = base + np.concatenate([[0.0], np.cumsum(v)[:-1]])
        ax.barh(
            np.arange(len(v)),
            v,
            left=starts,
            height=0.62,
            color=np.where(v >= 0, POSITIVE, NEGATIVE),
        )
        nudge = 0.02 * (np.abs(v).max() if len(v) else 1.0)
        for y, (s0, vi) in enumerate(zip(starts, v, strict=True)):
            ax.text(
                s0 + vi + (nudge if vi >= 0 else -nudge),
                y,
                f"{vi:+.2f}",
                va="center",
                ha="left" if vi >= 0 else "right",
                fontsize=7.5,
                color="#333333",
            )
        final = base + float(v.sum())
        ax.axvline(base, color=NEUTRAL, lw=0.8, ls="--")
        ax.axvline(final, color="#333333", lw=0.8)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("对数几率 (SHAP 贡献，校准前；越往右认定概率越高)")
        lo, hi = ax.get_xlim()
        pad = 0.12 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)
        became = f"，经校准即认定概率 {probability:.1%}" if probability is not None else ""
        ax.set_title(
            f"基准值 E[f(x)] = {base:.2f}  →  本企业 f(x) = {final:.2f}{became}", loc="left", fontsize=9
        )
        ax.set_ylim(-0.7, len(values) - 0.3)
        return _save(fig, path)


def shap_bar(glob: pl.DataFrame, path: Path, top: int = 20) -> Path:
    """Mean |SHAP| per feature of the firms, largest at the top. The tier one-hots (`tier_*`: the
    tier's own base rate, no attribute of a firm) are left out, as the beeswarm's sample leaves
    them out: the two charts rank the same features (an analysts' audit found the bar's top two
    were "层级: 准独角兽企业" and "层级: 专精特新小巨人", which the beeswarm does not show)."""
    part = (
        glob.filter(~pl.col("feature").str.starts_with("tier_"))
        .with_columns(pl.coalesce("label", "feature").alias("label"))
        .sort(["mean_abs_shap", "label"], descending=[True, False])
        .head(top)
    )
    with matplotlib.rc_context(RC):
        fig = _barh_figure(part["label"].to_list(), 0.26 * part.height + 0.8, top_in=0.15)
        ax = fig.add_subplot()
        y = np.arange(part.height)[::-1]
        ax.barh(y, part["mean_abs_shap"].to_numpy(), color=POSITIVE, height=0.65)
        ax.set_yticks(y, part["label"].to_list())
        ax.set_xlabel("平均 |SHAP 值| (对数几率)")
        ax.set_ylim(-0.6, part.height - 0.4)
        return _save(fig, path)


def _swarm_offsets(shap: np.ndarray, row_height: float = 0.4, nbins: int = 100) -> np.ndarray:
    """Vertical offsets that pile points with similar SHAP values, as shap's beeswarm does."""
    n = len(shap)
    if n == 0:
        return np.zeros(0)
    span = shap.max() - shap.min()
    quant = np.round(nbins * (shap - shap.min()) / (span + 1e-8))
    order = np.lexsort((np.arange(n), quant))
    ys = np.zeros(n)
    layer, last = 0, None
    for i in order:
        if quant[i] != last:
            layer = 0
        ys[i] = math.ceil(layer / 2) * ((layer % 2) * 2 - 1)
        layer += 1
        last = quant[i]
    return ys * 0.9 * (row_height / (np.max(np.abs(ys)) + 1))


def beeswarm(sample: pl.DataFrame, path: Path, top: int = 15) -> Path:
    """One dot per sampled row and feature: SHAP on x, colour = the feature's value (low → high)."""
    sample = sample.with_columns(pl.coalesce("label", "feature").alias("label"))
    order = (
        sample.group_by("feature")
        .agg(pl.col("label").first(), pl.col("shap").abs().mean().alias("m"))
        .sort(["m", "feature"], descending=[True, False])
        .head(top)
    )
    with matplotlib.rc_context(RC):
        fig = _barh_figure(
            order["label"].to_list(), 0.34 * order.height + 0.8, right_in=0.7, top_in=0.15
        )
        ax = fig.add_subplot()
        ax.axvline(0, color=NEUTRAL, lw=0.8)
        n = order.height
        for pos, feature in enumerate(order["feature"]):
            y0 = n - 1 - pos
            part = sample.filter(pl.col("feature") == feature).sort("row_id")
            shap = part["shap"].to_numpy()
            value = part["value"].fill_nan(None).to_numpy().astype(float)
            ys = y0 + _swarm_offsets(shap)
            known = ~np.isnan(value)
            if (~known).any():
                ax.scatter(shap[~known], ys[~known], s=6, c="#bbbbbb", lw=0, rasterized=True)
            if known.any():
                lo, hi = np.nanpercentile(value, [5, 95])
                if hi <= lo:
                    lo, hi = np.nanmin(value), np.nanmax(value)
                scaled = (
                    np.clip((value[known] - lo) / (hi - lo), 0, 1)
                    if hi > lo
                    else np.full(known.sum(), 0.5)
                )
                ax.scatter(
                    shap[known],
                    ys[known],
                    s=6,
                    c=scaled,
                    cmap=SHAP_CMAP,
                    vmin=0,
                    vmax=1,
                    lw=0,
                    rasterized=True,
                )
        ax.set_yticks(range(n), order["label"].to_list()[::-1])
        ax.set_ylim(-0.7, n - 0.3)
        ax.set_xlabel("SHAP 值 (对数几率，对认定概率的影响)")
        mappable = cm.ScalarMappable(cmap=SHAP_CMAP)
        bar = fig.colorbar(mappable, ax=ax, ticks=[0, 1], aspect=40, pad=0.02, fraction=0.03)
        bar.set_ticklabels(["低", "高"])
        bar.set_label("特征取值", labelpad=-6)
        bar.outline.set_visible(False)
        return _save(fig, path)


def sensitivity(sens: pl.DataFrame, path: Path, budget_wan: float | None) -> Path:
    """Expected value and firms funded as the budget moves around the planned amount."""
    part = sens.sort("budget_wan")
    x = part["budget_wan"].to_numpy()
    with matplotlib.rc_context(RC):
        fig = _figure(2.8)
        ax = fig.add_subplot()
        ax.plot(x, part["expected_value"].to_numpy(), marker="o", color=POSITIVE, lw=1.6)
        for xi, yi, n in zip(x, part["expected_value"], part["firms_funded"], strict=True):
            ax.annotate(
                f"{n} 家",
                (xi, yi),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=7.5,
            )
        if budget_wan:
            ax.axvline(budget_wan, color=NEUTRAL, lw=0.9, ls="--")
            ax.text(
                budget_wan,
                ax.get_ylim()[0],
                f" 本期预算 {budget_wan:,.0f} 万元",
                va="bottom",
                fontsize=7.5,
                color="#555555",
            )
        ax.set_xlabel("预算 (万元)")
        ax.set_ylabel("期望价值")
        ax.grid(axis="y", color="#e5e5e5", lw=0.6)
        return _save(fig, path)


BACKTEST_K = 50  # the list length drawn; the table has every k


def backtest(bt: pl.DataFrame, path: Path) -> Path:
    """Recall of the rule-points ranking vs tidu's ranking per tier, at one list length.

    One bar pair per tier: with every k on the axis (8 tiers × 4 lengths) the labels overlap and
    nobody can read them; the table beside the chart carries every k.
    """
    ks = sorted(set(bt["k"].to_list()))
    k = BACKTEST_K if BACKTEST_K in ks else ks[len(ks) // 2]
    bt = bt.filter(pl.col("k") == k)
    labels = list(bt["tier"])
    x = np.arange(bt.height)
    with matplotlib.rc_context(RC):
        fig = _figure(3.0)
        ax = fig.add_subplot()
        ax.bar(
            x - 0.2,
            bt["recall_rules"].to_numpy(),
            width=0.4,
            color=NEUTRAL,
            label="按规则评分排序",
        )
        ax.bar(x + 0.2, bt["recall_tidu"].to_numpy(), width=0.4, color=POSITIVE, label="tidu 排序")
        ax.set_xticks(x, labels, fontsize=7, rotation=20, ha="right")
        ax.set_ylabel(f"召回率 (实际新认定企业被列入前 {k} 名的比例)", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        ax.legend(frameon=False, fontsize=8, loc="upper left")
        ax.grid(axis="y", color="#e5e5e5", lw=0.6)
        return _save(fig, path)
