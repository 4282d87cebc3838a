"""The synthetic city: a drop folder in the input format, with the generator's truth beside it.

`synthesize` draws a city of firms around 宜兴 (registry, quarterly returns, patents, key projects,
financing, honors) from one seed. A latent quality per firm drives growth, R&D, patents, financing
and, through per-quarter hazards on observable terms, new recognitions on the two ladders. The
drop is written exactly as ../shared/spec/input-format.md says; the truth (the probability of a new
recognition within four quarters given everything the generator knows at the quarter's end, by
re-simulating the future after it, and the latent quality) goes to `<drop>/_synth/`, which the
reader ignores. `dirty=True` adds the hazards real drops carry and lists
each one in `_synth/faults.csv`. Everything is vectorised over firms; loops run over years,
quarters and tiers only. Same arguments, same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from data_contracts.periods import Quarter
from pipelines import demo_city

GENERATOR_VERSION = "tidu-synth-1"

# --- the drop's tables --------------------------------------------------------------------------

HEADERS: dict[str, tuple[str, ...]] = {
    "企业登记": ("统一社会信用代码", "企业名称", "成立日期", "注册资本(万元)", "行业代码", "所属板块",
                 "登记状态", "产业链环节", "链主企业", "曾用名", "法定代表人证件号"),
    "财务快报": ("统一社会信用代码", "报告期", "营业收入(万元)", "主营业务收入(万元)", "利润总额(万元)",
                 "净利润(万元)", "研发费用(万元)", "资产总计(万元)", "负债合计(万元)", "从业人员期末人数",
                 "研发人员数", "出口额(万元)"),
    "专利": ("申请号", "专利名称", "专利类型", "申请日", "授权公告日", "法律状态", "申请人", "主分类号"),
    "重点项目": ("项目名称", "项目单位", "起止年限", "计划总投资(亿元)", "年度", "年度计划投资(亿元)",
                 "年度完成投资(亿元)", "所属板块"),
    "融资": ("统一社会信用代码", "企业名称", "融资日期", "轮次", "融资金额(万元)", "币种", "投后估值(万元)",
             "投资方"),
    "资质荣誉": ("统一社会信用代码", "资质名称", "级别", "认定日期", "有效期至"),
}
TABLE_OF_STEM = {"企业登记": "enterprises", "财务快报": "filings", "专利": "patents",
                 "重点项目": "projects", "融资": "financing", "资质荣誉": "honors"}
MONEY_COLUMNS = ("营业收入(万元)", "主营业务收入(万元)", "利润总额(万元)", "净利润(万元)", "研发费用(万元)",
                 "资产总计(万元)", "负债合计(万元)", "出口额(万元)")

BURN_IN_QUARTERS = 20          # simulated before the window so that honors pre-date it
HORIZON = 4                    # quarters ahead in the truth
USD_RATE = 7.1                 # 人民币 per 美元 for the generator's own comparisons
INNOVATIVE_FROM = Quarter(2022, 3)   # 63号 (创新型中小企业) in force from 2022-08-01
# 工信部企业〔2026〕2号: from this day the entry tier is granted as 科技和创新型中小企业
TECH_INNOVATIVE_FROM, TECH_INNOVATIVE_NAME = dt.date(2026, 4, 1), "科技和创新型中小企业"
_EPOCH = np.datetime64("1970-01-01", "D")
_NEVER = np.int32(2**30)


@dataclass(frozen=True)
class SynthSummary:
    """What `synthesize` wrote: data rows per table, the files, the truth folder, dirty faults."""

    out: Path
    rows: dict[str, int]
    files: dict[str, Path]
    truth_dir: Path
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


DEFAULT_END = Quarter(2025, 4)
TRUTH_PATHS = 4     # Monte Carlo futures per window quarter behind the truth (see _write_truth)


def synthesize(out: Path, enterprises: int, quarters: int = 12, seed: int = 0,
               end_quarter: Quarter = DEFAULT_END, dirty: bool = False,
               fmt: str = "csv", demo: bool = False,
               truth_paths: int = TRUTH_PATHS) -> SynthSummary:
    """Write a synthetic drop: `enterprises` firms, `quarters` quarters ending at `end_quarter`;
    the truth averages `truth_paths` re-simulated futures per window quarter (the drop's bytes do
    not depend on it)."""
    started = time.perf_counter()
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    if quarters < 1:
        raise ValueError("quarters must be at least 1")
    if truth_paths < 1:
        raise ValueError("truth_paths must be at least 1")
    if enterprises < (len(demo_city.KEY_ENTERPRISES) if demo else 1):
        raise ValueError(f"enterprises too small: {enterprises}")
    out = Path(out)
    truth_dir = out / "_synth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)

    clock = _Clock(end_quarter, quarters)
    streams = _streams(seed)
    # Clean drops are written table by table as they are drawn, so a million firms fit in memory;
    # dirty mode needs every table at once (a broken code must not orphan other tables' rows).
    sink = _Sink(out, fmt, keep=dirty)
    firms = _draw_firms(streams["firms"], streams["names"], streams["codes"], enterprises, clock,
                        demo)
    sink.put("企业登记", firms.registry)
    firms.registry = pl.DataFrame()
    annual, filings = _draw_accounts(streams["annual"], firms, clock)
    sink.put("财务快报", filings)
    del filings
    patents, ip = _draw_patents(streams["patents"], firms, clock)
    sink.put("专利", patents)
    del patents
    financing, fin = _draw_financing(streams["financing"], firms, clock)
    sink.put("融资", financing)
    honors, hazards = _simulate_honors(streams["honors"], firms, annual, ip, fin, clock)
    sink.put("资质荣誉", honors)
    del honors
    sink.put("重点项目", _draw_projects(streams["projects"], firms, annual, clock, demo))

    if dirty:
        files, rows, faults = _write_dirty(out, sink.tables, firms, streams["dirty"], clock)
        fault_counts = dict(sorted(Counter(faults["kind"].to_list()).items()))
        faults.write_csv(truth_dir / "faults.csv", include_bom=True)
    else:
        files, rows, fault_counts = sink.files, sink.rows, {}
    files, rows = {s: files[s] for s in HEADERS}, {s: rows[s] for s in HEADERS}
    state = SimpleNamespace(f=firms, a=annual, ip=ip, fin=fin, h=hazards, clock=clock)
    truth = _write_truth(truth_dir, state, streams["truth"], truth_paths)
    params = {"enterprises": enterprises, "quarters": quarters, "seed": seed,
              "end_quarter": str(end_quarter), "dirty": dirty, "fmt": fmt, "demo": demo,
              "generator": GENERATOR_VERSION, "window": [str(clock.window_start), str(clock.end)],
              "truth": truth}
    (truth_dir / "params.json").write_text(json.dumps(params, ensure_ascii=False, indent=2) + "\n",
                                           encoding="utf-8")
    return SynthSummary(out, rows, files, truth_dir, fault_counts, time.perf_counter() - started)


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent stream per part, so changing one part does not reshuffle the others (a
    part added at the end leaves the earlier ones as they were)."""
    parts = ("firms", "names", "codes", "annual", "patents", "financing", "honors", "projects",
             "dirty", "truth")
    return {part: np.random.default_rng(s)
            for part, s in zip(parts, np.random.SeedSequence(seed).spawn(len(parts)))}


def _clear_previous(out: Path) -> None:
    """Remove table files an earlier run left, so a drop never holds two files for one table."""
    for stem in HEADERS:
        for ext in (".csv", ".xlsx", ".parquet"):
            (out / f"{stem}{ext}").unlink(missing_ok=True)
    (out / "_synth" / "faults.csv").unlink(missing_ok=True)


# --- time ---------------------------------------------------------------------------------------

class _Clock:
    """The quarters the generator simulates: burn-in, the data window, the truth horizon."""

    def __init__(self, end: Quarter, quarters: int) -> None:
        self.end = end
        self.window_start = end - (quarters - 1)
        self.w = quarters
        self.h0 = (self.window_start - BURN_IN_QUARTERS).index   # first simulated quarter
        self.h1 = (end + HORIZON).index                          # last simulated quarter
        self.t = self.h1 - self.h0 + 1
        self.y0 = self.h0 // 4 - 3                               # first simulated year
        self.y1 = self.h1 // 4
        self.end_day = _days(end.end.isoformat())

    @property
    def years(self) -> range:
        return range(self.y0, self.y1 + 1)

    @property
    def window(self) -> list[int]:
        return list(range(self.window_start.index, self.end.index + 1))


def _days(iso: str) -> int:
    return int((np.datetime64(iso, "D") - _EPOCH).astype(int))


def _quarter_start(qi: np.ndarray | int) -> np.ndarray:
    qi = np.asarray(qi, dtype=np.int64)
    months = (qi // 4 - 1970) * 12 + (qi % 4) * 3
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def _quarter_end(qi: np.ndarray | int) -> np.ndarray:
    return _quarter_start(np.asarray(qi) + 1) - 1


_LUT_FIRST = int((np.datetime64("1980-01-01", "D") - _EPOCH).astype(int))
_LUT_MONTHS = np.arange(np.datetime64("1980-01-01", "D"), np.datetime64("2101-01-01", "D")).astype(
    "datetime64[M]").astype(np.int64)
_QUARTER_LUT = ((_LUT_MONTHS // 12 + 1970) * 4 + (_LUT_MONTHS % 12) // 3).astype(np.int32)


def _quarter_of(days: np.ndarray) -> np.ndarray:
    """Quarter index of day numbers (a table lookup: calendar arithmetic on millions is slow)."""
    at = np.clip(np.asarray(days, dtype=np.int64) - _LUT_FIRST, 0, _QUARTER_LUT.size - 1)
    return _QUARTER_LUT[at].astype(np.int64)


def _year_start(year: np.ndarray | int) -> np.ndarray:
    years = (np.asarray(year, dtype=np.int64) - 1970).astype("datetime64[Y]")
    return years.astype("datetime64[D]").astype(np.int64)


def _date_series(name: str, days: np.ndarray, missing: np.ndarray | None = None) -> pl.Series:
    s = pl.Series(name, np.asarray(days, dtype=np.int32)).cast(pl.Date)
    if missing is not None:
        s = pl.select(pl.when(pl.Series(missing)).then(None).otherwise(s).alias(name)).to_series()
    return s


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def _step(x: np.ndarray, threshold: float | np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """A soft threshold: ½ at `threshold`, near 1 a few `width`s above it (float32)."""
    u = np.asarray((x - np.float32(threshold)) / np.float32(width), dtype=np.float32)
    np.clip(u, -30, 30, out=u)
    np.negative(u, out=u)
    np.exp(u, out=u)
    u += 1
    return np.reciprocal(u, out=u)


# --- vocabulary -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Industry:
    code: str
    words: tuple[str, ...]          # 行业词 in firm names
    weight: float
    tech: float                     # log shift of R&D intensity
    size: float                     # log10 shift of revenue
    patents: float                  # log shift of the patenting rate
    layer: str | None               # chain layer the industry sits in (None: not on the chain)
    objects: tuple[str, ...]        # what patents and projects are about
    ipc: tuple[str, ...]


_BASE, _TECH, _APPL = demo_city.CHAIN_LAYERS
INDUSTRIES: tuple[_Industry, ...] = (
    _Industry("C3591", ("环保科技", "环保设备", "环境工程", "水处理设备"), 0.12, 0.3, 0.0, 0.3, _APPL,
              ("污水处理", "烟气脱硫", "除尘", "废气净化", "污泥干化", "膜生物反应器"),
              ("C02F 1/44", "B01D 53/50", "B01D 46/00", "C02F 3/12")),
    _Industry("C3073", ("陶瓷", "新材料", "特种陶瓷", "陶瓷科技"), 0.06, 0.2, -0.1, 0.2, _BASE,
              ("氧化铝陶瓷", "碳化硅陶瓷", "陶瓷膜", "蜂窝陶瓷", "陶瓷基板"),
              ("C04B 35/10", "C04B 35/565", "B01D 71/02")),
    _Industry("C3074", ("陶瓷", "紫砂", "陶艺", "陶业"), 0.04, -1.0, -0.4, -0.2, _BASE,
              ("紫砂壶", "茶具", "陶瓷杯", "釉料"), ("C04B 33/13", "A47G 19/14")),
    _Industry("C3831", ("电缆", "线缆", "电气", "电线电缆"), 0.07, -0.2, 0.25, 0.0, _BASE,
              ("中压电缆", "阻燃电缆", "光纤复合电缆", "电缆护套", "导体绞合"),
              ("H01B 7/295", "H01B 13/00", "H01B 9/00")),
    _Industry("C3981", ("电子", "电子元件", "电子科技"), 0.04, 0.5, 0.1, 0.3, _TECH,
              ("陶瓷电容器", "叠层电感", "超级电容器", "电极浆料", "介质材料"),
              ("H01G 4/12", "H01G 11/86", "H01F 17/00")),
    _Industry("C3983", ("传感技术", "传感科技", "智能传感"), 0.03, 0.6, -0.1, 0.4, _TECH,
              ("压力传感器", "温度传感器", "气体传感器", "MEMS芯片", "信号调理电路"),
              ("G01L 9/00", "G01K 7/02", "G01N 27/12")),
    _Industry("C3562", ("半导体设备", "精密机械", "半导体科技"), 0.02, 0.7, 0.1, 0.5, _TECH,
              ("晶圆清洗", "刻蚀腔体", "真空吸附", "涂布", "激光切割"),
              ("H01L 21/67", "B23K 26/38", "B05C 5/02")),
    _Industry("C3963", ("智能科技", "无人机", "智能装备"), 0.01, 0.7, -0.3, 0.5, _APPL,
              ("无人机", "飞控系统", "巡检机器人", "云台"), ("B64C 39/02", "G05D 1/10", "B64D 47/08")),
    _Industry("C3499", ("机械", "机械设备", "装备制造", "重工"), 0.08, -0.1, 0.1, 0.1, _TECH,
              ("输送机", "减速机", "液压站", "自动化生产线", "搅拌装置"),
              ("B65G 15/00", "F16H 1/28", "F15B 1/02")),
    _Industry("C3484", ("精密机械", "机械制造", "五金"), 0.05, -0.3, -0.1, 0.0, _BASE,
              ("齿轮", "轴承座", "法兰", "紧固件", "铸件"), ("F16H 55/17", "F16C 35/04", "F16L 23/02")),
    _Industry("C3411", ("锅炉", "热能设备", "能源装备"), 0.02, 0.0, 0.2, 0.1, _TECH,
              ("余热锅炉", "燃烧器", "换热器", "蒸汽发生器"), ("F22B 1/18", "F23D 14/02", "F28D 7/10")),
    _Industry("C2641", ("化工", "涂料", "新材料"), 0.03, 0.0, 0.0, 0.1, _BASE,
              ("水性涂料", "防腐涂层", "粉末涂料", "树脂"), ("C09D 5/08", "C09D 175/04", "C08G 18/42")),
    _Industry("C2929", ("塑业", "塑胶", "塑料制品"), 0.03, -0.5, -0.2, 0.0, _BASE,
              ("塑料管材", "注塑件", "包装膜", "改性塑料"), ("B29C 45/00", "C08L 23/06", "F16L 9/12")),
    _Industry("C3841", ("新能源", "电池科技", "储能科技"), 0.02, 0.5, 0.2, 0.4, _TECH,
              ("锂离子电池", "电池模组", "储能柜", "正极材料", "电池管理系统"),
              ("H01M 10/0525", "H01M 50/20", "H02J 7/00")),
    _Industry("C3825", ("光伏科技", "光电", "新能源"), 0.02, 0.3, 0.2, 0.3, _TECH,
              ("光伏组件", "逆变器", "太阳能支架", "汇流箱"), ("H02S 20/30", "H02M 7/48", "H01L 31/05")),
    _Industry("C3581", ("医疗器械", "医疗科技"), 0.02, 0.6, -0.2, 0.4, _APPL,
              ("监护仪", "输液器", "康复训练", "超声探头"), ("A61B 5/00", "A61M 5/14", "A61H 1/02")),
    _Industry("C2710", ("药业", "医药科技", "生物医药"), 0.01, 0.6, 0.1, 0.3, _BASE,
              ("医药中间体", "原料药", "结晶工艺", "合成工艺"),
              ("C07D 401/04", "C07C 231/12", "A61K 31/4439")),
    _Industry("C4014", ("仪器仪表", "分析仪器", "检测技术"), 0.02, 0.5, -0.3, 0.4, _TECH,
              ("水质在线监测仪", "气相色谱仪", "光谱分析", "流量计"),
              ("G01N 33/18", "G01N 30/02", "G01F 1/66")),
    _Industry("C3311", ("钢结构", "金属制品", "钢构"), 0.04, -0.8, 0.1, -0.2, _BASE,
              ("钢结构厂房", "网架", "钢格栅", "桁架"), ("E04B 1/24", "E04C 3/04")),
    _Industry("I6513", ("软件", "信息技术", "网络科技", "数字科技"), 0.05, 0.9, -0.5, -0.2, _APPL,
              ("数据采集", "设备运维", "能耗管理", "图像识别", "工业互联网平台"),
              ("G06F 16/21", "G06N 3/08", "G06Q 10/06", "H04L 67/12")),
    _Industry("I6531", ("信息科技", "系统集成", "智能化工程"), 0.02, 0.3, -0.3, -0.3, _APPL,
              ("智能监控", "机房", "楼宇自控"), ("G08B 13/196", "H04L 12/28", "G05B 19/418")),
    _Industry("M7320", ("科技", "技术", "工程技术"), 0.03, 1.2, -0.8, 0.2, _BASE,
              ("催化剂", "复合材料", "检测方法", "纳米涂层"), ("B01J 23/745", "C08K 3/04", "G01N 21/31")),
    _Industry("M7516", ("环保技术", "环境科技"), 0.02, 0.4, -0.6, 0.0, _APPL,
              ("污水处理", "土壤修复", "VOCs治理"), ("C02F 9/14", "B09C 1/08", "B01D 53/44")),
    _Industry("N7721", ("水务", "环境治理", "水处理"), 0.02, 0.0, -0.2, 0.0, _APPL,
              ("污水处理", "人工湿地", "河道治理"), ("C02F 3/32", "E02B 3/02")),
    _Industry("F5179", ("贸易", "商贸", "机电设备", "供应链"), 0.07, -2.0, 0.1, -1.5, None,
              ("仓储货架", "周转箱"), ("B65G 1/02",)),
    _Industry("E4910", ("建设工程", "机电工程", "电力工程"), 0.04, -1.5, 0.2, -1.0, None,
              ("电缆桥架", "配电箱"), ("H02G 3/04", "H02B 1/26")),
)
_INDUSTRY_INDEX = {ind.code: i for i, ind in enumerate(INDUSTRIES)}

# 中小企业划型 (工信部联企业〔2011〕300号) for the generator's sectors, by code prefix: the lines
# (staff, prior-year revenue 万元, assets 万元) a firm must be under one of (None: no such line).
# The generator's own copy of the law, kept apart from tidu's rulebooks so that each checks the other.
_SME_LINES = {"C": (1000, 40_000, None),      # 工业
              "I65": (300, 10_000, None),     # 软件和信息技术服务业
              "M": (300, None, None),         # 其他未列明行业 (科学研究和技术服务业)
              "N": (300, None, None),         # 其他未列明行业 (水利、环境和公共设施管理业)
              "F51": (200, 40_000, None),     # 批发业
              "E": (None, 80_000, 80_000)}    # 建筑业


def _sme_line(code: str) -> np.ndarray:
    lines = next(v for k, v in _SME_LINES.items() if code.startswith(k))
    return np.array([-np.inf if v is None else v for v in lines], dtype=np.float32)


_SME_LINE = np.stack([_sme_line(ind.code) for ind in INDUSTRIES])   # (industry, 3)

# 字号 characters. Excluded on purpose: 示/例 (placeholders), 易/鸿/容 (the real demo names).
_BRAND_CHARS = np.array(list(
    "恒华宏鑫达通源瑞康泰峰嘉创德远锦润盛明凯博汇信诚聚卓越天江蓝星金龙安邦正方中宇辰阳弘昌隆兴旺"
    "丰益晟昊晶亿佳和美乐永宝豪腾飞翔鼎立骏驰云帆启航佰仕科禾沃澜泓浩晨曦旭升坤元睿哲铭谷湖溪峻岳"))
# (prefix, bracketed region) name templates and their shares.
_TEMPLATES = (("宜兴市", "", 0.36), ("宜兴", "", 0.10), ("无锡", "", 0.10), ("无锡市", "", 0.08),
              ("江苏", "", 0.14), ("", "(宜兴)", 0.14), ("", "(无锡)", 0.08))
_UNIVERSITIES = ("江南大学", "东南大学", "南京工业大学", "江苏大学", "河海大学", "南京理工大学",
                 "中国矿业大学", "苏州大学")
_MODIFIERS = ("高效", "节能型", "基于物联网的", "智能", "复合", "可调节的", "低能耗", "耐高温", "模块化",
              "便于维护的", "")
_INVENTION_SUFFIXES = ("及其制备方法", "的控制方法", "装置", "系统", "设备", "的检测方法")
_UTILITY_SUFFIXES = ("装置", "结构", "组件", "机构", "设备")
_DESIGN_STYLES = ("A型", "B型", "一", "二", "便携式", "立式")
_INVESTOR_FORMS = ("创投", "资本", "投资", "产业基金")
_ROUNDS = ("天使", "Pre-A", "A", "A+", "B", "B+", "C", "D", "E", "Pre-IPO")
_ROUND_BASE_WAN = (400, 1200, 3000, 5000, 10000, 15000, 25000, 50000, 80000, 100000)


# --- identifiers ----------------------------------------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_V31 = np.full(128, -1, dtype=np.int64)
_V31[[ord(c) for c in USCC_ALPHABET]] = np.arange(31)
_V36 = np.full(128, -1, dtype=np.int64)
_V36[[ord(c) for c in _ALNUM]] = np.arange(36)
_USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)
_ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_PATENT_WEIGHTS = np.array([2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5], dtype=np.int64)
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)


def _ascii(chars: str) -> np.ndarray:
    return np.frombuffer(chars.encode("ascii"), dtype=np.uint8)


def _to_str(codes: np.ndarray, name: str = "") -> pl.Series:
    """(n, k) uint8 ASCII → a String Series, without a trip through Python strings."""
    n, k = codes.shape
    buffer = pa.py_buffer(np.ascontiguousarray(codes, dtype=np.uint8).tobytes())
    array = pa.FixedSizeBinaryArray.from_buffers(pa.binary(k), n, [None, buffer])
    return pl.Series(name, pl.from_arrow(array)).cast(pl.Utf8)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers → (n, width) ASCII digits, zero-padded."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (np.asarray(values, dtype=np.int64)[:, None] // powers % 10 + 48).astype(np.uint8)


def uscc_check_chars(first17: np.ndarray) -> np.ndarray:
    """GB 32100-2015 check characters for (n, 17) ASCII code bodies (criteria.md §5.1)."""
    total = (_V31[first17] * _USCC_WEIGHTS).sum(axis=1)
    return _ascii(USCC_ALPHABET)[(31 - total % 31) % 31]


def _org_check_chars(first8: np.ndarray) -> np.ndarray:
    """GB 11714 check characters (9th of the 组织机构代码) for (n, 8) ASCII bodies."""
    r = 11 - (_V36[first8] * _ORG_WEIGHTS).sum(axis=1) % 11
    return np.where(r == 10, ord("X"), np.where(r == 11, ord("0"), r + 48)).astype(np.uint8)


def patent_check_chars(first12: np.ndarray) -> np.ndarray:
    """CNIPA application-number check characters for (n, 12) ASCII digits (criteria.md §5.3)."""
    r = ((first12.astype(np.int64) - 48) * _PATENT_WEIGHTS).sum(axis=1) % 11
    return np.where(r == 10, ord("X"), r + 48).astype(np.uint8)


def _legacy_check_digits(first14: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11,10 check digits of 15-digit 注册号 (GS 15-2006) for (n, 14) ASCII digits."""
    p = np.full(first14.shape[0], 10, dtype=np.int64)
    for i in range(14):
        s = (first14[:, i].astype(np.int64) - 48 + p) % 10
        s = np.where(s == 0, 10, s)
        p = (2 * s) % 11
    return ((11 - p) % 10 + 48).astype(np.uint8)


def _unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """n distinct integers in [low, high), in draw order."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        draw = np.concatenate([out, rng.integers(low, high, int((n - out.size) * 1.1) + 16)])
        _, first = np.unique(draw, return_index=True)
        out = draw[np.sort(first)]
    return out[:n]


def _draw_uscc(rng: np.random.Generator, region: np.ndarray, founded: np.ndarray) -> pl.Series:
    """Credit codes: 91 + region + 组织机构代码 (numeric before 2015-10, MA… after) + check."""
    n = region.shape[0]
    codes = np.zeros((n, 18), dtype=np.uint8)
    codes[:, 0], codes[:, 1] = ord("9"), ord("1")
    codes[:, 2:8] = region
    new = founded >= _days("2015-10-01")
    old_ids = _unique_ints(rng, int((~new).sum()), 10_000_000, 80_000_000)
    codes[~new, 8:16] = _digits(old_ids, 8)
    new_ids = _unique_ints(rng, int(new.sum()), 0, 31**5)
    body = np.stack([new_ids // 31**k % 31 for k in range(4, -1, -1)], axis=1)
    codes[new, 8], codes[new, 9] = ord("M"), ord("A")
    codes[new, 10] = np.where(founded[new] < _days("2020-01-01"), ord("1"), ord("2"))
    codes[new, 11:16] = _ascii(USCC_ALPHABET)[body]
    codes[:, 16] = _org_check_chars(codes[:, 8:16])
    codes[:, 17] = uscc_check_chars(codes[:, :17])
    return _to_str(codes)


def _fake_personal_ids(rng: np.random.Generator, n: int) -> pl.Series:
    """18-character personal-ID-like strings whose check character is deliberately wrong, so no
    real person's number can come out of the generator."""
    births = rng.integers(_days("1955-01-01"), _days("1996-12-31"), n)
    months = births.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    day = births - months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + 1
    ymd = (months // 12 + 1970) * 10_000 + (months % 12 + 1) * 100 + day
    body = np.concatenate([np.tile(_ascii("320282"), (n, 1)), _digits(ymd, 8),
                           _digits(rng.integers(0, 1000, n), 3)], axis=1)
    valid = ((body.astype(np.int64) - 48) * _ID_WEIGHTS).sum(axis=1) % 11
    wrong = (valid + rng.integers(1, 11, n)) % 11
    return _to_str(np.concatenate([body, _ascii("10X98765432")[wrong][:, None]], axis=1))


# --- firms ----------------------------------------------------------------------------------

@dataclass
class _Firms:
    n: int
    z: np.ndarray               # latent quality
    industry: np.ndarray        # index into INDUSTRIES
    founded: np.ndarray         # day number
    exit_day: np.ndarray        # day number the firm left (deregistered, revoked, moved); _NEVER
    size: np.ndarray            # log10 of mature annual revenue (万元) at the end year
    reporter: np.ndarray        # files quarterly returns
    district: np.ndarray        # index into demo_city.DISTRICTS
    uscc: pl.Series
    names: pl.Series
    former: pl.Series           # former name (曾用名) or null
    registry: pl.DataFrame

    found_q: np.ndarray = field(init=False)    # quarter index of founding
    exit_q: np.ndarray = field(init=False)     # first quarter the firm no longer reports in

    def __post_init__(self) -> None:
        self.found_q = _quarter_of(self.founded)
        left = _quarter_of(np.minimum(self.exit_day, 10**6))
        self.exit_q = np.where(self.exit_day >= _NEVER, _NEVER, left)

    def district_names(self, firm: np.ndarray) -> pl.Series:
        return pl.Series(list(demo_city.DISTRICTS)).gather(self.district[firm])


def _choice(rng: np.random.Generator, weights: dict | tuple, n: int) -> np.ndarray:
    p = np.array(list(weights.values()) if isinstance(weights, dict) else weights, dtype=float)
    return rng.choice(p.size, n, p=p / p.sum())


def _draw_firms(rng: np.random.Generator, name_rng: np.random.Generator,
                code_rng: np.random.Generator, n: int, clock: _Clock, demo: bool) -> _Firms:
    z = rng.standard_normal(n)
    industry = _choice(rng, tuple(i.weight for i in INDUSTRIES), n)
    ind_size = np.array([i.size for i in INDUSTRIES])[industry]
    size = 3.15 + 0.25 * z + ind_size + 0.55 * rng.standard_normal(n)
    young = rng.random(n) < 0.3
    span = clock.end_day - _days("1995-01-01")
    age_days = np.where(young, rng.exponential(3.5 * 365.25, n), rng.uniform(0, span, n))
    founded = clock.end_day - np.minimum(age_days, span).astype(np.int64)
    leaves = (rng.random(n) < _sigmoid(-3.0 - 0.6 * z)) & (founded + 400 < clock.end_day)
    lo = np.maximum(founded + 365, _days("2015-01-01"))
    when = lo + (rng.random(n) * np.maximum(clock.end_day - lo, 1)).astype(np.int64)
    exit_day = np.where(leaves, when, _NEVER)
    reporter = rng.random(n) < _sigmoid(1.9 + 2.0 * (size - 3.1))
    district = _choice(rng, demo_city.DISTRICTS, n)
    if demo:
        _place_demo(z, industry, size, founded, exit_day, reporter, district)
    names, former = _draw_names(name_rng, industry, size, demo)
    region = np.array([list(map(ord, r)) for r in demo_city.REGION_PREFIXES], dtype=np.uint8)[
        _choice(code_rng, demo_city.REGION_PREFIXES, n)]
    uscc = _draw_uscc(code_rng, region, founded)
    firms = _Firms(n, z, industry, founded.astype(np.int64), exit_day.astype(np.int64), size,
                   reporter, district, uscc, names, former, pl.DataFrame())
    firms.registry = _registry_frame(rng, code_rng, firms, clock, demo)
    return firms


def _place_demo(z, industry, size, founded, exit_day, reporter, district) -> None:
    """The demo's key enterprises take the first rows, with their fixed (synthetic) attributes."""
    names = list(demo_city.DISTRICTS)
    for i, ent in enumerate(demo_city.KEY_ENTERPRISES):
        z[i], industry[i] = ent.latent, _INDUSTRY_INDEX[ent.industry_code]
        size[i], founded[i] = np.log10(ent.revenue_wan), _days(ent.founded)
        exit_day[i], reporter[i], district[i] = _NEVER, True, names.index(ent.district)


def _compose_names(rng: np.random.Generator, industry: np.ndarray, size: np.ndarray,
                   brand: np.ndarray | None, three: float) -> tuple[np.ndarray, np.ndarray]:
    """城市 + 字号 + 行业词 + (region) + 组织形式, e.g. 宜兴市恒达环保科技有限公司."""
    n = industry.shape[0]
    if brand is None:
        c = rng.integers(0, _BRAND_CHARS.size, (n, 3))
        brand = np.strings.add(_BRAND_CHARS[c[:, 0]], _BRAND_CHARS[c[:, 1]])
        brand = np.where(rng.random(n) < three, np.strings.add(brand, _BRAND_CHARS[c[:, 2]]), brand)
    template = _choice(rng, tuple(t[2] for t in _TEMPLATES), n)
    prefix = np.array([t[0] for t in _TEMPLATES])[template]
    region = np.array([t[1] for t in _TEMPLATES])[template]
    word = _vocab_pick(rng, [ind.words for ind in INDUSTRIES], industry)
    big = _sigmoid(3.0 * (size - 4.3) + 1.5 * (prefix == "江苏"))
    form = np.where(rng.random(n) < big, "股份有限公司",
                    np.where(rng.random(n) < 0.08, "有限责任公司", "有限公司"))
    return _join(prefix, brand, word, region, form), brand


def _join(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise string concatenation of numpy string arrays (and constants)."""
    out = parts[0]
    for part in parts[1:]:
        out = np.strings.add(out, part)
    return out


def _vocab_pick(rng, lists: list[tuple[str, ...]], group: np.ndarray) -> np.ndarray:
    """One word per row from the word list of the row's group (industry)."""
    words = np.array([w for ws in lists for w in ws])
    offset = np.cumsum([0] + [len(ws) for ws in lists])
    counts = np.diff(offset)[group]
    return words[offset[group] + (rng.random(group.size) * counts).astype(np.int64)]


def _draw_names(rng: np.random.Generator, industry: np.ndarray, size: np.ndarray,
                demo: bool) -> tuple[pl.Series, pl.Series]:
    """Unique current names, and former names (曾用名) for about 3 % of firms."""
    n = industry.shape[0]
    raw, brand = _compose_names(rng, industry, size, None, 0.35)
    fixed = len(demo_city.KEY_ENTERPRISES) if demo else 0
    if demo:
        raw[:fixed] = [e.name for e in demo_city.KEY_ENTERPRISES]
    names = pl.Series("企业名称", raw, dtype=pl.Utf8)
    for _ in range(100):
        redo = np.flatnonzero(~names.is_first_distinct().to_numpy())
        redo = redo[redo >= fixed]
        if redo.size == 0:
            break
        again, brand[redo] = _compose_names(rng, industry[redo], size[redo], None, 1.0)
        names = names.scatter(redo, pl.Series(again, dtype=pl.Utf8))
    else:  # pragma: no cover - the name space is far larger than any city
        raise RuntimeError("could not draw unique firm names")
    renamed = np.flatnonzero(rng.random(n) < 0.03)
    renamed = renamed[renamed >= fixed]
    candidates, _ = _compose_names(rng, industry[renamed], size[renamed], brand[renamed], 0.0)
    candidates = pl.Series(candidates, dtype=pl.Utf8)
    clash = pl.concat([names, candidates]).is_duplicated().to_numpy()[n:]
    former = pl.Series("曾用名", [None] * n, dtype=pl.Utf8)
    former = former.scatter(renamed[~clash], candidates.filter(~clash))
    return names, former


def _registry_frame(rng, code_rng, f: _Firms, clock: _Clock, demo: bool) -> pl.DataFrame:
    n = f.n
    nice = np.array([10, 30, 50, 100, 200, 300, 500, 800, 1000, 1500, 2000, 3000, 5000, 8000,
                     10000, 20000, 50000], dtype=float)
    raw = 10 ** (f.size - 0.5 + 0.45 * rng.standard_normal(n))
    capital = nice[np.abs(np.log(nice)[None, :] - np.log(raw)[:, None]).argmin(axis=1)]
    capital = np.where(rng.random(n) < 0.15, np.round(raw, 4), capital)
    status = np.where(f.exit_day < _NEVER, _choice(rng, (0.55, 0.25, 0.2), n) + 2,
                      (rng.random(n) >= 0.75).astype(np.int64))
    layer_of = np.array([-1 if i.layer is None else demo_city.CHAIN_LAYERS.index(i.layer)
                         for i in INDUSTRIES])[f.industry]
    on_chain = (layer_of >= 0) & (rng.random(n) < _sigmoid(-0.75 + 0.4 * f.z))
    layer = np.where(rng.random(n) < 0.8, layer_of, rng.integers(0, 3, n))
    leader = on_chain & (f.size > np.quantile(f.size, 0.995))
    if demo:
        k = len(demo_city.KEY_ENTERPRISES)
        layer[:k] = [demo_city.CHAIN_LAYERS.index(e.chain_layer) for e in demo_city.KEY_ENTERPRISES]
        on_chain[:k] = True
        leader[:k] = [e.chain_leader for e in demo_city.KEY_ENTERPRISES]
    rep_id = _fake_personal_ids(code_rng, n)
    return pl.DataFrame({
        "统一社会信用代码": f.uscc, "企业名称": f.names, "成立日期": _date_series("成立日期", f.founded),
        "注册资本(万元)": capital,
        "行业代码": pl.Series([i.code for i in INDUSTRIES]).gather(f.industry),
        "所属板块": f.district_names(np.arange(n)),
        "登记状态": pl.Series(["存续", "在业", "注销", "吊销", "迁出"]).gather(status),
        "产业链环节": pl.Series(list(demo_city.CHAIN_LAYERS)).gather(np.where(layer < 0, 0, layer)),
        "链主企业": pl.Series(["否", "是"]).gather(leader.astype(np.int64)),
        "曾用名": f.former,
        "法定代表人证件号": rep_id,
    }).with_columns(
        pl.when(pl.Series(on_chain)).then(pl.col("产业链环节", "链主企业")),
        pl.when(pl.Series(rng.random(n) < 0.95)).then(pl.col("法定代表人证件号")),
    )


# --- financial paths --------------------------------------------------------------------------

@dataclass
class _Annual:
    """(year, firm) arrays from clock.y0: what each firm's accounts show for each year; and what
    the truth needs to draw a year afresh (the un-ramped log revenue level, the firm's trend and
    its yearly-noise centres)."""
    y0: int
    rev: np.ndarray
    main: np.ndarray
    rd: np.ndarray
    emp: np.ndarray
    rd_staff: np.ndarray
    debt: np.ndarray
    assets: np.ndarray
    level: np.ndarray | None = None
    trend: np.ndarray | None = None
    firm: SimpleNamespace | None = None


_ACCOUNT_FIELDS = ("rev", "main", "rd", "emp", "rd_staff", "debt", "assets")
_SEASON = np.array([0.22, 0.245, 0.25, 0.285], dtype=np.float32)[:, None]


def _normal(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def _draw_accounts(rng: np.random.Generator, f: _Firms,
                   clock: _Clock) -> tuple[_Annual, pl.DataFrame]:
    """Each firm's accounts year by year (for the hazards) and its quarterly returns in the window
    (财务快报: year-to-date flows, period-end stocks). Quarterly flows split the year's revenue
    by a noisy seasonal pattern, so Q4 year-to-date equals the year."""
    n, years = f.n, list(clock.years)
    tech = np.array([i.tech for i in INDUSTRIES])[f.industry]
    potential, level, trend = _potential_revenue(rng, f, clock)
    has_rd = rng.random(n) < _sigmoid(1.0 + 1.2 * f.z + 1.5 * tech)
    rdi = has_rd * np.exp(np.log(0.024) + 0.35 * f.z + 0.5 * tech + 0.5 * rng.standard_normal(n))
    firm = SimpleNamespace(
        rdi=rdi.astype(np.float32), has_rd=has_rd,
        main_share=np.where(rng.random(n) < 0.08, rng.uniform(0.35, 0.7, n),
                            1 - rng.beta(1.3, 9, n)),
        margin=0.05 + 0.025 * f.z + 0.04 * rng.standard_normal(n),
        asset_ratio=np.exp(0.05 - 0.3 * (tech < -1) + 0.45 * rng.standard_normal(n)),
        debt=np.clip(rng.beta(4, 4, n) - 0.04 * f.z, 0.05, 0.95),
        per_head=np.exp(np.log(60) + 0.7 * (tech < -1) + 0.45 * rng.standard_normal(n)),
        rd_share=has_rd * np.clip(1.6 * rdi + 0.03 + 0.04 * rng.standard_normal(n), 0.0, 0.85),
    )
    making = np.array([i.code[0] == "C" for i in INDUSTRIES])[f.industry]
    exporter = rng.random(n) < 0.3 * making + 0.03
    firm.export_share = (exporter * rng.beta(1.5, 5, n)).astype(np.float32)
    firm.exporter = exporter
    found_frac = _founding_fraction(f)
    out = {k: np.zeros((len(years), n), dtype=np.float32) for k in _ACCOUNT_FIELDS}
    parts = []
    for yi, y in enumerate(years):
        active = _active_quarters(f, y, found_frac)
        flow, year = _year_draws(rng, firm, potential[yi], active)
        for key, value in _year_totals(flow, year).items():
            out[key][yi] = value
        window = [t for t in clock.window if t // 4 == y]
        if window:
            parts += _returns(rng, f, firm, year, flow, active, window)
    return _Annual(clock.y0, **out, level=level, trend=trend, firm=firm), pl.concat(parts)


def _founding_fraction(f) -> np.ndarray:
    """Share of its founding quarter a firm was registered."""
    return ((_quarter_end(f.found_q) - f.founded + 1)
            / (_quarter_end(f.found_q) - _quarter_start(f.found_q) + 1)).astype(np.float32)


def _active_quarters(f, year: int, found_frac: np.ndarray) -> np.ndarray:
    """(quarter of the year, firm) share of each quarter the firm was registered."""
    qi = (year * 4 + np.arange(4))[:, None]
    active = ((f.found_q[None, :] <= qi) & (qi < f.exit_q[None, :])).astype(np.float32)
    active *= np.where(f.found_q[None, :] == qi, found_frac[None, :], np.float32(1))
    return active


def _year_draws(rng, firm: SimpleNamespace, potential: np.ndarray,
                active: np.ndarray) -> tuple[np.ndarray, SimpleNamespace]:
    """One year of a firm's accounts around its own centres: the (quarter, firm) revenue flows
    and the year's ratios. Shared by the generator and the truth's fresh years (there `potential`
    is (path, firm) and `active` (quarter, 1, firm)), so both draw the same way."""
    n = potential.shape
    season = _SEASON.reshape((4,) + (1,) * len(n))
    share = season * np.exp(np.float32(0.07) * _normal(rng, (4, *n)))
    share /= share.sum(axis=0, keepdims=True)
    flow = potential * share * active                  # (quarter, firm) revenue
    year = SimpleNamespace(
        rdi=np.clip(firm.rdi * np.exp(np.float32(0.15) * _normal(rng, n)), 0, 0.6),
        main_share=np.clip(firm.main_share + 0.02 * _normal(rng, n), 0.2, 1).astype(np.float32),
        margin=(firm.margin + 0.025 * _normal(rng, n)).astype(np.float32),
        debt=np.clip(firm.debt + 0.025 * _normal(rng, n), 0.03, 0.97),
        assets=potential * firm.asset_ratio * np.exp(0.05 * _normal(rng, n)) + 20,
        emp=np.maximum(3, np.round(potential / firm.per_head * np.exp(0.04 * _normal(rng, n)))),
        rs=np.clip(firm.rd_share + 0.01 * _normal(rng, n), 0, 0.9) * firm.has_rd,
    )
    return flow, year


def _year_totals(flow: np.ndarray, year: SimpleNamespace) -> dict[str, np.ndarray]:
    """The year's accounts (float32) from its flows and ratios."""
    total = flow.sum(axis=0, dtype=np.float64)
    f32 = np.float32
    return {"rev": total.astype(f32), "main": (total * year.main_share).astype(f32),
            "rd": (total * year.rdi).astype(f32), "emp": year.emp.astype(f32),
            "rd_staff": np.minimum(np.round(year.emp * year.rs), year.emp).astype(f32),
            "debt": year.debt.astype(f32), "assets": year.assets.astype(f32)}


def _potential_revenue(rng, f: _Firms, clock: _Clock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, firm) full-year revenue (万元): a log path anchored at the end year, with a firm
    trend, yearly shocks, and a ramp over a young firm's first three years. Also the un-ramped
    log level (float32) and the trend, from which the truth continues the walk."""
    years = np.array(list(clock.years))
    trend = 0.05 + 0.06 * f.z + 0.06 * rng.standard_normal(f.n)
    cum = np.cumsum(trend[None, :] + 0.11 * _normal(rng, (years.size, f.n)), axis=0)
    anchor = clock.end.year - clock.y0
    lr = (f.size * np.log(10))[None, :] + (cum - cum[anchor][None, :])
    return (np.exp(lr) * _ramp(f.founded, years)).astype(np.float32), lr.astype(np.float32), trend


def _ramp(founded: np.ndarray, years: np.ndarray) -> np.ndarray:
    """(year, firm) revenue ramp: 0 before founding, ¼ rising to 1 over the first three years."""
    age = ((_year_start(years + 1) - 1)[:, None] - founded[None, :]) / 365.25
    return np.where(age > 0, 0.25 + 0.75 * np.clip(age / 3.0, 0.0, 1.0), 0.0)


def _returns(rng, f: _Firms, firm, year, flow, active, window: list[int]) -> list[pl.DataFrame]:
    """The window quarters' 财务快报 rows of one year."""
    n = f.n
    trend = np.float32(0.015) * (np.arange(4, dtype=np.float32)[:, None] - 1.5)
    drift = 1 + trend + 0.02 * _normal(rng, (4, n))
    debt_q = np.clip(year.debt[None, :] + 0.01 * _normal(rng, (4, n)), 0.02, 0.98)
    emp_q = np.maximum(1, np.round(year.emp[None, :] * np.exp(0.02 * _normal(rng, (4, n)))))
    parts = []
    for t in window:
        q = t % 4
        idx = np.flatnonzero(f.reporter & (active[q] > 0))
        rev = flow[: q + 1, idx].sum(axis=0, dtype=np.float64)
        profit = rev * year.margin[idx]
        assets = np.round(year.assets[idx] * drift[q, idx], 2)
        emp = emp_q[q, idx].astype(np.int64)
        parts.append(pl.DataFrame({
            "统一社会信用代码": f.uscc.gather(idx),
            "报告期": pl.repeat(str(Quarter.from_index(t)), idx.size, eager=True),
            "营业收入(万元)": np.round(rev, 2), "主营业务收入(万元)": np.round(rev * year.main_share[idx], 2),
            "利润总额(万元)": np.round(profit, 2),
            "净利润(万元)": np.round(np.where(profit > 0, 0.85 * profit, profit), 2),
            "研发费用(万元)": np.round(rev * year.rdi[idx], 2), "资产总计(万元)": assets,
            "负债合计(万元)": np.round(assets * debt_q[q, idx], 2), "从业人员期末人数": emp,
            "研发人员数": np.minimum(np.round(emp * year.rs[idx]), emp).astype(np.int64),
            "出口额(万元)": np.where(firm.exporter[idx], np.round(rev * firm.export_share[idx], 2),
                                     np.nan),
        }).with_columns(pl.col("出口额(万元)").fill_nan(None)))
    return parts


# --- patents ----------------------------------------------------------------------------------

def _active_span(f: _Firms, firm: np.ndarray, year: np.ndarray,
                 end_day: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.maximum(_year_start(year), f.founded[firm])
    hi = np.minimum(np.minimum(_year_start(year + 1) - 1, f.exit_day[firm] - 1), end_day)
    return lo, hi


def _events_per_year(rng, f: _Firms, rate: np.ndarray, first_year: int, last_year: int):
    """Poisson event counts per (firm, year), expanded to (firm, day) with the day in the year."""
    counts = rng.poisson(np.minimum(rate, 40.0))
    firm, yi = np.nonzero(counts)
    reps = counts[firm, yi]
    firm, year = np.repeat(firm, reps), np.repeat(yi + first_year, reps)
    lo, hi = _active_span(f, firm, year, _days(f"{last_year}-12-31"))
    keep = hi >= lo
    firm, lo, hi = firm[keep], lo[keep], hi[keep]
    day = lo + (rng.random(firm.size) * (hi - lo + 1)).astype(np.int64)
    return firm, day


def _activity(f: _Firms, years: np.ndarray) -> np.ndarray:
    """Fraction of each year a firm is registered, (firm, year)."""
    lo = np.maximum(_year_start(years)[None, :], f.founded[:, None])
    hi = np.minimum(_year_start(years + 1)[None, :], np.minimum(f.exit_day, 10**6)[:, None])
    return np.clip((hi - lo) / 365.25, 0, 1)


def _draw_patents(rng: np.random.Generator, f: _Firms, clock: _Clock):
    """专利 rows (as of the end quarter), and per-quarter IP counts for the hazards."""
    years = np.arange(2008, clock.y1 + 1)
    firm, filed = _events_per_year(rng, f, _patent_rate(f, years), int(years[0]), clock.y1)
    kind, grant_day, decided, lapse = _patent_fates(rng, f, firm, filed)
    invention = (kind == 1) | (kind == 8)
    ip = _ip_counts(f.n, firm, filed, grant_day, lapse, invention, clock)
    written = filed <= clock.end_day
    frame = _patent_frame(rng, f, firm, filed, kind, grant_day, decided, lapse, written, clock)
    # The truth re-draws what is still open at a window quarter's end: applications pending then
    # and the lapse of patents valid then. Events sorted by firm, so a chunk of firms is a slice.
    keep = np.flatnonzero(written & (lapse > _quarter_start(clock.window_start.index)))
    keep = keep[np.argsort(firm[keep], kind="stable")]
    ip.events = SimpleNamespace(firm=firm[keep], filed=filed[keep], kind=kind[keep],
                                grant_day=grant_day[keep], decided=decided[keep], lapse=lapse[keep])
    return frame, ip


def _patent_rate(f, years: np.ndarray) -> np.ndarray:
    """(firm, year) expected patent filings: quality, size, industry, a ramp over three years."""
    tech = np.array([i.tech for i in INDUSTRIES])[f.industry]
    pshift = np.array([i.patents for i in INDUSTRIES])[f.industry]
    base = np.exp(-1.5 + 0.55 * f.z + 0.8 * (f.size - 3.2) + pshift + 0.4 * np.maximum(tech, 0))
    age = (_year_start(years + 1)[None, :] - f.founded[:, None]) / 365.25
    return base[:, None] * _activity(f, years) * np.clip(age / 3.0, 0.2, 1.0)


# Patent kinds as in the application number: 1 invention, 2 utility model, 3 design, 8/9 PCT.
_GRANT_DELAY = {"invention": (420, 1100), "design": (100, 300), "utility": (150, 420)}
_REFUSAL_DELAY = {"invention": (500, 1400), "design": (200, 500), "utility": (200, 500)}
_LAPSE_RATE = {"invention": 0.04, "design": 0.10, "utility": 0.08}


def _patent_fates(rng, f, firm: np.ndarray, filed: np.ndarray):
    """Kind, grant day (_NEVER if refused), refusal day and lapse day of each application."""
    m = firm.size
    zf = f.z[firm]
    tech = np.array([i.tech for i in INDUSTRIES])[f.industry[firm]]
    p_inv = np.clip(0.2 + 0.06 * zf + 0.12 * np.maximum(tech, 0), 0.05, 0.6)
    p_design = np.where(np.array([i.code for i in INDUSTRIES])[f.industry[firm]] == "C3074",
                        0.45, 0.1)
    u = rng.random(m)
    kind = np.where(u < p_inv, 1, np.where(u < p_inv + p_design, 3, 2))
    pct = rng.random(m)
    kind = np.where((kind == 1) & (pct < 0.03), 8, np.where((kind == 2) & (pct < 0.01), 9, kind))
    invention = (kind == 1) | (kind == 8)
    design = kind == 3
    granted = rng.random(m) < _grant_probability(zf, invention, design)
    delay = np.where(invention, rng.uniform(*_GRANT_DELAY["invention"], m),
                     np.where(design, rng.uniform(*_GRANT_DELAY["design"], m),
                              rng.uniform(*_GRANT_DELAY["utility"], m)))
    grant_day = np.where(granted, filed + delay.astype(np.int64), _NEVER)
    refused_after = np.where(invention, rng.uniform(*_REFUSAL_DELAY["invention"], m),
                             rng.uniform(*_REFUSAL_DELAY["utility"], m))
    decided = filed + refused_after.astype(np.int64)
    unpaid = (rng.exponential(1, m) / _lapse_rate(invention, design) * 365.25).astype(np.int64)
    lapse = np.minimum(grant_day + unpaid, filed + _term(invention))
    return kind, grant_day, decided, np.where(granted, lapse, _NEVER)


def _grant_probability(zf: np.ndarray, invention: np.ndarray, design: np.ndarray) -> np.ndarray:
    return np.where(invention, _sigmoid(0.3 + 0.5 * zf), np.where(design, 0.95, 0.93))


def _lapse_rate(invention: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Yearly chance that the fee goes unpaid."""
    return np.where(invention, _LAPSE_RATE["invention"],
                    np.where(design, _LAPSE_RATE["design"], _LAPSE_RATE["utility"]))


def _term(invention: np.ndarray) -> np.ndarray:
    return np.where(invention, 20, 10) * 365


def _ip_counts(n, firm, filed, grant_day, lapse, invention, clock: _Clock) -> SimpleNamespace:
    """(simulated quarter, firm) counts at each quarter's end: valid inventions, valid patents,
    applications filed."""
    def cumulative(day: np.ndarray, minus_day: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
        out = np.zeros((clock.t + 1) * n, dtype=np.int32)
        for d, sign in ((day, 1), (minus_day, -1)):
            if d is None:
                continue
            q = np.clip(_quarter_of(d) - clock.h0, 0, clock.t)
            ok = mask & (d < _NEVER)
            out += sign * np.bincount(q[ok] * n + firm[ok], minlength=out.size).astype(np.int32)
        counts = np.cumsum(out.reshape(clock.t + 1, n)[: clock.t], axis=0, dtype=np.int32)
        return counts.astype(np.int16)

    everything = np.ones(firm.size, dtype=bool)
    return SimpleNamespace(inv_valid=cumulative(grant_day, lapse, invention),
                           valid=cumulative(grant_day, lapse, everything),
                           applied=cumulative(filed, None, everything))


def _application_numbers(rng, year: np.ndarray, kind: np.ndarray) -> tuple[pl.Series, np.ndarray]:
    """Distinct CNIPA application numbers (year, kind, 7-digit serial, '.', check character) and
    the numbers as integers (for sorting)."""
    m = year.size
    order = np.lexsort((rng.random(m), kind, year))
    key = year[order] * 10 + kind[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    sizes = np.diff(np.r_[starts, m])
    group = np.repeat(np.arange(starts.size), sizes)
    rank = np.arange(m) - starts[group]
    step = np.minimum(40.0, 8_800_000 / np.maximum(sizes, 1))[group]   # (no patents: one empty group)
    serial = np.empty(m, dtype=np.int64)
    serial[order] = 100_000 + np.floor(rank * step + rng.random(m) * step).astype(np.int64)
    body = np.concatenate([_digits(year, 4), _digits(kind, 1), _digits(serial, 7)], axis=1)
    dot = np.full((m, 1), ord("."), dtype=np.uint8)
    numbers = _to_str(np.concatenate([body, dot, patent_check_chars(body)[:, None]], axis=1))
    return numbers, year * 100_000_000 + kind * 10_000_000 + serial


def _patent_frame(rng, f: _Firms, firm, filed, kind, grant_day, decided, lapse, written,
                  clock: _Clock) -> pl.DataFrame:
    firm, filed, kind = firm[written], filed[written], kind[written]
    grant_day, decided, lapse = grant_day[written], decided[written], lapse[written]
    m = firm.size
    end = clock.end_day
    year = filed.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    shown_grant = grant_day <= end
    status = np.where(shown_grant, np.where(lapse <= end, 1, 0),
                      np.where((grant_day >= _NEVER) & (decided <= end), 1, 2))
    ptype = np.where(np.isin(kind, (1, 8)), 0, np.where(kind == 3, 2, 1))
    co = rng.random(m)
    partner = rng.integers(0, f.n, m)
    numbers, number_key = _application_numbers(rng, year, kind)
    cols = pl.DataFrame({
        "申请号": numbers,
        "kind": kind,
        "专利类型": _words(("发明", "实用新型", "外观设计"), ptype),
        "申请日": _date_series("申请日", filed),
        "授权公告日": _date_series("授权公告日", np.minimum(grant_day, 10**6), ~shown_grant),
        "法律状态": _words(("有效", "失效", "审中"), status),
        "firm": f.names.gather(firm),
        "univ": _words(_UNIVERSITIES, rng.integers(0, len(_UNIVERSITIES), m)),
        "partner": f.names.gather(partner),
        "with_univ": (co < np.where(ptype == 0, 0.08, 0.03)) & (ptype != 2),
        "with_firm": (co > 0.995) & (partner != firm),
    }).with_columns(_patent_texts(rng, f.industry[firm]))
    applicants = (pl.when("with_univ").then(pl.concat_str("firm", pl.lit(";"), "univ"))
                  .when("with_firm").then(pl.concat_str("firm", pl.lit(";"), "partner"))
                  .otherwise("firm"))
    design = pl.concat_str("obj", pl.lit("（"), "style", pl.lit("）"))
    suffix = pl.when(pl.col("kind").is_in([1, 8])).then("inv").otherwise("util")
    title = (pl.when(pl.col("kind") == 3).then(design)
             .otherwise(pl.concat_str(pl.lit("一种"), "mod", "obj", suffix)))
    frame = cols.select("申请号", title.alias("专利名称"), "专利类型", "申请日", "授权公告日",
                        "法律状态", applicants.alias("申请人"),
                        pl.when(pl.col("kind") != 3).then("ipc").alias("主分类号"))
    return frame.select(pl.all().gather(np.lexsort((number_key, filed))))


def _words(words: tuple[str, ...] | list[str], index: np.ndarray) -> pl.Series:
    return pl.Series(list(words), dtype=pl.Utf8).gather(np.asarray(index, dtype=np.int64))


def _vocab_index(rng, lists: list[tuple[str, ...]],
                 group: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Flattened word lists and, per row, the index of a word from the row's group's list."""
    offset = np.cumsum([0] + [len(ws) for ws in lists])
    counts = np.diff(offset)[group]
    index = offset[group] + (rng.random(group.size) * counts).astype(np.int64)
    return [w for ws in lists for w in ws], index


def _patent_texts(rng, industry: np.ndarray) -> list[pl.Series]:
    m = industry.size
    objects, obj = _vocab_index(rng, [ind.objects for ind in INDUSTRIES], industry)
    codes, ipc = _vocab_index(rng, [ind.ipc for ind in INDUSTRIES], industry)
    return [_words(objects, obj).alias("obj"), _words(codes, ipc).alias("ipc"),
            _words(_MODIFIERS, rng.integers(0, len(_MODIFIERS), m)).alias("mod"),
            _words(_INVENTION_SUFFIXES, rng.integers(0, len(_INVENTION_SUFFIXES), m)).alias("inv"),
            _words(_UTILITY_SUFFIXES, rng.integers(0, len(_UTILITY_SUFFIXES), m)).alias("util"),
            _words(_DESIGN_STYLES, rng.integers(0, len(_DESIGN_STYLES), m)).alias("style")]


# --- financing --------------------------------------------------------------------------------

def _draw_financing(rng: np.random.Generator, f: _Firms, clock: _Clock):
    """融资 rows (to the end quarter) and per-quarter valuation and equity for the hazards."""
    years = np.arange(2014, clock.y1 + 1)
    firm, day = _events_per_year(rng, f, _financing_rate(f, years), int(years[0]), clock.y1)
    order = np.lexsort((day, firm))
    firm, day = firm[order], day[order]
    m = firm.size
    rnd = _round_of(f, firm, day, _rank_in_runs(firm))
    strategic = rng.random(m) < 0.08
    amount_rmb, post_rmb = _round_money(rng, f, firm, rnd)
    fin = _fin_counts(f.n, firm, day, amount_rmb, post_rmb, clock)
    fin.events = SimpleNamespace(firm=firm, day=day)   # sorted by firm and day

    usd = rng.random(m) < 0.04 + 0.10 * (rnd >= 4)
    amount = np.where(usd, np.round(amount_rmb / USD_RATE, 0), amount_rmb)
    post = np.where(usd, np.round(post_rmb / USD_RATE, -1), post_rmb)
    keep = day <= clock.end_day
    round_name = np.where(strategic, "战略", np.array(_ROUNDS)[rnd])
    frame = pl.DataFrame({
        "统一社会信用代码": f.uscc.gather(firm), "_given": rng.random(m) < 0.85,
        "企业名称": f.names.gather(firm), "融资日期": _date_series("融资日期", day),
        "轮次": round_name, "融资金额(万元)": amount, "币种": np.where(usd, "美元", "人民币"),
        "投后估值(万元)": np.where(rng.random(m) < 0.7, post, np.nan),
        "投资方": _investors(rng, m),
    }).filter(pl.Series(keep))
    frame = frame.with_columns(pl.when("_given").then(pl.col("统一社会信用代码")).alias("统一社会信用代码"),
                               pl.col("投后估值(万元)").fill_nan(None)).drop("_given")
    return frame.sort("融资日期", "企业名称"), fin


def _financing_rate(f, years: np.ndarray) -> np.ndarray:
    """(firm, year) expected financing rounds: quality, youth, technology, size."""
    tech = np.array([i.tech for i in INDUSTRIES])[f.industry]
    age = (_year_start(years + 1)[None, :] - f.founded[:, None]) / 365.25
    return np.exp(-5.4 + 1.1 * f.z[:, None] + 0.9 * (age <= 6) + 0.8 * tech[:, None]
                  + 0.3 * (f.size[:, None] - 3.2)) * _activity(f, years) * (age < 20)


def _rank_in_runs(keys: np.ndarray) -> np.ndarray:
    """0, 1, 2… within each run of equal sorted keys (a firm's rounds in date order)."""
    m = keys.size
    first = np.r_[True, keys[1:] != keys[:-1]]
    return np.arange(m) - np.maximum.accumulate(np.where(first, np.arange(m), 0))


def _round_of(f, firm: np.ndarray, day: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Index into _ROUNDS of a firm's seq-th round (older firms start at A)."""
    start = np.where((day - f.founded[firm]) / 365.25 > 8, 2, 0)
    return np.minimum(start + seq, len(_ROUNDS) - 1)


def _round_money(rng, f, firm: np.ndarray, rnd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amount and post-money (万元 人民币) of rounds, rounded as announcements are."""
    m = firm.size
    scale = np.exp(0.35 * f.z[firm] + 0.5 * rng.standard_normal(m))
    amount = np.array(_ROUND_BASE_WAN, dtype=float)[rnd] * scale
    amount = np.where(amount >= 1000, np.round(amount, -2), np.round(amount, -1))
    return amount, np.round(amount / rng.uniform(0.08, 0.25, m), -2)


def _investors(rng, m: int) -> np.ndarray:
    c = rng.integers(0, _BRAND_CHARS.size, (m, 6))
    forms = np.array(_INVESTOR_FORMS)
    b = _BRAND_CHARS
    one = _join(b[c[:, 0]], b[c[:, 1]], forms[rng.integers(0, forms.size, m)])
    two = _join("无锡", b[c[:, 2]], b[c[:, 3]], "股权投资合伙企业(有限合伙)")
    three = _join("宜兴", b[c[:, 4]], b[c[:, 5]], "产业投资基金")
    k = rng.integers(1, 4, m)
    out = np.where(k >= 2, _join(one, "、", two), one)
    return np.where(k >= 3, _join(out, "、", three), out)


def _fin_counts(n, firm, day, amount, post, clock: _Clock) -> SimpleNamespace:
    """(quarter, firm) post-money of the last round by the quarter's end, equity raised in the
    three years to it and since the first simulated quarter (万元 人民币)."""
    q = np.clip(_quarter_of(day) - clock.h0, 0, clock.t)
    ok = np.flatnonzero(q < clock.t)
    cell = q[ok] * n + firm[ok]
    _, last_of_cell = np.unique(cell[::-1], return_index=True)   # events are sorted by firm and day
    last_of_cell = cell.size - 1 - last_of_cell
    last = np.full(clock.t * n, np.nan, dtype=np.float32)
    last[cell[last_of_cell]] = post[ok][last_of_cell]
    last = last.reshape(clock.t, n)
    pos = np.where(np.isnan(last), 0, np.arange(clock.t)[:, None])
    np.maximum.accumulate(pos, axis=0, out=pos)
    valuation = np.nan_to_num(np.take_along_axis(last, pos, axis=0), nan=0.0)
    raised = np.bincount(cell, weights=amount[ok], minlength=clock.t * n).reshape(clock.t, n)
    cum = np.cumsum(raised, axis=0)
    lagged = np.concatenate([np.zeros((12, n)), cum[:-12]], axis=0)[: clock.t]
    return SimpleNamespace(valuation=valuation.astype(np.float32),
                           raised_3y=(cum - lagged).astype(np.float32),
                           raised_cum=cum.astype(np.float32))


# --- honors: hazards on the two ladders ------------------------------------------------------

@dataclass(frozen=True)
class _Tier:
    key: str
    honor: str
    level: str
    valid_quarters: int | None                  # None: no expiry
    batches: dict[int, tuple[tuple[int, int], ...]]   # quarter of year → (month, day) of batches


TIERS: tuple[_Tier, ...] = (
    _Tier("innovative_sme", "创新型中小企业", "省级", 12, {2: ((6, 20),), 3: ((9, 15),), 4: ((12, 10),)}),
    _Tier("specialised_sme", "专精特新中小企业", "省级", 12, {2: ((5, 25),), 4: ((12, 20),)}),
    _Tier("little_giant", "专精特新小巨人", "国家级", 12, {3: ((7, 25), (8, 20))}),
    _Tier("high_tech_enterprise", "高新技术企业", "国家级", 12, {4: ((11, 6), (12, 12))}),
    _Tier("tech_sme", "科技型中小企业", "省级", 4,
          {2: ((4, 28), (5, 30)), 3: ((7, 15), (8, 30)), 4: ((10, 20),)}),
    _Tier("eaglet", "雏鹰企业", "市级", 12, {4: ((12, 5),)}),
    _Tier("gazelle", "瞪羚企业", "市级", 12, {4: ((12, 5),)}),
    _Tier("quasi_unicorn", "准独角兽企业", "市级", 12, {4: ((12, 5),)}),
    _Tier("single_champion", "制造业单项冠军", "国家级", 12, {4: ((11, 28),)}),
    _Tier("unicorn", "独角兽企业", "省级", None, {3: ((8, 10),)}),
    _Tier("rd_institution_provincial", "省级研发机构", "省级", None, {4: ((11, 20),)}),
)
MAIN_TIERS = ("innovative_sme", "specialised_sme", "little_giant", "high_tech_enterprise",
              "tech_sme", "eaglet", "gazelle", "quasi_unicorn")
_K = {t.key: i for i, t in enumerate(TIERS)}


def _accounts(a: _Annual, py: int) -> dict[str, np.ndarray]:
    """The observable terms that come from one year's accounts (index py), as float32."""
    f32 = np.float32
    rev, prev = a.rev[py], a.rev[py - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.where(prev > 1, rev / prev - 1, 0.0)
        g1 = np.where(a.main[py - 1] > 1, a.main[py] / a.main[py - 1] - 1, 0.0)
        g2 = np.where(a.main[py - 2] > 1, a.main[py - 1] / a.main[py - 2] - 1, 0.0)
        rdi = np.where(rev > 1, a.rd[py] / rev, 0.0)
        rd3 = a.rd[py - 2: py + 1].sum(axis=0) / np.maximum(a.rev[py - 2: py + 1].sum(axis=0), 1)
        main_share = np.where(rev > 1, a.main[py] / rev, 0.0)
        rs = np.where(a.emp[py] > 0, a.rd_staff[py] / a.emp[py], 0.0)
    return {
        "rev": rev.astype(f32), "growth": np.clip(growth, -0.9, 5).astype(f32),
        "growth_2y": np.clip((g1 + g2) / 2, -0.9, 5).astype(f32), "rdi": rdi.astype(f32),
        "rd": a.rd[py].astype(f32), "rd3": rd3.astype(f32), "main_share": main_share.astype(f32),
        "rd_staff_share": rs.astype(f32), "emp": a.emp[py].astype(f32),
        "assets": a.assets[py].astype(f32), "debt": a.debt[py].astype(f32)}


_IP_COUNTS = ("inv_valid", "valid", "applied")
_FIN_COUNTS = ("valuation", "raised_3y")


def _at_quarter(counts: SimpleNamespace, names: tuple[str, ...], k: int, n: int) -> SimpleNamespace:
    """The (simulated quarter, firm) arrays `names` at relative quarter k (zeros before 0)."""
    return SimpleNamespace(**{name: getattr(counts, name)[k] if k >= 0
                              else np.zeros(n, getattr(counts, name).dtype) for name in names})


def _observables(f, accounts: dict, ip: SimpleNamespace, fin: SimpleNamespace,
                 t: int) -> SimpleNamespace:
    """What a firm shows at the start of quarter t: the last full year's accounts, IP and
    financing at the previous quarter's end (`ip`, `fin`; the honors' observable terms)."""
    line = _SME_LINE[f.industry].T
    return SimpleNamespace(
        z=f.z.astype(np.float32), **accounts,
        sme=(accounts["emp"] < line[0]) | (accounts["rev"] < line[1]) | (accounts["assets"] < line[2]),
        age=((int(_quarter_end(t)) - f.founded) / 365.25).astype(np.float32),
        inv=ip.inv_valid, valid_ip=ip.valid, applied=ip.applied,
        valuation=fin.valuation, raised_3y=fin.raised_3y,
        active=(f.found_q <= t) & (t < f.exit_q),
    )


# Each tier's per-quarter hazard is sigmoid(logit) × multiplier. The logit is an intercept (tuned
# so that 1–8 % of firms passing a tier's quantitative screen are recognised per year), the latent
# quality, and soft steps at the tier's published thresholds (criteria.md); the multiplier carries
# hard gates and the ladders (a firm rarely skips a rung). `holds(key)`: valid title at the
# quarter's start; `ever(key)`: held it before (renewals come easier).

def _innovative_sme(o, holds, ever, t):
    """创新型中小企业 (63号 附件1, from 2022-08): R&D intensity, growth, Ⅰ类 IP, 高企 direct route."""
    x = (-8.2 + 0.7 * o.z + 1.6 * _step(o.rdi, 0.02, 0.004) + 1.0 * _step(o.growth, 0.05, 0.04)
         + 1.2 * (o.inv >= 1) + 0.6 * (o.valid_ip >= 1) + 0.8 * holds("high_tech_enterprise"))
    return x, o.sme * (o.age >= 1) * (t >= INNOVATIVE_FROM.index)


def _specialised_sme(o, holds, ever, t):
    """专精特新中小企业 (附件2): revenue ≥ 1000万, R&D ≥ 100万 and ≥ 3 %, main business, IP."""
    x = (-9.0 + 0.7 * o.z + 2.0 * _step(o.rev, 1000, 150) + 2.0 * _step(o.rdi, 0.03, 0.004)
         + 1.0 * _step(o.rd, 100, 15) + 0.8 * _step(o.main_share, 0.7, 0.05)
         + 0.8 * (o.inv >= 1) + 0.6 * _step(o.growth_2y, 0.05, 0.04))
    # Before 创新型 existed nobody could hold it; the ladder tightens over its first two years.
    tight = min(1.0, max(0.0, (t - INNOVATIVE_FROM.index) / 8))
    ladder = np.where(holds("innovative_sme"), 1.0, 1.0 - 0.9 * tight)
    return x, o.sme * (o.age >= 2) * ladder


def _little_giant(o, holds, ever, t):
    """专精特新小巨人 (附件3): size, R&D ≥ 3 %, ≥ 2 Ⅰ类 IP, main business ≥ 70 %, debt ≤ 70 %."""
    x = (-8.9 + 0.8 * o.z + 1.5 * _step(o.rev, 5000, 800) + 1.5 * _step(o.rdi, 0.03, 0.004)
         + 1.2 * _step(o.inv, 2, 0.5) + 1.0 * _step(o.main_share, 0.7, 0.05)
         + 0.8 * _step(o.growth_2y, 0.05, 0.04) + 0.5 * (o.debt <= 0.7))
    return x, o.sme * (o.age >= 3) * np.where(holds("specialised_sme"), 1.0, 0.02)


def _high_tech_enterprise(o, holds, ever, t):
    """高新技术企业: 3-year R&D share by size band (5/4/3 %), core IP, S&T staff ≥ 10 %."""
    need = np.where(o.rev <= 5000, 0.05, np.where(o.rev <= 20000, 0.04, 0.03))
    x = (-7.6 + 0.6 * o.z + 2.2 * _step(o.rd3, need, 0.005) + 1.5 * (o.valid_ip >= 1)
         + 0.8 * (o.inv >= 1) + 1.0 * _step(o.rd_staff_share, 0.1, 0.02)
         + 1.2 * ever("high_tech_enterprise"))
    return x, (o.age >= 1).astype(np.float32)


def _tech_sme(o, holds, ever, t):
    """科技型中小企业: size gates, R&D share, S&T staff, IP; 高企 confirms directly."""
    x = (-8.35 + 0.5 * o.z + 1.5 * _step(o.rdi, 0.03, 0.008)
         + 1.0 * _step(o.rd_staff_share, 0.1, 0.03) + 1.0 * (o.valid_ip >= 1)
         + 1.5 * holds("high_tech_enterprise") + 1.0 * ever("tech_sme"))
    small = (o.emp <= 500) & (o.rev <= 20000) & (o.assets <= 20000)
    return x, np.where(small, 1.0, 0.05)


def _eaglet(o, holds, ever, t):
    """雏鹰 (Wuxi): 1–10 years old, revenue ≤ 2000万, R&D ≥ 3 %, IP, or venture money."""
    x = (-4.85 + 0.7 * o.z + 1.5 * _step(o.rdi, 0.03, 0.005) + 1.0 * (o.applied >= 1)
         + 0.8 * _step(o.raised_3y, 100, 30) + 0.6 * _step(o.rev, 100, 30)
         - 1.5 * _step(o.rev, 2000, 300))
    return x, ((o.age >= 1) & (o.age <= 10)).astype(np.float32)


def _gazelle(o, holds, ever, t):
    """瞪羚 (Wuxi): 3–10 years old, revenue band with growth ≥ 20/15/10 %, IP; after 雏鹰."""
    need = np.where(o.rev < 5000, 0.2, np.where(o.rev < 10000, 0.15, 0.10))
    x = (-4.65 + 0.7 * o.z + 1.5 * _step(o.rev, 2000, 300) + 1.8 * _step(o.growth, need, 0.04)
         + 0.8 * (o.valid_ip >= 1) + 0.5 * _step(o.rd, 200, 40)
         - 2.0 * _step(o.rev, 50000, 5000))
    return x, ((o.age >= 3) & (o.age <= 12)) * np.where(ever("eaglet"), 1.0, 0.15)


def _quasi_unicorn(o, holds, ever, t):
    """准独角兽 (Wuxi): ≤ 10 years, valuation ≥ 3亿元 (≤ 5 years) or 6亿元; after 瞪羚."""
    need = np.where(o.age <= 5, 30_000, 60_000)
    x = -4.2 + 0.8 * o.z + 3.0 * _step(o.valuation, need, need * 0.15)
    return x, (o.age <= 10) * (o.valuation > 0) * np.where(ever("gazelle"), 1.0, 0.3)


def _single_champion(o, holds, ever, t):
    """制造业单项冠军: a 小巨人 with a large, focused main business (rare)."""
    x = (-8.2 + 1.0 * o.z + 2.0 * _step(o.rev, 50_000, 10_000)
         + 1.0 * _step(o.main_share, 0.8, 0.05))
    return x, holds("little_giant").astype(np.float32)


def _unicorn(o, holds, ever, t):
    """独角兽: ≤ 10 years, valuation near 10亿美元; after 准独角兽 (very rare)."""
    x = -2.0 + 0.8 * o.z + 3.0 * _step(o.valuation, 700_000, 100_000)
    return x, (o.age <= 10) * (o.valuation > 300_000) * ever("quasi_unicorn")


def _rd_institution(o, holds, ever, t):
    """省级研发机构: R&D spending and staff."""
    x = -6.1 + 0.6 * o.z + 1.5 * _step(o.rd, 300, 60) + 1.0 * _step(o.emp, 50, 15)
    return x, np.ones_like(o.z)


_LOGITS = {"innovative_sme": _innovative_sme, "specialised_sme": _specialised_sme,
           "little_giant": _little_giant, "high_tech_enterprise": _high_tech_enterprise,
           "tech_sme": _tech_sme, "eaglet": _eaglet, "gazelle": _gazelle,
           "quasi_unicorn": _quasi_unicorn, "single_champion": _single_champion,
           "unicorn": _unicorn, "rd_institution_provincial": _rd_institution}


def _simulate_honors(rng: np.random.Generator, f: _Firms, a: _Annual, ip, fin, clock: _Clock):
    """Walk the simulated quarters; in each tier's batch quarters draw new recognitions from the
    hazards. Returns the 资质荣誉 rows dated by the end quarter, and the main tiers' hazards over
    [window start + 1, end + 4], the holdings at each window quarter's end and the recognitions
    (for the truth)."""
    n, k = f.n, len(TIERS)
    rec = np.full((k, n), -_NEVER, dtype=np.int64)          # quarter of the latest recognition
    ever = np.zeros((k, n), dtype=bool)
    length = np.array([t.valid_quarters or _NEVER for t in TIERS], dtype=np.int64)
    mains = [_K[m] for m in MAIN_TIERS]
    first_h = clock.window_start.index + 1
    # The truth needs the hazard a firm would face were it eligible (own-tier eligibility changes
    # only through the recognition being predicted) and, per window quarter, when it becomes
    # eligible again (the quarter its title expires).
    hazards = np.zeros((clock.w + HORIZON - 1, len(mains), n), dtype=np.float32)
    expires = np.zeros((clock.w, len(mains), n), dtype=np.int32)
    ever_at = np.zeros((clock.w, len(mains), n), dtype=bool)
    events: list[tuple[np.ndarray, int, int]] = []
    accounts: dict[int, dict] = {}
    for t in range(clock.h0, clock.h1 + 1):
        qoy = t % 4 + 1
        due = [tier for tier in TIERS if qoy in tier.batches]
        if due:
            # The last full year before the quarter starts: a December batch is judged on the
            # year before, as real assessments are (the current year's accounts are not closed).
            py = t // 4 - 1 - a.y0
            if py not in accounts:
                accounts.clear()
                accounts[py] = _accounts(a, py)
            k = t - 1 - clock.h0
            o = _observables(f, accounts[py], _at_quarter(ip, _IP_COUNTS, k, n),
                             _at_quarter(fin, _FIN_COUNTS, k, n), t)
            holds = lambda key, t=t: rec[_K[key]] + length[_K[key]] >= t
            was = lambda key: ever[_K[key]]
            new = []
            for tier in due:
                j = _K[tier.key]
                x, gate = _LOGITS[tier.key](o, holds, was, t)
                warm = np.float32(_warm_up(tier.key, t, clock))
                h = (_sigmoid(x) * gate * o.active * warm).astype(np.float32)
                if first_h <= t and tier.key in MAIN_TIERS:
                    hazards[t - first_h, MAIN_TIERS.index(tier.key)] = h
                h *= rec[j] + length[j] <= t
                hit = np.flatnonzero(rng.random(n, dtype=np.float32) < h)
                new.append((j, hit))
                events.append((hit, j, t))
            for j, hit in new:
                rec[j, hit] = t
                ever[j, hit] = True
        if clock.window_start.index <= t <= clock.end.index:
            expires[t - clock.window_start.index] = rec[mains] + length[mains, None]
            ever_at[t - clock.window_start.index] = ever[mains]
    return _honor_frame(rng, f, events, clock), SimpleNamespace(hazards=hazards, expires=expires,
                                                                ever=ever_at, events=events)


def _warm_up(key: str, t: int, clock: _Clock) -> float:
    """Hazards rise over the first three simulated years (and over 创新型's first six quarters), so
    that recognitions do not all fall in one batch and echo every three years."""
    ramp = min(1.0, (t - clock.h0 + 1) / 12)
    if key == "innovative_sme":
        ramp = min(ramp, max(0.0, (t - INNOVATIVE_FROM.index + 1) / 6))
    return ramp


def _honor_frame(rng, f: _Firms, events, clock: _Clock) -> pl.DataFrame:
    events = events or [(np.zeros(0, np.int64), 0, 0)]
    firm = np.concatenate([hit for hit, _, _ in events])
    tier = np.concatenate([np.full(hit.size, j) for hit, j, _ in events])
    quarter = np.concatenate([np.full(hit.size, t) for hit, _, t in events])
    day = _batch_days(rng, tier, quarter)
    keep = np.flatnonzero(day <= clock.end_day)
    keep = keep[np.lexsort((tier[keep], firm[keep], day[keep]))]
    firm, tier, day = firm[keep], tier[keep], day[keep]
    # the entry tier's recognitions from TECH_INNOVATIVE_FROM on carry its 2026 name (one more word)
    entry = next(j for j, t in enumerate(TIERS) if t.key == "innovative_sme")
    renamed = (tier == entry) & (day >= (np.datetime64(TECH_INNOVATIVE_FROM) - _EPOCH).astype(np.int64))
    frame = pl.DataFrame({
        "统一社会信用代码": f.uscc.gather(firm),
        "资质名称": _words([*(t.honor for t in TIERS), TECH_INNOVATIVE_NAME], np.where(renamed, len(TIERS), tier)),
        "级别": _words([t.level for t in TIERS], tier), "认定日期": _date_series("认定日期", day),
        "_years": np.array([(t.valid_quarters or 0) // 4 for t in TIERS])[tier],
    })
    valid = pl.when(pl.col("_years") > 0).then(pl.col("认定日期").dt.offset_by(
        pl.format("{}y", pl.col("_years")))).otherwise(None)
    return frame.with_columns(valid.alias("有效期至")).drop("_years")


def _batch_days(rng, tier: np.ndarray, quarter: np.ndarray) -> np.ndarray:
    """Each recognition gets one of its tier's batch dates in its quarter; the dates move a few
    days from year to year, as real announcements do."""
    out = np.zeros(tier.size, dtype=np.int64)
    for j, spec in enumerate(TIERS):
        for qoy, dates in spec.batches.items():
            sel = np.flatnonzero((tier == j) & (quarter % 4 + 1 == qoy))
            if sel.size == 0:
                continue
            pick = rng.integers(0, len(dates), sel.size)
            month = np.array([d[0] for d in dates])[pick]
            day = np.array([d[1] for d in dates])[pick]
            years = quarter[sel] // 4
            batch_years, which = np.unique(years, return_inverse=True)
            shift = rng.integers(-5, 6, batch_years.size)[which]
            months = ((years - 1970) * 12 + month - 1).astype("datetime64[M]")
            first = months.astype("datetime64[D]").astype(np.int64)
            out[sel] = first + np.clip(day + shift, 1, 28) - 1
    return out


# --- key projects -----------------------------------------------------------------------------

def _draw_projects(rng: np.random.Generator, f: _Firms, a: _Annual, clock: _Clock,
                   demo: bool) -> pl.DataFrame:
    """重点项目: one row per project and ledger year (亿元); big, strong firms carry them."""
    end_year, first_year = clock.end.year, clock.window_start.year
    log_rev = np.log(np.maximum(a.rev[end_year - a.y0], 1))
    alive = (f.exit_day > clock.end_day) & (f.founded < clock.end_day - 365)
    p = _sigmoid(-5.5 + 1.1 * (log_rev - np.log(1600)) + 0.4 * f.z) * alive
    if demo:
        p[: len(demo_city.KEY_ENTERPRISES)] = 0.0     # their projects are the listed ones
    firm = np.flatnonzero(rng.random(f.n) < p)
    m = firm.size
    start = first_year - 3 + rng.integers(0, end_year - first_year + 4, m)
    stop = start + rng.integers(1, 7, m)
    size = np.log(3.0) + 0.5 * (log_rev[firm] - np.log(20000)) + 0.6 * rng.standard_normal(m)
    total = np.round(np.clip(np.exp(size), 1.0, 120), 2)
    names = _project_names(rng, f, firm)
    in_span = np.arange(7)[None, :] < (stop - start + 1)[:, None]
    weights = rng.gamma(2.0, 1.0, (m, 7)) * in_span
    share = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    frames = [_demo_projects(rng, f, clock)] if demo else []
    for off in range(7):
        year = start + off
        sel = np.flatnonzero(in_span[:, off] & (year >= first_year) & (year <= end_year))
        planned = np.round(total[sel] * share[sel, off], 2)
        done = planned * rng.uniform(0.55, 1.15, sel.size)
        done = np.where(year[sel] == end_year, done * clock.end.q / 4, done)
        frames.append(pl.DataFrame({
            "项目名称": names.gather(sel), "项目单位": f.names.gather(firm[sel]),
            "起止年限": _join(start[sel].astype(str), "-", stop[sel].astype(str)),
            "计划总投资(亿元)": total[sel], "年度": year[sel].astype(np.int64),
            "年度计划投资(亿元)": planned,
            "年度完成投资(亿元)": np.where(rng.random(sel.size) < 0.08, np.nan, np.round(done, 2)),
            "所属板块": f.district_names(firm[sel]),
        }, schema=_PROJECT_SCHEMA))
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=_PROJECT_SCHEMA)
    return frame.with_columns(pl.col("年度完成投资(亿元)").fill_nan(None)).sort("年度", "项目名称")


_PROJECT_SCHEMA = {"项目名称": pl.Utf8, "项目单位": pl.Utf8, "起止年限": pl.Utf8,
                   "计划总投资(亿元)": pl.Float64, "年度": pl.Int64, "年度计划投资(亿元)": pl.Float64,
                   "年度完成投资(亿元)": pl.Float64, "所属板块": pl.Utf8}


def _project_names(rng, f: _Firms, firm: np.ndarray) -> pl.Series:
    """字号 + what is built, e.g. 恒达年产5000套污水处理项目; repeats become 二期, 三期…"""
    m = firm.size
    objects, obj = _vocab_index(rng, [i.objects for i in INDUSTRIES], f.industry[firm])
    obj = np.array(objects)[obj] if m else np.array([], dtype=str)
    kinds = np.array(("产业化项目", "生产线建设项目", "智能化技术改造项目", "生产基地建设项目",
                      "研发中心建设项目"))
    volume = np.array(("500", "1000", "2000", "5000", "10000", "20万"))[rng.integers(0, 6, m)]
    unit = np.array(("套", "吨", "台", "件"))[rng.integers(0, 4, m)]
    body = np.where(rng.random(m) < 0.4, _join("年产", volume, unit, obj, "项目"),
                    _join(obj, kinds[rng.integers(0, kinds.size, m)]))
    brand = [_brand_of(name) for name in f.names.gather(firm).to_list()]
    names = pl.Series("项目名称", [b + x for b, x in zip(brand, body.tolist())], dtype=pl.Utf8)
    phase = pl.int_range(pl.len()).over("n").clip(upper_bound=9) + 1
    numeral = phase.replace_strict(dict(enumerate("一二三四五六七八九十", start=1)),
                                   return_dtype=pl.Utf8)
    phased = pl.when(phase > 1).then(pl.concat_str("n", pl.lit("（"), numeral, pl.lit("期）")))
    return pl.DataFrame({"n": names}).select(phased.otherwise("n").alias("项目名称")).to_series()


def _brand_of(name: str) -> str:
    for prefix in ("宜兴市", "无锡市", "宜兴", "无锡", "江苏"):
        if name.startswith(prefix):
            return name[len(prefix): len(prefix) + 2]
    return name[:2]


def _demo_projects(rng, f: _Firms, clock: _Clock) -> pl.DataFrame:
    """The listed projects; planned investment for years without a known figure spreads what is
    left of the total evenly over the span."""
    names = f.names.head(len(demo_city.KEY_ENTERPRISES)).to_list()
    districts = list(demo_city.DISTRICTS)
    rows = []
    for p in demo_city.KEY_PROJECTS:
        first, last = p.span
        known = sum(p.planned_by_year.values())
        free = [y for y in range(first, last + 1) if y not in p.planned_by_year]
        for year in range(max(first, clock.window_start.year), min(last, clock.end.year) + 1):
            spread = round((p.planned_total_yi - known) / max(len(free), 1), 2)
            planned = p.planned_by_year.get(year, spread)
            so_far = clock.end.q / 4 if year == clock.end.year else 1.0
            done = planned * float(rng.uniform(0.7, 1.1)) * so_far
            rows.append({"项目名称": p.project_name, "项目单位": p.company_name,
                         "起止年限": f"{first}-{last}", "计划总投资(亿元)": p.planned_total_yi,
                         "年度": year, "年度计划投资(亿元)": planned,
                         "年度完成投资(亿元)": round(done, 2),
                         "所属板块": districts[f.district[names.index(p.company_name)]]})
    return pl.DataFrame(rows, schema=_PROJECT_SCHEMA)


# --- the truth ------------------------------------------------------------------------------------
#
# The probability a firm has at the end of window quarter q of a new recognition within four
# quarters is P_q = E[1 − Π_k (1 − h_{q+k}) | the generator's state at q's end]: the hazards of the
# batches q+1…q+4 depend on accounts of years not closed at q's end, on patents, financing and
# other titles still to come. `_expected_probabilities` estimates it by re-simulating that future
# `paths` times from q's end and averaging each path's 1 − Π(1 − h) (Rao-Blackwellised: the
# path's own probability, not its 0/1 outcome). The realised path's value stays beside it.

def _write_truth(folder: Path, st: SimpleNamespace, rng: np.random.Generator, paths: int) -> dict:
    """truth.parquet per (uscc, quarter, tier) for every firm registered by the quarter's end:
    `probability` the Monte Carlo P_q, `probability_path` 1 − Π(1 − h) along the realised path
    (h zero while a title held at q is still valid), `holds` whether the firm held the tier at
    q's end (such rows are not candidates for the tier). latent.parquet: the latent quality.
    Written in chunks of firms, text columns as dictionaries (fast at a million firms) stored as
    strings. Returns the Monte Carlo standard errors' summary over candidate rows."""
    f, clock = st.f, st.clock
    quarters = pl.Series([str(Quarter.from_index(t)) for t in clock.window]).to_arrow()
    tiers = pl.Series(list(MAIN_TIERS)).to_arrow()
    ends = _quarter_end(np.array(clock.window))
    n_tiers = len(MAIN_TIERS)
    per_firm = clock.w * n_tiers
    chunk = max(1, min(8_000_000 // per_firm, 400_000 // paths))
    writer, se_sum, se_max, rows = None, 0.0, 0.0, 0
    for lo in range(0, f.n, chunk):
        hi = min(f.n, lo + chunk)
        path = _realised_probabilities(st.h, clock, lo, hi).transpose(2, 0, 1)
        mean, se = (x.transpose(2, 0, 1) for x in _expected_probabilities(st, lo, hi, rng, paths))
        holds = st.h.expires[:, :, lo:hi] > np.array(clock.window)[:, None, None]
        holds = holds.transpose(2, 0, 1)
        registered = np.broadcast_to((f.founded[lo:hi, None] <= ends[None, :])[:, :, None],
                                     mean.shape)
        keep = np.flatnonzero(registered)
        candidate = (registered & ~holds).ravel()
        se_sum += float(se.ravel()[candidate].sum())
        se_max = max(se_max, float(se.ravel()[candidate].max(initial=0.0)))
        rows += int(candidate.sum())
        table = pa.Table.from_arrays([
            pa.DictionaryArray.from_arrays(_arrow((keep // per_firm).astype(np.int32)),
                                           f.uscc.slice(lo, hi - lo).to_arrow()),
            pa.DictionaryArray.from_arrays(_arrow((keep // n_tiers % clock.w).astype(np.int32)),
                                           quarters),
            pa.DictionaryArray.from_arrays(_arrow((keep % n_tiers).astype(np.int32)), tiers),
            _arrow(np.ascontiguousarray(mean).ravel()[keep]),
            _arrow(np.ascontiguousarray(path).ravel()[keep]),
            pl.Series(np.ascontiguousarray(holds).ravel()[keep]).to_arrow(),
        ], names=["uscc", "quarter", "tier", "probability", "probability_path", "holds"])
        if writer is None:
            writer = pq.ParquetWriter(folder / "truth.parquet", table.schema, compression="lz4",
                                      store_schema=False)
        writer.write_table(table)
    writer.close()
    pl.DataFrame({"uscc": f.uscc, "latent": f.z}).write_parquet(folder / "latent.parquet")
    if paths == 1:
        return {"paths": 1, "standard_error_mean": None, "standard_error_max": None}
    return {"paths": paths, "standard_error_mean": se_sum / max(rows, 1),
            "standard_error_max": se_max}


def _realised_probabilities(h: SimpleNamespace, clock: _Clock, lo: int, hi: int) -> np.ndarray:
    """(window quarter, tier, firm) 1 − Π(1 − h_{q+k}) along the realised path."""
    window_q = np.array(clock.window)[:, None, None]
    expires = h.expires[:, :, lo:hi]
    log_survival = np.zeros(expires.shape, dtype=np.float64)
    for k in range(1, HORIZON + 1):
        hazard = h.hazards[k - 1: k - 1 + clock.w, :, lo:hi]
        log_survival += np.log1p(-np.minimum(hazard, 0.999999)) * (window_q + k >= expires)
    return -np.expm1(log_survival)


def _expected_probabilities(st: SimpleNamespace, lo: int, hi: int, rng: np.random.Generator,
                            paths: int) -> tuple[np.ndarray, np.ndarray]:
    """(window quarter, tier, firm) Monte Carlo mean of P_q over `paths` re-simulated futures of
    firms lo…hi−1, and its standard error."""
    firms = np.arange(lo, hi)
    shape = (st.clock.w, len(MAIN_TIERS), firms.size)
    mean, se = np.zeros(shape), np.full(shape, np.nan)
    for w, qi in enumerate(st.clock.window):
        p = _path_probabilities(st, firms, paths, qi, _DrawnFuture(rng, st, firms, paths, qi))
        mean[w] = p.mean(axis=1)
        if paths > 1:
            se[w] = p.std(axis=1, ddof=1) / np.sqrt(paths)
    return mean, se


def _firm_view(f, idx: np.ndarray) -> SimpleNamespace:
    """The firm attributes the hazards and the event rates use, for firms `idx`."""
    return SimpleNamespace(n=idx.size, z=f.z[idx], industry=f.industry[idx], size=f.size[idx],
                           founded=f.founded[idx], exit_day=f.exit_day[idx],
                           found_q=f.found_q[idx], exit_q=f.exit_q[idx])


def _closed_year(qi: int) -> int:
    """The last year whose accounts are closed at quarter qi's end (its Q4 is over)."""
    return qi // 4 if qi % 4 == 3 else qi // 4 - 1


def _path_probabilities(st: SimpleNamespace, firms: np.ndarray, paths: int, qi: int,
                        future) -> np.ndarray:
    """(tier, path, firm) 1 − Π_k (1 − h_{qi+k}) along each of `paths` futures after qi's end.

    Everything up to qi's end comes from the simulation `st`; `future` supplies what comes after
    as (path, firm) arrays: `year(y)` the accounts of a year not closed at qi's end, `ip(s)` and
    `fin(s)` the IP and financing counts at a later quarter's end, `recognise(j, t, h)` who of
    the eligible is recognised at main tier j in batch quarter t. What is known at qi's end stays
    (firm,) and broadcasts, so it is computed once for all paths. A tier's own hazard is taken as
    long as it has not recognised the firm yet (its own `ever` frozen at qi), so the product is
    the probability of a first new recognition; the other titles evolve along the path (the
    ladders)."""
    clock, shape = st.clock, (paths, firms.size)
    view = _firm_view(st.f, firms)
    w = qi - clock.window_start.index
    length = np.array([TIERS[_K[key]].valid_quarters or _NEVER for key in MAIN_TIERS])
    length = length[:, None, None]
    expires = st.h.expires[w][:, None, firms].astype(np.int64)
    rec = np.broadcast_to(expires - length, (len(MAIN_TIERS), *shape)).copy()
    ever_q = st.h.ever[w][:, None, firms]
    ever = np.broadcast_to(ever_q, rec.shape).copy()
    log_survival = np.zeros(rec.shape)
    m = {key: i for i, key in enumerate(MAIN_TIERS)}
    accounts_of: dict[int, dict] = {}
    for t in range(qi + 1, qi + HORIZON + 1):
        due = [key for key in MAIN_TIERS if t % 4 + 1 in TIERS[_K[key]].batches]
        if not due:
            continue
        py = t // 4 - 1
        if py not in accounts_of:
            accounts_of[py] = _judged_accounts(st.a, firms, py, qi, future)
        o = _observables(view, accounts_of[py], *_counts_before(st, firms, t, qi, future), t)
        holds = lambda key, t=t: rec[m[key]] + length[m[key]] >= t
        new = []
        for key in due:
            j = m[key]
            was = lambda other, own=key: (ever_q if other == own else ever)[m[other]]
            x, gate = _LOGITS[key](o, holds, was, t)
            warm = np.float32(_warm_up(key, t, clock))
            h = (_sigmoid(x) * gate * o.active * warm).astype(np.float32)
            log_survival[j] += np.log1p(-np.minimum(h, 0.999999)) * (t >= expires[j])
            new.append((j, future.recognise(j, t, h * (rec[j] + length[j] <= t))))
        for j, hit in new:
            rec[j, hit] = t
            ever[j, hit] = True
    return -np.expm1(log_survival)


def _judged_accounts(a: _Annual, firms: np.ndarray, py: int, qi: int, future) -> dict:
    """The accounts terms of year py (with py − 1 and py − 2 for growth and 3-year R&D): closed
    years as simulated, a year not closed at qi's end from `future`."""
    years = [_year_accounts(a, y, firms) if y <= _closed_year(qi) else future.year(y)
             for y in (py - 2, py - 1, py)]
    stacked = {k: np.stack(np.broadcast_arrays(*[y[k] for y in years])) for k in _ACCOUNT_FIELDS}
    return _accounts(_Annual(py - 2, **stacked), 2)


def _counts_before(st: SimpleNamespace, firms: np.ndarray, t: int, qi: int,
                   future) -> tuple[SimpleNamespace, SimpleNamespace]:
    """IP and financing counts at the end of quarter t − 1: simulated up to qi, then `future`."""
    if t - 1 > qi:
        return future.ip(t - 1), future.fin(t - 1)
    k = t - 1 - st.clock.h0
    return (_rows(_at_quarter(st.ip, _IP_COUNTS, k, st.f.n), firms),
            _rows(_at_quarter(st.fin, _FIN_COUNTS, k, st.f.n), firms))


def _year_accounts(a: _Annual, year: int, firms: np.ndarray) -> dict[str, np.ndarray]:
    return {k: getattr(a, k)[year - a.y0][firms] for k in _ACCOUNT_FIELDS}


def _rows(counts: SimpleNamespace, firms: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(**{k: v[firms] for k, v in vars(counts).items()})


class _DrawnFuture:
    """`paths` fresh futures after quarter qi's end for a chunk of firms, as (path, firm) arrays
    (events carry the row p·n + i of firm i on path p), drawn as the generator draws: a new
    yearly shock on the revenue walk and new yearly ratios for a year not closed at qi's end;
    the outcome of applications pending at qi's end (grant or refusal and its day, given that
    neither came by then); new lapse days for patents valid then (the fee lapse is memoryless);
    new filings and rounds after qi's end at the generator's rates (a Poisson count restricted
    to the rest of a year is Poisson with the rest's share of the rate); fresh uniforms for the
    recognitions. Exits stay as drawn: the exit day is a firm parameter of the generator."""

    def __init__(self, rng: np.random.Generator, st: SimpleNamespace, firms: np.ndarray,
                 paths: int, qi: int) -> None:
        self.rng, self.st, self.qi, self.paths = rng, st, qi, paths
        self.firms, self.n, self.shape = firms, firms.size * paths, (paths, firms.size)
        self.view = _firm_view(st.f, firms)
        self.years: dict[int, dict[str, np.ndarray]] = {}
        self.ends = _quarter_end(np.arange(qi, qi + HORIZON))   # qi's end, then q+1…q+3
        self.ip_at = self._draw_ip()
        self.fin_at = self._draw_financing()

    def ip(self, s: int) -> SimpleNamespace:
        return self.ip_at[s - self.qi - 1]

    def fin(self, s: int) -> SimpleNamespace:
        return self.fin_at[s - self.qi - 1]

    def recognise(self, j: int, t: int, h: np.ndarray) -> np.ndarray:
        return self.rng.random(self.shape, dtype=np.float32) < h

    def year(self, y: int) -> dict[str, np.ndarray]:
        if y not in self.years:
            a, firms, view = self.st.a, self.firms, self.view
            walk = (a.level[y - 1 - a.y0][firms] + a.trend[firms]
                    + 0.11 * _normal(self.rng, self.shape))
            potential = (np.exp(walk) * _ramp(view.founded, np.array([y]))[0]).astype(np.float32)
            active = _active_quarters(view, y, _founding_fraction(view))[:, None, :]
            firm = _rows(a.firm, firms)
            self.years[y] = _year_totals(*_year_draws(self.rng, firm, potential, active))
        return self.years[y]

    def _new_events(self, rate_of, last_year: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows (p·n + i) and days of events after qi's end up to q+3's end, at the (firm, year)
        rates `rate_of(view, years)`, each uniform over the firm's active days as generated."""
        lo_day, hi_day = int(self.ends[0]) + 1, int(self.ends[-1])
        y_from, y_to = int(_quarter_of(lo_day)) // 4, int(_quarter_of(hi_day)) // 4
        years = np.arange(y_from, y_to + 1)
        rate = np.minimum(rate_of(self.view, years), 40.0)
        nc, local = self.firms.size, np.arange(self.firms.size)
        rows, days = [], []
        for yi, y in enumerate(years):
            lo, hi = _active_span(self.view, local, np.full(nc, y), _days(f"{last_year}-12-31"))
            a, b = np.maximum(lo, lo_day), np.minimum(hi, hi_day)
            share = np.where((hi >= lo) & (b >= a), (b - a + 1) / np.maximum(hi - lo + 1, 1), 0.0)
            count = self.rng.poisson(np.tile(rate[:, yi] * share, self.paths))
            row = np.repeat(np.arange(self.n), count)
            start, span = a[row % nc], (b - a + 1)[row % nc]
            rows.append(row)
            days.append(start + (self.rng.random(row.size) * span).astype(np.int64))
        row, day = np.concatenate(rows), np.concatenate(days)
        order = np.lexsort((day, row))
        return row[order], day[order]

    def _draw_ip(self) -> list[SimpleNamespace]:
        """IP counts at q+1…q+3's ends: those at q's end, plus grants of pending applications,
        minus lapses of patents valid then, plus what new filings add."""
        st, rng, nc, q_end = self.st, self.rng, self.firms.size, int(self.ends[0])
        ev = _firm_slice(st.ip.events, self.firms)
        pending = ((ev.filed <= q_end) & (ev.grant_day > q_end)
                   & ~((ev.grant_day >= _NEVER) & (ev.decided <= q_end)))
        valid = (ev.grant_day <= q_end) & (ev.lapse > q_end)
        open_ = np.flatnonzero(pending | valid)
        row = (np.tile(ev.firm[open_] - self.firms[0], self.paths)
               + np.repeat(np.arange(self.paths) * nc, open_.size))
        filed, kind = np.tile(ev.filed[open_], self.paths), np.tile(ev.kind[open_], self.paths)
        pending = np.tile(pending[open_], self.paths)
        invention, design = (kind == 1) | (kind == 8), kind == 3
        grant = np.tile(ev.grant_day[open_], self.paths)
        grant[pending] = _pending_grant_days(rng, self.view.z[row[pending] % nc], filed[pending],
                                             invention[pending], design[pending], q_end)
        unpaid = (rng.exponential(1, row.size) / _lapse_rate(invention, design)
                  * 365.25).astype(np.int64)
        lapse = np.minimum(np.where(pending, grant + unpaid, q_end + 1 + unpaid),
                           filed + _term(invention))
        new_row, new_filed = self._new_events(_patent_rate, st.clock.y1)
        new_kind, new_grant, _, new_lapse = _patent_fates(rng, self.view, new_row % nc, new_filed)
        new_inv = (new_kind == 1) | (new_kind == 8)
        # Only what changes within the horizon matters: keep those rows.
        last = self.ends[-1]
        moves = np.flatnonzero(np.where(pending, grant <= last, lapse <= last))
        row, pending, invention = row[moves], pending[moves], invention[moves]
        grant, lapse = grant[moves], lapse[moves]
        known = _rows(_at_quarter(st.ip, _IP_COUNTS, self.qi - st.clock.h0, st.f.n), self.firms)
        out = []
        for end in self.ends[1:]:
            def count(rows, mask):
                return np.bincount(rows[mask], minlength=self.n).reshape(self.shape)
            gained = pending & (grant <= end) & (lapse > end)
            lost = ~pending & (lapse <= end)
            new_valid = (new_grant <= end) & (new_lapse > end)
            inv = (known.inv_valid + count(row, gained & invention) - count(row, lost & invention)
                   + count(new_row, new_valid & new_inv))
            out.append(SimpleNamespace(
                inv_valid=inv.astype(np.int16),
                valid=(known.valid + count(row, gained) - count(row, lost)
                       + count(new_row, new_valid)).astype(np.int16),
                applied=(known.applied + count(new_row, new_filed <= end)).astype(np.int16)))
        return out

    def _draw_financing(self) -> list[SimpleNamespace]:
        """Valuation and equity raised in three years at q+1…q+3's ends: new rounds continue the
        firm's sequence of rounds (round names, hence amounts, depend on how many came before)."""
        st, nc, q_end = self.st, self.firms.size, int(self.ends[0])
        ev = _firm_slice(st.fin.events, self.firms)
        before = np.bincount(ev.firm[ev.day <= q_end] - self.firms[0], minlength=nc)
        row, day = self._new_events(_financing_rate, st.clock.y1)
        local = row % nc
        rnd = _round_of(self.view, local, day, before[local] + _rank_in_runs(row))
        amount, post = _round_money(self.rng, self.view, local, rnd)
        firms, kq = self.firms, self.qi - st.clock.h0
        known = _rows(_at_quarter(st.fin, _FIN_COUNTS, kq, st.f.n), firms)
        out = []
        for s, end in enumerate(self.ends[1:], start=1):
            done = np.flatnonzero(day <= end)
            last = done[np.r_[row[done][1:] != row[done][:-1], True]] if done.size else done
            valuation = np.broadcast_to(known.valuation, self.shape).copy()
            valuation.ravel()[row[last]] = post[last]
            k_old = kq + s - 12
            since = (st.fin.raised_cum[kq][firms]
                     - (st.fin.raised_cum[k_old][firms] if k_old >= 0 else 0))
            raised = since + np.bincount(row[done], weights=amount[done],
                                         minlength=self.n).reshape(self.shape)
            out.append(SimpleNamespace(valuation=valuation.astype(np.float32),
                                       raised_3y=raised.astype(np.float32)))
        return out


def _firm_slice(events: SimpleNamespace, firms: np.ndarray) -> SimpleNamespace:
    """The events (sorted by firm) of the contiguous firms `firms`."""
    lo, hi = np.searchsorted(events.firm, [firms[0], firms[-1] + 1])
    return SimpleNamespace(**{k: v[lo:hi] for k, v in vars(events).items()})


def _pending_grant_days(rng, z, filed, invention, design, q_end: int) -> np.ndarray:
    """Grant day (_NEVER if refused) of applications neither granted nor refused by q_end: grant
    with p·S_g / (p·S_g + (1 − p)·S_r), S the chance each uniform delay outlasts the wait so far,
    then the delay uniform over what is left of its range."""
    m = filed.size
    waited = (q_end - filed + 1).astype(np.float64)   # delays are whole days: ≥ this to be open
    def outlasts(ranges):
        lo = np.where(invention, ranges["invention"][0],
                      np.where(design, ranges["design"][0], ranges["utility"][0]))
        hi = np.where(invention, ranges["invention"][1],
                      np.where(design, ranges["design"][1], ranges["utility"][1]))
        return np.clip((hi - waited) / (hi - lo), 0, 1), np.maximum(lo, waited), hi
    s_grant, low, high = outlasts(_GRANT_DELAY)
    s_refuse, _, _ = outlasts(_REFUSAL_DELAY)
    p = _grant_probability(z, invention, design) * s_grant
    denominator = p + (1 - _grant_probability(z, invention, design)) * s_refuse
    p = np.divide(p, denominator, out=np.zeros(m), where=denominator > 0)
    granted = rng.random(m) < p
    delay = low + rng.random(m) * (high - low)
    return np.where(granted, filed + delay.astype(np.int64), _NEVER)


def _arrow(values: np.ndarray) -> pa.Array:
    """A numeric numpy array as an Arrow array, zero-copy (pa.array would import pandas)."""
    values = np.ascontiguousarray(values)
    kind = {np.dtype(np.int32): pa.int32(), np.dtype(np.float64): pa.float64()}[values.dtype]
    return pa.Array.from_buffers(kind, values.size, [None, pa.py_buffer(values)])


# --- writing the drop -----------------------------------------------------------------------------

class _Sink:
    """Where drawn tables go: straight to the clean drop's files, or kept for dirty mode."""

    def __init__(self, out: Path, fmt: str, keep: bool) -> None:
        self.out, self.fmt, self.keep = out, fmt, keep
        self.tables: dict[str, pl.DataFrame] = {}
        self.files: dict[str, Path] = {}
        self.rows: dict[str, int] = {}

    def put(self, stem: str, frame: pl.DataFrame) -> None:
        frame = frame.select(HEADERS[stem])
        if self.keep:
            self.tables[stem] = frame
            return
        path = self.out / f"{stem}.{self.fmt}"
        if self.fmt == "csv":
            frame.write_csv(path, include_bom=True, float_scientific=False)
        else:
            frame.write_parquet(path, compression="lz4")
        self.files[stem], self.rows[stem] = path, frame.height


# --- dirty mode -------------------------------------------------------------------------------

_MARKERS = ("-", "—", "/", "无")
_CN_QUARTER = "一二三四"


class _Sheet:
    """One table as text cells, with the faults injected into it. Rows keep an order key so that
    appended rows (duplicates, revisions) land where a clerk's file would have them, and every
    fault can be traced to the row number a person sees."""

    def __init__(self, frame: pl.DataFrame, rng: np.random.Generator) -> None:
        self.rng = rng
        self.columns = list(frame.columns)
        self.cells = {c: frame[c].to_numpy().astype(object) for c in self.columns}
        self.order = np.arange(frame.height, dtype=float)
        self.used = np.zeros(frame.height, dtype=bool)
        self.appended = 0
        # (order key, column, kind, expect, detail, order key of the row it copies or None)
        self.faults: list[tuple[float, str, str, str, str, float | None]] = []

    @property
    def n(self) -> int:
        return self.order.size

    def count(self, rate: float, minimum: int) -> int:
        return max(minimum, round(rate * self.n))

    def pick(self, k: int, where: np.ndarray | None = None) -> np.ndarray:
        """k untouched rows (fewer if fewer qualify), marked as touched."""
        # (as bool: an empty mask built from an empty list is float)
        rows = np.flatnonzero(~self.used if where is None else (~self.used & np.asarray(where, dtype=bool)))
        rows = self.rng.permutation(rows)[:k] if rows.size else rows
        self.used[rows] = True
        return np.sort(rows)

    def set(self, rows, column: str, values, kind: str, expect: str, details=None) -> None:
        for i, (r, v) in enumerate(zip(rows, values)):
            old = self.cells[column][r]
            self.cells[column][r] = v
            detail = details[i] if details is not None else f"{old} → {v}"
            self.faults.append((self.order[r], column, kind, expect, detail, None))

    def mutate(self, rows, column: str, change, kind: str, expect: str) -> None:
        """Replace each picked cell by change(old cell)."""
        self.set(rows, column, [change(self.cells[column][r]) for r in rows], kind, expect)

    def append(self, rows, kind: str, expect: str, column: str = "", changes=None,
               at_end: bool = False, details=None) -> None:
        """Copies of `rows` (with `changes[column] = values`), after a random later row or at the
        end; each detail may name the copied row as {row}."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        changes = changes or {}
        for c in self.columns:
            new = self.cells[c][rows].copy()
            if c in changes:
                new[:] = changes[c]
            self.cells[c] = np.concatenate([self.cells[c], new])
        serial = (self.appended + np.arange(rows.size) + 1) * 1e-7    # keeps every key distinct
        self.appended += rows.size
        if at_end:
            order = self.order.max() + 1 + np.arange(rows.size)
        else:
            later = self.rng.uniform(self.order[rows], self.order.max())
            order = np.floor(later) + 0.5 + serial
        sources = self.order[rows]
        self.order = np.concatenate([self.order, order])
        self.used = np.concatenate([self.used, np.ones(rows.size, dtype=bool)])
        for i, o in enumerate(order):
            detail = details[i] if details is not None else "与第 {row} 行完全相同"
            self.faults.append((o, column, kind, expect, detail, sources[i]))

    def frame(self) -> pl.DataFrame:
        order = np.argsort(self.order, kind="stable")
        return pl.DataFrame({c: pl.Series(c, [None if v in (None, "") else str(v)
                                              for v in self.cells[c][order]], dtype=pl.Utf8)
                             for c in self.columns})

    def fault_rows(self, table: str, file: str, first_row: int) -> list[dict]:
        rank = {o: i for i, o in enumerate(np.sort(self.order))}
        return [{"table": table, "file": file, "row": first_row + rank[o], "column": c,
                 "kind": k, "expect": e,
                 "detail": d if src is None else d.format(row=first_row + rank[src])}
                for o, c, k, e, d, src in self.faults]


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every cell as the text a clerk's file would hold (ISO dates, numbers without a '.0')."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.Date:
            col = col.dt.to_string("%Y-%m-%d")
        elif dtype.is_float():
            col = col.cast(pl.Utf8).str.replace(r"\.0$", "")
        else:
            col = col.cast(pl.Utf8)
        exprs.append(col.alias(name))
    return frame.select(exprs)


def _date_variant(rng, iso: str) -> str:
    y, m, d = iso.split("-")
    form = int(rng.integers(0, 3))
    return (f"{y}/{int(m)}/{int(d)}", f"{y}年{int(m)}月{int(d)}日", f"{y}{m}{d}")[form]


def _period_variant(rng, period: str) -> str:
    y, q = period[:4], int(period[5])
    form = int(rng.integers(0, 3))
    return (f"{y}年{_CN_QUARTER[q - 1]}季度", f"{y}年1-{3 * q}月", f"{y}-{3 * q:02d}")[form]


def _bad_check(rng, code: str) -> str:
    value = USCC_ALPHABET.index(code[17])
    return code[:17] + USCC_ALPHABET[(value + int(rng.integers(1, 31))) % 31]


def _legacy_numbers(rng, k: int) -> list[str]:
    """15-digit 注册号 (GS 15-2006) with a valid MOD 11,10 check digit."""
    body = np.concatenate([np.tile(_ascii("320282"), (k, 1)),
                           _digits(rng.integers(0, 10**8, k), 8)], axis=1)
    codes = np.concatenate([body, _legacy_check_digits(body)[:, None]], axis=1)
    return _to_str(codes).to_list()


def _marker(rng):
    return lambda _old: _MARKERS[int(rng.integers(0, len(_MARKERS)))]


def _num(text: str) -> float:
    return float(str(text).replace(",", ""))


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _filled(sheet: _Sheet, column: str) -> np.ndarray:
    return np.array([v not in (None, "") for v in sheet.cells[column]], dtype=bool)


def _write_dirty(out: Path, tables: dict[str, pl.DataFrame], f: _Firms, rng: np.random.Generator,
                 clock: _Clock) -> tuple[dict, dict, pl.DataFrame]:
    """Inject the faults real drops carry, write the tables in mixed formats, list the faults."""
    sheets = {stem: _Sheet(_as_text(tables[stem]), rng) for stem in HEADERS}
    _dirty_enterprises(sheets["企业登记"], tables, rng)
    _dirty_filings(sheets["财务快报"], rng)
    _dirty_patents(sheets["专利"], f, rng)
    _dirty_projects(sheets["重点项目"])
    _dirty_financing(sheets["融资"], rng)
    _dirty_honors(sheets["资质荣誉"], rng)

    files, rows, faults = {}, {}, []
    title = f"{clock.end.year}年{_CN_QUARTER[clock.end.q - 1]}季度重点项目台账"
    for stem, sheet in sheets.items():
        frame, table = sheet.frame(), TABLE_OF_STEM[stem]
        if stem == "财务快报":
            path = out / f"{stem}.csv"
            path.write_bytes(frame.write_csv(float_scientific=False).encode("gb18030"))
            faults.append({"table": table, "file": path.name, "row": None, "column": "",
                           "kind": "encoding_gb18030", "expect": "normalise",
                           "detail": "GB18030 编码"})
        elif stem == "重点项目":
            path = out / f"{stem}.xlsx"
            _write_titled_xlsx(path, frame, title, clock)
            faults.append({"table": table, "file": path.name, "row": 1, "column": "",
                           "kind": "title_row", "expect": "normalise", "detail": title})
        elif stem == "资质荣誉":
            path = out / f"{stem}.parquet"
            frame.with_columns(pl.col("认定日期", "有效期至").str.to_date("%Y-%m-%d")).write_parquet(path)
        else:
            path = out / f"{stem}.csv"
            frame.write_csv(path, include_bom=stem != "专利", float_scientific=False)
        faults.extend(sheet.fault_rows(table, path.name, 3 if stem == "重点项目" else 2))
        files[stem], rows[stem] = path, frame.height
    schema = {"table": pl.Utf8, "file": pl.Utf8, "row": pl.Int64, "column": pl.Utf8,
              "kind": pl.Utf8, "expect": pl.Utf8, "detail": pl.Utf8}
    frame = pl.DataFrame(faults, schema=schema)
    return files, rows, frame.sort("table", "row", "column", "kind", nulls_last=False)


def _write_titled_xlsx(path: Path, frame: pl.DataFrame, title: str, clock: _Clock) -> None:
    """A ledger as clerks keep it: a merged title row, the header, numbers as numbers."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path))
    wb.set_properties({"created": dt.datetime.combine(clock.end.end, dt.time())})  # no clock time
    ws = wb.add_worksheet("重点项目")
    ws.merge_range(0, 0, 0, len(frame.columns) - 1, title, wb.add_format({"bold": True}))
    ws.write_row(1, 0, frame.columns)
    numeric = {"计划总投资(亿元)", "年度", "年度计划投资(亿元)", "年度完成投资(亿元)"}
    for r, row in enumerate(frame.iter_rows(), start=2):
        for c, (name, value) in enumerate(zip(frame.columns, row)):
            if value is None:
                continue
            try:
                number = float(value) if name in numeric else None
            except ValueError:
                number = None
            if number is None:
                ws.write_string(r, c, value)
            else:
                ws.write_number(r, c, number)
    wb.close()


def _isolated_firms(tables: dict[str, pl.DataFrame]) -> np.ndarray:
    """Registry rows of firms no other table mentions: a broken code there orphans nothing."""
    ent = tables["企业登记"]
    codes = pl.concat([tables[s]["统一社会信用代码"] for s in ("财务快报", "融资", "资质荣誉")])
    names = pl.concat([tables["专利"]["申请人"].str.split(";").explode(),
                       tables["重点项目"]["项目单位"], tables["融资"]["企业名称"]])
    known = (ent["统一社会信用代码"].is_in(codes.drop_nulls().implode())
             | ent["企业名称"].is_in(names.implode()))
    return (~known).to_numpy()


def _dirty_enterprises(s: _Sheet, tables, rng) -> None:
    isolated = _isolated_firms(tables)
    code = "统一社会信用代码"
    s.mutate(s.pick(s.count(0.0005, 1), isolated), code, lambda c: _bad_check(rng, c),
             "bad_uscc_check", "quarantine")
    s.mutate(s.pick(s.count(0.0005, 1), isolated), code, lambda c: c[:-1],
             "bad_uscc_length", "quarantine")
    rows = s.pick(s.count(0.0005, 1), isolated)
    s.set(rows, code, _legacy_numbers(rng, rows.size), "legacy_registration_no", "quarantine")
    s.mutate(s.pick(s.count(0.004, 2)), "成立日期", lambda d: _date_variant(rng, d),
             "date_format", "normalise")
    money = "注册资本(万元)"
    capital = np.array([_num(v) for v in s.cells[money]])
    s.mutate(s.pick(s.count(0.002, 1), capital >= 1000), money,
             lambda v: f"{_num(v):,.4f}".rstrip("0").rstrip("."), "thousands_separator",
             "normalise")
    s.mutate(s.pick(s.count(0.001, 1)), money, _marker(rng), "missing_marker", "null")
    rows = s.pick(s.count(0.001, 1), isolated)    # both rows of a conflicting key are suspect
    changed = [_fmt(capital[r] * 2 + 100) for r in rows]
    s.append(rows, "conflicting_duplicate", "quarantine", money, {money: changed},
             details=[f"与第 {{row}} 行同一代码, 注册资本 {s.cells[money][r]} → {v}"
                      for r, v in zip(rows, changed)])
    s.append(s.pick(s.count(0.002, 1)), "exact_duplicate", "dedupe")


def _dirty_filings(s: _Sheet, rng) -> None:
    """Value faults (元 rows, a falling YTD, revisions) go to distinct firms and leave the rows
    they are judged against untouched; format faults go anywhere else."""
    codes, periods = s.cells["统一社会信用代码"], s.cells["报告期"]
    rev, main = "营业收入(万元)", "主营业务收入(万元)"
    firm = np.unique(codes.astype(str), return_inverse=True)[1]
    rows_per_firm = np.bincount(firm)
    prev_row = _previous_quarter_rows(codes, periods)
    firm_taken = np.zeros(rows_per_firm.size, dtype=bool)

    def pick_firms(k: int, where: np.ndarray) -> np.ndarray:
        rows = s.pick(k * 3, where & ~firm_taken[firm])
        rows = rows[np.unique(firm[rows], return_index=True)[1]][:k]   # one row per firm; the
        firm_taken[firm[rows]] = True                                  # rest stay unfaulted
        s.used[prev_row[rows][prev_row[rows] >= 0]] = True
        return rows

    rows = pick_firms(s.count(0.001, 2), rows_per_firm[firm] >= 3)
    for r in rows:
        for c in MONEY_COLUMNS:
            if s.cells[c][r] not in (None, ""):
                s.cells[c][r] = _fmt(_num(s.cells[c][r]) * 10_000)
    s.faults.extend((s.order[r], rev, "unit_yuan", "flag", "本行金额按元填报 (×10000)", None)
                    for r in rows)

    quarter = np.array([int(p[5]) for p in periods.astype(str)])
    prev_ok = prev_row >= 0
    prev_ok[prev_ok] = ~s.used[prev_row[prev_ok]]
    for r in pick_firms(s.count(0.001, 2), (quarter >= 3) & prev_ok):
        p = prev_row[r]
        flow = _num(s.cells[rev][r]) - _num(s.cells[rev][p])
        if 0 <= flow < _num(s.cells[rev][p]):
            s.cells[main][r] = _fmt(max(_num(s.cells[main][r]) - _num(s.cells[main][p]), 0.0))
            s.set([r], rev, [_fmt(flow)], "ytd_decrease", "flag",
                  [f"填了单季值 {_fmt(flow)}, 上期累计 {s.cells[rev][p]}"])

    rows = pick_firms(s.count(0.001, 2), np.ones(s.n, dtype=bool))
    factor = rng.choice(np.r_[rng.uniform(0.85, 0.97, 8), rng.uniform(1.03, 1.15, 8)], rows.size)
    new_rev = [_num(s.cells[rev][r]) * x for r, x in zip(rows, factor)]
    new_main = [min(_num(s.cells[main][r]) * x, v) for r, x, v in zip(rows, factor, new_rev)]
    s.append(rows, "revision", "later_wins", rev, at_end=True,
             changes={rev: [_fmt(v) for v in new_rev], main: [_fmt(v) for v in new_main]},
             details=[f"第 {{row}} 行 {periods[r]} 的修订: {s.cells[rev][r]} → {_fmt(v)}"
                      for r, v in zip(rows, new_rev)])
    s.append(s.pick(s.count(0.001, 2)), "exact_duplicate", "dedupe")
    s.mutate(s.pick(s.count(0.0005, 1)), "统一社会信用代码", lambda c: _bad_check(rng, c),
             "bad_uscc_check", "quarantine")
    s.mutate(s.pick(s.count(0.003, 3)), "报告期", lambda p: _period_variant(rng, p),
             "period_form", "normalise")
    revenue = np.array([_num(v) for v in s.cells[rev]])
    s.mutate(s.pick(s.count(0.003, 3), revenue >= 1000), rev, lambda v: f"{_num(v):,.2f}",
             "thousands_separator", "normalise")
    exports = _filled(s, "出口额(万元)")
    for r in s.pick(s.count(0.002, 3)):
        column = "出口额(万元)" if exports[r] else "研发费用(万元)"
        s.mutate([r], column, _marker(rng), "missing_marker", "null")


def _previous_quarter_rows(codes: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """For each filing row, the row of the same firm's previous quarter in the year (or -1)."""
    frame = pl.DataFrame({"i": np.arange(codes.size), "uscc": codes.astype(str),
                          "period": periods.astype(str)})
    quarter = pl.col("period").str.slice(5, 1).cast(pl.Int64)
    prev = frame.with_columns(prev=pl.col("period").str.slice(0, 5) + (quarter - 1).cast(pl.Utf8))
    prev = prev.join(frame.rename({"i": "j", "period": "prev"}), on=["uscc", "prev"], how="left")
    return prev.sort("i")["j"].fill_null(-1).to_numpy()


def _dirty_patents(s: _Sheet, f: _Firms, rng) -> None:
    """Applicant names as other offices spell them, plus format faults and duplicates."""
    applicants = s.cells["申请人"].astype(str)
    first = np.array([a.split(";")[0] for a in applicants], dtype=object)
    taken = set(f.names.to_list()) | set(f.former.drop_nulls().to_list())
    former = dict(zip(f.names.to_list(), f.former.to_list()))

    def variant(rows, spell, kind: str, note: str = "") -> None:
        names = [spell(first[r]) for r in rows]
        values = [n + applicants[r][len(first[r]):] for r, n in zip(rows, names)]
        s.set(rows, "申请人", values, kind, "match",
              [f"{first[r]} → {n}" + (f" ({note})" if note else "") for r, n in zip(rows, names)])

    brackets = np.array(["(" in x for x in first])
    variant(s.pick(s.count(0.002, 1), brackets),
            lambda n: n.replace("(", "（").replace(")", "）"), "applicant_bracket_width")
    variant(s.pick(s.count(0.002, 1)), _spaced, "applicant_spaces")
    forms = [_other_legal_form(x, taken) for x in first]
    variant(s.pick(s.count(0.002, 1), np.array([x is not None for x in forms])),
            lambda n: _other_legal_form(n, taken), "applicant_org_form", "组织形式写法不同, 无歧义")
    renamed = np.array([bool(former.get(x)) for x in first])
    variant(s.pick(s.count(0.002, 1), renamed), lambda n: former[n], "applicant_former_name",
            "曾用名")
    s.mutate(s.pick(s.count(0.003, 2)), "申请日", lambda d: _date_variant(rng, d),
             "date_format", "normalise")
    s.mutate(s.pick(s.count(0.002, 1)), "申请号", lambda v: "CN" + v,
             "application_no_form", "normalise")
    s.mutate(s.pick(s.count(0.001, 1), ~_filled(s, "授权公告日")), "授权公告日", lambda _: "—",
             "missing_marker", "null")
    s.append(s.pick(s.count(0.001, 1)), "exact_duplicate", "dedupe")
    rows = s.pick(s.count(0.0005, 1), s.cells["法律状态"] == "有效")
    s.append(rows, "conflicting_duplicate", "quarantine", "法律状态", {"法律状态": "失效"},
             details=[f"与第 {{row}} 行同一申请号 {s.cells['申请号'][r]}, 法律状态 有效 / 失效"
                      for r in rows])


def _spaced(name: str) -> str:
    """A space after the place name (or before the legal form), as typed by hand."""
    cut = next((len(p) for p in ("宜兴市", "无锡市", "宜兴", "无锡", "江苏") if name.startswith(p)),
               len(name) - 4)
    return name[:cut] + " " + name[cut:]


def _other_legal_form(name: str, taken: set[str]) -> str | None:
    """有限公司 ↔ 有限责任公司, only when the other spelling is nobody's name."""
    if name.endswith("有限责任公司"):
        other = name[: -len("有限责任公司")] + "有限公司"
    elif name.endswith("有限公司") and not name.endswith("股份有限公司"):
        other = name[: -len("有限公司")] + "有限责任公司"
    else:
        return None
    return None if other in taken else other


def _dirty_projects(s: _Sheet) -> None:
    if s.n == 0:
        return
    s.mutate(s.pick(s.count(0.01, 1), _filled(s, "年度完成投资(亿元)")), "年度完成投资(亿元)",
             lambda _: "/", "missing_marker", "null")
    s.append(s.pick(s.count(0.005, 1)), "exact_duplicate", "dedupe")


def _dirty_financing(s: _Sheet, rng) -> None:
    if s.n == 0:
        return
    words = ("数千万", "未披露", "数百万", "超亿元")
    s.mutate(s.pick(s.count(0.02, 2)), "融资金额(万元)", lambda _: words[int(rng.integers(0, 4))],
             "amount_undisclosed", "null")
    s.mutate(s.pick(1, _filled(s, "统一社会信用代码")), "企业名称",
             lambda _: '=HYPERLINK("http://x","y")', "formula_injection", "sanitise")
    s.mutate(s.pick(s.count(0.01, 1)), "融资日期", lambda d: _date_variant(rng, d),
             "date_format", "normalise")
    s.mutate(s.pick(s.count(0.01, 1), _filled(s, "投后估值(万元)")), "投后估值(万元)",
             _marker(rng), "missing_marker", "null")
    s.append(s.pick(s.count(0.005, 1)), "exact_duplicate", "dedupe")


def _dirty_honors(s: _Sheet, rng) -> None:
    if s.n == 0:
        return
    s.mutate(s.pick(s.count(0.001, 1)), "统一社会信用代码", lambda c: _bad_check(rng, c),
             "bad_uscc_check", "quarantine")
    s.append(s.pick(s.count(0.002, 1)), "exact_duplicate", "dedupe")
