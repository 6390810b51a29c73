"""Prices for the simulated broker, from the configured market-data provider.

A price is only known once it has happened: the open of a session from its
open on, the close from its close on (by the injected clock). So in a live
daemon the simulated broker fills a market order at the next open, like a
real broker; in a backtest the SimClock is set to the session's open first.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from actors.data_feed.providers import BarProvider
from actors.market.calendar import ExchangeCalendar
from daemon.clock import Clock


class ProviderPriceSource:
    """``PriceSource`` over a ``BarProvider``; caches each session's bars it fetched."""

    def __init__(self, provider: BarProvider, calendar: ExchangeCalendar, clock: Clock) -> None:
        self._provider = provider
        self._calendar = calendar
        self._clock = clock
        self._bars: dict[tuple[str, dt.date], tuple[float, float, float]] = {}

    async def open_price(self, symbol: str, session: dt.date) -> float | None:
        if not self._calendar.is_session(session):
            return None
        if self._clock.now() < self._calendar.session_open(session):
            return None
        bar = await self._bar(symbol, session)
        return None if bar is None else bar[0]

    async def close_price(self, symbol: str, session: dt.date) -> float | None:
        if not self._calendar.is_session(session):
            return None
        if self._clock.now() < self._calendar.session_close(session):
            return None
        bar = await self._bar(symbol, session)
        return None if bar is None else bar[1]

    async def low_price(self, symbol: str, session: dt.date) -> float | None:
        """The session's low, known once it has closed (a resting stop's trigger)."""
        if not self._calendar.is_session(session):
            return None
        if self._clock.now() < self._calendar.session_close(session):
            return None
        bar = await self._bar(symbol, session)
        return None if bar is None else bar[2]

    async def _bar(self, symbol: str, session: dt.date) -> tuple[float, float, float] | None:
        key = (symbol, session)
        if key not in self._bars:
            frame = await self._provider.fetch([symbol], session, session)
            rows = frame.loc[(frame["symbol"] == symbol) & (frame["date"] == pd.Timestamp(session))]
            if rows.empty:
                return None
            row = rows.iloc[-1]
            self._bars[key] = (float(row["open"]), float(row["close"]), float(row["low"]))
        return self._bars[key]
