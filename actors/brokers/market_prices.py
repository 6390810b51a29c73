"""Prices for the simulated broker, from a precomputed market (the backtest's).

As with ``ProviderPriceSource``, a price is only known once it has happened:
the open of a session from its open on, the close from its close on. Prices are
as they printed on the day (``PrecomputedMarket.raw_price``): a split before it
had not happened yet, and the simulated broker applies it when it comes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from actors.data_feed.market import PrecomputedMarket
from actors.market.calendar import ExchangeCalendar
from daemon.clock import Clock


class MarketPrices:
    """``PriceSource`` over a precomputed market, revealing a price only once it happened."""

    def __init__(self, market: PrecomputedMarket, calendar: ExchangeCalendar, clock: Clock):
        self._market = market
        self._calendar = calendar
        self._clock = clock

    async def open_price(self, symbol: str, session: dt.date) -> float | None:
        if not self._calendar.is_session(session):
            return None
        if self._clock.now() < self._calendar.session_open(session):
            return None
        return self._market.raw_price(symbol, session, "open")

    async def close_price(self, symbol: str, session: dt.date) -> float | None:
        if not self._calendar.is_session(session):
            return None
        if self._clock.now() < self._calendar.session_close(session):
            return None
        return self._market.raw_price(symbol, session, "close")

    async def close_prices(self, symbols: Sequence[str], session: dt.date) -> list[float | None]:
        """``close_price`` of each of ``symbols``: one lookup in the market's arrays."""
        if not self._calendar.is_session(session):
            return [None] * len(symbols)
        if self._clock.now() < self._calendar.session_close(session):
            return [None] * len(symbols)
        return self._market.raw_prices(symbols, session, "close")

    async def low_price(self, symbol: str, session: dt.date) -> float | None:
        if not self._calendar.is_session(session):
            return None
        if self._clock.now() < self._calendar.session_close(session):
            return None
        return self._market.raw_price(symbol, session, "low")
