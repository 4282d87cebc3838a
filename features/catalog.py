"""The feature catalog: what each panel column means, its unit and Chinese label, whether the
promotion model uses it — and how to print a value of it in reasons text and reports.

`catalog.yaml` beside this module is the single source; rules, model and reports read it through
`load_catalog`, `model_features`, `label` and `format_value`.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")
MISSING = "未知"

Unit = Literal["万元", "亿元", "亿美元", "%", "件", "人", "年", "个", "月", "是/否"]
DType = Literal["Utf8", "Boolean", "Float64", "Int64", "Int32", "Date"]


class Feature(BaseModel):
    """One panel column as the catalog describes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    group: str
    label_zh: str
    unit: Unit | None
    definition: str
    dtype: DType
    model: bool
    categorical: bool = False
    monotone: Literal[-1, 0, 1] = 0
    missing_text: str | None = None   # what a missing value means, where it is known (从未认定)

    @field_validator("label_zh", "definition")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("must not be blank")
        return text


@cache
def load_catalog(path: Path = CATALOG_PATH) -> dict[str, Feature]:
    """Every feature by name, in the panel's column order."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        return {name: Feature(name=name, **entry) for name, entry in raw["features"].items()}
    except Exception as exc:  # name the file in the error
        raise ValueError(f"{path.name}: {exc}") from exc


def model_features() -> list[str]:
    """Columns the promotion model uses, in panel order."""
    return [f.name for f in load_catalog().values() if f.model]


def categorical_features() -> list[str]:
    """Model columns to be treated as categories."""
    return [f.name for f in load_catalog().values() if f.model and f.categorical]


def label(name: str) -> str:
    """The short Chinese label of a feature, e.g. 研发费用占比(上年)."""
    return _feature(name).label_zh


def _feature(name: str) -> Feature:
    try:
        return load_catalog()[name]
    except KeyError:
        raise KeyError(f"feature {name!r} is not in {CATALOG_PATH.name}") from None


def _number(value: float, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_value(name: str, value: object, source_given: bool = True) -> str:
    """A value as a person reads it: 3.1% for a ratio, 1,234 万元, 2.35 亿元, 6 件, 是/否;
    when missing, what that means where the catalog says (`missing_text`: 从未认定 for years since
    a title, 从未融资) and the table it comes from was in the drop (`source_given`), else 未知;
    under a tenth of a year, 不足 0.1 年 (not 0.0 年)."""
    feature = _feature(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (feature.missing_text if source_given else None) or MISSING
    unit = feature.unit
    if unit is None:
        return str(value)
    if unit == "是/否":
        return "是" if value else "否"
    number = float(value)
    if unit == "%":
        return f"{number * 100:.1f}%"
    if unit == "万元":
        return f"{_number(number, 0 if abs(number) >= 100 else 1)} 万元"
    if unit in ("亿元", "亿美元"):
        return f"{_number(number, 2)} {unit}"
    if unit == "年":
        return "不足 0.1 年" if 0 <= number < 0.05 else f"{number:.1f} 年"
    return f"{round(number):,} {unit}"  # 件, 人, 个, 月
