"""MarketPrices: a precomputed market's prices as they printed, each once it has happened."""

from __future__ import annotations

import datetime as dt

from actors.brokers.market_prices import MarketPrices
from actors.data_feed.market import PrecomputedMarket
from actors.data_feed.panel import BarPanel
from actors.data_feed.params import SyntheticParams, ValidationParams
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from daemon.clock import SimClock

CAL = ExchangeCalendar("XNYS", start=dt.date(2023, 1, 1), end=dt.date(2025, 12, 31)).load()
SYMBOLS = ["AAPL", "MSFT", "XOM"]
DAY = dt.date(2024, 3, 5)


def _prices(clock: SimClock) -> MarketPrices:
    frame = SyntheticProvider(SyntheticParams()).generate(SYMBOLS, dt.date(2024, 1, 2), DAY)
    market = PrecomputedMarket(BarPanel.from_long(frame), {}, None, "synthetic")
    return MarketPrices(market.prepared(ValidationParams()), CAL, clock)


async def test_close_prices_are_each_symbols_close_once_the_session_closed() -> None:
    """Before the close nothing is known; after it, each symbol's close, unknown ones None."""
    clock = SimClock(CAL.session_close(DAY) - dt.timedelta(minutes=1))
    prices = _prices(clock)
    asked = [*SYMBOLS, "NOPE"]
    assert await prices.close_prices(asked, DAY) == [None] * 4
    clock.set_time(CAL.session_close(DAY))
    expected = [await prices.close_price(s, DAY) for s in asked]
    assert await prices.close_prices(asked, DAY) == expected
    assert expected[-1] is None
    assert all(p is not None for p in expected[:-1])
    assert await prices.close_prices(asked, dt.date(2024, 3, 9)) == [None] * 4  # a Saturday
