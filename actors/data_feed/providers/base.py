"""What every provider shares: the ``BarProvider`` protocol and the long frame's helpers.

The concrete providers import from here, never from each other or from the package
(whose ``make_provider`` imports them all): an import-linter contract keeps them apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from actors.data_feed.panel import LONG_COLUMNS
from actors.market.corporate_actions import CorporateAction

SessionsFn = Callable[[dt.date, dt.date], Sequence[dt.date]]
"""The exchange sessions in ``[a, b]`` (both inclusive), ascending."""

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


@runtime_checkable
class BarProvider(Protocol):
    """A source of adjusted daily bars (see the module docstring for the frame's shape)."""

    name: str
    """``synthetic`` | ``csv`` | ``alpaca`` | ``alphavantage``; also the bar-cache key."""

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars for ``symbols`` over the sessions in ``[start, end]`` as a long frame."""
        ...

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        """Daily VIX-like closes indexed by date, or ``None`` when this provider has none."""
        ...


@runtime_checkable
class ReportsProblems(Protocol):
    """A provider that says which symbols its last load could not read, and why."""

    def problems(self) -> Mapping[str, str]:
        """Symbol -> what was wrong (file, line, column), for the last load."""
        ...


@runtime_checkable
class ReportsCorporateActions(Protocol):
    """A provider that knows the corporate actions of its symbols (splits, dividends, renames).

    Its bars are adjusted for the actions it reports with an ex date up to the fetch's
    ``end`` at least: the CSV provider and the synthetic market adjust *as of* ``end``
    (``actors.market.corporate_actions.adjust_history``), Alpaca's adjusted feed as of
    now. The data feed forgets a symbol's cached history once the ex-date bar is in
    its window (``CorporateActionStore.refresh_bars``), so either way the history a
    cycle sees has one scale.
    """

    async def corporate_actions(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        """Every action on ``symbols`` whose ex date is in ``[start, end]``, by ex date."""
        ...


async def provider_actions(
    provider: object, symbols: Sequence[str], start: dt.date, end: dt.date
) -> list[CorporateAction]:
    """``provider.corporate_actions(...)`` when it reports them, else none."""
    if isinstance(provider, ReportsCorporateActions):
        return list(await provider.corporate_actions(symbols, start, end))
    return []


def provider_problems(provider: object) -> dict[str, str]:
    """``provider.problems()`` when it reports problems, else no problems."""
    if isinstance(provider, ReportsProblems):
        return dict(provider.problems())
    return {}


def empty_bars() -> pd.DataFrame:
    """A long frame with no rows and the right columns and dtypes."""
    return pd.DataFrame(
        {
            "symbol": pd.Series([], dtype=str),
            "date": pd.Series([], dtype="datetime64[ns]"),
            **{c: pd.Series([], dtype=np.float64) for c in PRICE_COLUMNS},
        }
    )


def normalize_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce a provider's rows to the long-frame contract: columns, dtypes, order.

    Dates become tz-naive midnight ``datetime64[ns]``; rows are sorted by
    (symbol, date); a later duplicate (symbol, date) wins.
    """
    if frame.empty:
        return empty_bars()
    out = frame.loc[:, list(LONG_COLUMNS)].copy()
    dates = pd.to_datetime(out["date"])
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_localize(None)
    out["date"] = dates.dt.normalize().astype("datetime64[ns]")
    out["symbol"] = out["symbol"].astype(str)
    for column in PRICE_COLUMNS:
        out[column] = out[column].astype(np.float64)
    out = out.drop_duplicates(subset=["symbol", "date"], keep="last")
    return out.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


def clip_range(frame: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Only the rows with ``start <= date <= end``."""
    mask = (frame["date"] >= pd.Timestamp(start)) & (frame["date"] <= pd.Timestamp(end))
    return frame.loc[mask].reset_index(drop=True)
