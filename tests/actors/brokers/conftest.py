"""Fixtures shared by the AlpacaBroker tests: the fake Alpaca server on a fake clock.

``clock`` is a ``FakeTime`` (the broker's sleep and monotonic), ``wall`` the Unix time
that moves with it, ``server`` the fake trading server, ``make_broker(**options)`` a
real AlpacaBroker against it (closed after the test), ``broker`` one with defaults.
Modules that need another ``clock`` or ``broker`` (the simulated broker's) define
their own, which take precedence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from actors.brokers.alpaca import AlpacaBroker
from tests.fakes import FakeTime
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer

NEW_YORK = ZoneInfo("America/New_York")
START = 1000.0  # FakeTime's monotonic start
# Tuesday 2024-01-02 10:00 New York: a session is open.
WALL0 = dt.datetime(2024, 1, 2, 10, 0, tzinfo=NEW_YORK).timestamp()
PRICES = {"AAPL": 190.0, "MSFT": 370.0, "SPY": 470.0}

MakeBroker = Callable[..., AlpacaBroker]


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime(START)


@pytest.fixture
def wall(clock: FakeTime) -> Callable[[], float]:
    """Unix time that moves with the fake clock (for X-Ratelimit-Reset and /v2/clock)."""
    return lambda: WALL0 + (clock.now - START)


@pytest.fixture
def server(wall: Callable[[], float]) -> Iterator[FakeAlpacaTradingServer]:
    with FakeAlpacaTradingServer(prices=PRICES, rate_limit=10_000, wallclock=wall) as fake:
        yield fake


@pytest.fixture
async def make_broker(
    server: FakeAlpacaTradingServer, clock: FakeTime, wall: Callable[[], float]
) -> AsyncIterator[MakeBroker]:
    made: list[AlpacaBroker] = []

    def make(**kwargs: Any) -> AlpacaBroker:
        options: dict[str, Any] = {
            "base_url": server.url,
            "sleep": clock.sleep,
            "monotonic": clock.monotonic,
            "wallclock": wall,
            **kwargs,
        }
        broker = AlpacaBroker(server.api_key, server.secret_key, **options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


@pytest.fixture
def broker(make_broker: MakeBroker) -> AlpacaBroker:
    return make_broker()
