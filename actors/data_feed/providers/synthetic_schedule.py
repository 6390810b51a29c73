"""A synthetic company's corporate actions over the epoch, held as plain columns.

The synthetic market draws every company's actions over the whole epoch (2000-2035:
about 36 a company at one a year), because a split's direction depends on the price
scale the splits before it left. A 5,000-name universe is then ~180,000 actions; made
as ``CorporateAction`` objects (each validated and hashed) that took seconds a cycle,
though a cycle asks for the few whose ex date falls in its window. A ``Schedule``
keeps the drawn terms as columns and makes the objects only for the dates asked: the
same objects, field for field, as the eager schedule made.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from actors.market.corporate_actions import ActionKind, CorporateAction

FloatArray = npt.NDArray[np.float64]
DayArray = npt.NDArray[np.datetime64]


@dataclass(frozen=True, slots=True)
class Schedule:
    """One company's actions by ex date (at most one a session), as drawn."""

    company: str
    source: str
    kinds: tuple[ActionKind, ...]
    ex_dates: tuple[dt.date, ...]
    #: ``ex_dates`` as datetime64[D], for the range searches.
    ex_days: DayArray
    pay_dates: tuple[dt.date, ...]
    #: The split ratio of a rescaling action; 1.0 for the others.
    ratios: tuple[float, ...]
    #: The cash a share of a dividend; 0.0 for the others.
    cash: tuple[float, ...]
    #: The new symbol of the rename, if the company has one.
    new_symbol: str | None

    def __len__(self) -> int:
        return len(self.kinds)

    def between(self, name: str, start: dt.date, end: dt.date) -> list[CorporateAction]:
        """The actions ex in ``[start, end]`` reported under ``name``, by ex date.

        Under the company's own symbol every action; under its new symbol (the rename's
        ``new_symbol``) every action but the rename, which the old symbol reports.
        """
        lo = int(np.searchsorted(self.ex_days, np.datetime64(start, "D"), side="left"))
        hi = int(np.searchsorted(self.ex_days, np.datetime64(end, "D"), side="right"))
        own = name == self.company
        return [
            self._action(i, name)
            for i in range(lo, hi)
            if own or self.kinds[i] is not ActionKind.RENAME
        ]

    def rename(self) -> tuple[str, dt.date] | None:
        """The new symbol and the ex date of the company's rename, if it has one."""
        for kind, ex_date in zip(self.kinds, self.ex_dates, strict=True):
            if kind is ActionKind.RENAME and self.new_symbol is not None:
                return self.new_symbol, ex_date
        return None

    def splits(self, asof: dt.date | None = None) -> Iterator[tuple[np.datetime64, float]]:
        """Each rescaling action's ex day (datetime64[ns]) and ratio, by ex date, up to
        ``asof`` (inclusive) if given."""
        for kind, ex_date, ratio in zip(self.kinds, self.ex_dates, self.ratios, strict=True):
            if asof is not None and ex_date > asof:
                return
            if kind.rescales:
                yield np.datetime64(ex_date, "ns"), ratio

    def _action(self, i: int, name: str) -> CorporateAction:
        kind = self.kinds[i]
        if kind is ActionKind.RENAME:
            return CorporateAction(
                kind, name, self.ex_dates[i], self.source, new_symbol=self.new_symbol
            )
        if kind.rescales:
            return CorporateAction(kind, name, self.ex_dates[i], self.source, ratio=self.ratios[i])
        return CorporateAction(
            kind,
            name,
            self.ex_dates[i],
            self.source,
            cash_per_share=self.cash[i],
            pay_date=self.pay_dates[i],
        )


@dataclass
class ScheduleBuilder:
    """The columns of a ``Schedule``, appended action by action as they are drawn."""

    company: str
    source: str
    kinds: list[ActionKind]
    ex_dates: list[dt.date]
    pay_dates: list[dt.date]
    ratios: list[float]
    cash: list[float]
    new_symbol: str | None = None

    @classmethod
    def start(cls, company: str, source: str) -> ScheduleBuilder:
        return cls(company, source, [], [], [], [], [])

    def add(
        self,
        kind: ActionKind,
        ex_date: dt.date,
        pay_date: dt.date,
        *,
        ratio: float = 1.0,
        cash: float = 0.0,
    ) -> None:
        self.kinds.append(kind)
        self.ex_dates.append(ex_date)
        self.pay_dates.append(pay_date)
        self.ratios.append(ratio)
        self.cash.append(cash)

    def build(self) -> Schedule:
        return Schedule(
            company=self.company,
            source=self.source,
            kinds=tuple(self.kinds),
            ex_dates=tuple(self.ex_dates),
            ex_days=np.asarray(self.ex_dates, dtype="datetime64[D]"),
            pay_dates=tuple(self.pay_dates),
            ratios=tuple(self.ratios),
            cash=tuple(self.cash),
            new_symbol=self.new_symbol,
        )
