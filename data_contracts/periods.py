"""Reporting quarters: `YYYYQn` strings at the edges, a typed `Quarter` inside."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter; ordering and arithmetic work in quarters."""

    year: int
    q: int

    def __post_init__(self) -> None:
        if not 1 <= self.q <= 4:
            raise ValueError(f"quarter must be 1..4, got {self.q}")

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """Parse the canonical `YYYYQn` form (other period forms: data_contracts.parsing)."""
        m = _QUARTER.match(text.strip())
        if not m:
            raise ValueError(f"not a quarter of the form YYYYQn: {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, day: dt.date) -> Quarter:
        """The quarter a date falls in."""
        return cls(day.year, (day.month - 1) // 3 + 1)

    @property
    def index(self) -> int:
        """Quarters since year 0: a plain integer for arithmetic and joins."""
        return self.year * 4 + self.q - 1

    @classmethod
    def from_index(cls, index: int) -> Quarter:
        return cls(index // 4, index % 4 + 1)

    @property
    def start(self) -> dt.date:
        return dt.date(self.year, 3 * self.q - 2, 1)

    @property
    def end(self) -> dt.date:
        nxt = self + 1
        return nxt.start - dt.timedelta(days=1)

    def __add__(self, n: int) -> Quarter:
        return Quarter.from_index(self.index + n)

    def __sub__(self, n: int) -> Quarter:
        return Quarter.from_index(self.index - n)

    def __str__(self) -> str:
        return f"{self.year}Q{self.q}"


def quarter_range(first: Quarter, last: Quarter) -> list[Quarter]:
    """Every quarter from first to last, inclusive."""
    return [Quarter.from_index(i) for i in range(first.index, last.index + 1)]
