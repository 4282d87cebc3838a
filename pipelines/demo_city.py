"""The demo city, 宜兴 (Yixing, Wuxi): its geography and the entities the demo embeds by name.

Used by `pipelines.synth`: the districts, chain layers and registration-region prefixes shape every
synthetic drop; `KEY_ENTERPRISES` and `KEY_PROJECTS` are embedded only with `demo=True`.

What is real and what is not:
- Real, public: the district names, the chain layer names, the two named enterprises
  (易鸿智能装备(宜兴)有限公司 as 链主, 无锡市海容电子有限公司), and of 海容电子's key project
  超级陶瓷电容器与智能传感器制造项目 its name, its span 2022-2029, its planned total 103 亿元 and
  its 2023 planned investment 8 亿元.
- Synthetic, even for the two real names: every credit code, founding date, district and industry
  assignment, financial figure, patent, honor and financing event the generator attaches to them,
  and the project's planned investment for years other than 2023.
- Placeholders: the seed action plan names nine key enterprises and five key projects; the full
  list is not available to us. Entries marked `real=False` below are clearly synthetic stand-ins
  (their names carry 示例 / （占位）) to be replaced from the action plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CITY = "宜兴市"

# Parks, towns and streets (所属板块), with the share of firms each holds in the synthetic city.
DISTRICTS: dict[str, float] = {
    "环科园": 0.16,      # 宜兴环保科技工业园
    "经开区": 0.18,      # 宜兴经济技术开发区
    "宜城街道": 0.10,
    "万石镇": 0.07,
    "丁蜀镇": 0.10,
    "和桥镇": 0.08,
    "高塍镇": 0.08,
    "新街街道": 0.07,
    "屺亭街道": 0.05,
    "周铁镇": 0.04,
    "官林镇": 0.04,
    "徐舍镇": 0.03,
}

CHAIN_LAYERS = ("基础支撑层", "技术产品层", "应用示范层")

# Registration-region codes (GB/T 2260) in credit codes: 宜兴 itself, Wuxi city, Wuxi districts.
REGION_PREFIXES: dict[str, float] = {
    "320282": 0.76,  # 宜兴市
    "320200": 0.08,  # 无锡市
    "320205": 0.03,  # 锡山区
    "320206": 0.03,  # 惠山区
    "320211": 0.04,  # 滨湖区
    "320213": 0.03,  # 梁溪区
    "320214": 0.03,  # 新吴区
}


@dataclass(frozen=True)
class KeyEnterprise:
    name: str
    real: bool                  # True: a real firm named in the seed; False: placeholder
    industry_code: str
    district: str
    chain_layer: str
    chain_leader: bool
    revenue_wan: float          # synthetic annual revenue at the end quarter (万元)
    latent: float               # synthetic latent quality
    founded: str                # synthetic founding date


@dataclass(frozen=True)
class KeyProject:
    project_name: str
    company_name: str
    real: bool
    span: tuple[int, int]
    planned_total_yi: float
    # Known annual planned investment (亿元); other years are synthesised to fit the total.
    planned_by_year: dict[int, float] = field(default_factory=dict)


KEY_ENTERPRISES: tuple[KeyEnterprise, ...] = (
    # Real names; every attribute synthetic.
    KeyEnterprise("易鸿智能装备(宜兴)有限公司", True, "C3562", "经开区", "技术产品层", True,
                  260_000.0, 2.2, "2012-06-18"),
    KeyEnterprise("无锡市海容电子有限公司", True, "C3981", "环科园", "技术产品层", False,
                  85_000.0, 1.8, "2006-09-12"),
    # Placeholders, to be replaced from the action plan's list of nine key enterprises.
    KeyEnterprise("宜兴市示例甲环保装备有限公司", False, "C3591", "环科园", "应用示范层", False,
                  48_000.0, 1.4, "2009-03-02"),
    KeyEnterprise("宜兴示例乙特种陶瓷有限公司", False, "C3073", "丁蜀镇", "基础支撑层", False,
                  22_000.0, 1.2, "2011-11-21"),
    KeyEnterprise("江苏示例丙电缆股份有限公司", False, "C3831", "高塍镇", "基础支撑层", False,
                  150_000.0, 0.9, "2003-05-16"),
    KeyEnterprise("示例丁传感科技(宜兴)有限公司", False, "C3983", "经开区", "技术产品层", False,
                  9_000.0, 1.6, "2018-08-08"),
    KeyEnterprise("宜兴市示例戊新能源科技有限公司", False, "C3841", "万石镇", "技术产品层", False,
                  36_000.0, 1.1, "2016-04-12"),
    KeyEnterprise("无锡示例己智能科技有限公司", False, "I6513", "宜城街道", "应用示范层", False,
                  4_000.0, 1.5, "2020-10-26"),
    KeyEnterprise("宜兴示例庚水处理设备有限公司", False, "C3591", "和桥镇", "应用示范层", False,
                  12_000.0, 0.8, "2008-01-15"),
)

KEY_PROJECTS: tuple[KeyProject, ...] = (
    # Real: name, company, span, total and the 2023 figure.
    KeyProject("超级陶瓷电容器与智能传感器制造项目", "无锡市海容电子有限公司", True,
               (2022, 2029), 103.0, {2023: 8.0}),
    # Placeholders, to be replaced from the action plan's list of five key projects.
    KeyProject("示例甲高端环保装备产业化项目（占位）", "宜兴市示例甲环保装备有限公司", False,
               (2023, 2026), 12.0),
    KeyProject("示例乙先进陶瓷材料生产线项目（占位）", "宜兴示例乙特种陶瓷有限公司", False,
               (2022, 2025), 6.5),
    KeyProject("示例丙特种电缆智能工厂项目（占位）", "江苏示例丙电缆股份有限公司", False,
               (2024, 2027), 20.0),
    KeyProject("示例戊储能电池模组项目（占位）", "宜兴市示例戊新能源科技有限公司", False,
               (2023, 2027), 15.0),
)
