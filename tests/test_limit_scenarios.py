"""Hard pre-trade limits end to end: the real graph over real bars, one cycle a day.

The MA crossover buys MSFT on 2007-10-17 (``tests/test_risk_scenarios.py``). With a
limit it breaks, the buy is refused after the risk rules, at stage ``LIMITS``, with
the limit's code and numbers: in the cycle's rejections, in ``why-no-trade``, and no
order reaches the broker. Without it (the defaults) the same day buys. In a small
account with no day trade left, the new position's stop waits for the next session.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from actors.brokers.base import Broker, BrokerAccount
from actors.brokers.prices import ProviderPriceSource
from actors.brokers.sim import SimBroker
from actors.data_feed.providers import BarProvider
from actors.market.calendar import ExchangeCalendar
from actors.messages import IntentKind
from daemon.clock import Clock
from daemon.store import Store
from tests.fakes.scenario import Scenario
from tests.test_risk_scenarios import CAL, MA_ONLY, bars

FIRST, ENTRY = dt.date(2007, 10, 15), dt.date(2007, 10, 17)


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"limits.max_order_notional": 1_000.0}, "max_order_notional"),
        ({"limits.max_order_qty": 5}, "max_order_qty"),
        ({"limits.max_position_notional": 1_000.0}, "max_position_notional"),
        ({"limits.restricted_symbols": ["MSFT"]}, "restricted_symbol"),
        ({"limits.max_orders_per_cycle": 1, "orders.broker_stops": False}, None),
    ],
    ids=["notional", "qty", "position", "restricted", "per-cycle-not-binding"],
)
async def test_a_buy_beyond_a_limit_is_refused_with_its_reason(
    tmp_path: Path, limits: dict[str, Any], reason: str | None
) -> None:
    async with Scenario(tmp_path, bars(FIRST, ENTRY), settings=MA_ONLY | limits) as sc:
        await sc.run(FIRST, ENTRY, restart=True)
        entries = [r for r in await sc.orders() if r.kind is IntentKind.ENTRY]
        refused = [r for r in await sc.rejections(ENTRY) if r.stage == "LIMITS"]
        why = await sc.why_no_trade()
        broker = {p.symbol: p.qty for p in await sc.broker.positions()}
    if reason is None:  # one entry a cycle is within max_orders_per_cycle = 1
        assert [e.symbol for e in entries] == ["MSFT"]
        assert refused == []
        return
    assert entries == []
    assert broker == {}
    assert [(r.symbol, r.reason) for r in refused] == [("MSFT", reason)]
    if reason != "restricted_symbol":
        assert refused[0].details["limit"] > 0  # the numbers the operator sees
    # what `tradectl why-no-trade` shows for that (the last) cycle
    assert why["reasons"][f"LIMITS:{reason}"] == 1


class _NoDayTradesLeft(SimBroker):
    """A $20,000 simulated account that reports its three day trades of five sessions used."""

    async def account(self) -> BrokerAccount:
        return dataclasses.replace(await super().account(), daytrade_count=3)


def _small_account(
    db: Store, calendar: ExchangeCalendar, clock: Clock, provider: BarProvider
) -> Broker:
    prices = ProviderPriceSource(provider, calendar, clock)
    return _NoDayTradesLeft(
        db, clock=clock, calendar=calendar, prices=prices, initial_cash=20_000.0, actions=provider
    )


async def test_the_pattern_day_trader_rule_moves_a_new_positions_stop_to_the_next_session(
    tmp_path: Path,
) -> None:
    """Under $25,000 with no day trade left: MSFT's stop is not rested the day it is bought
    (a same-day fill would be a fourth day trade), the cycle says why, and the next
    session's cycle places it."""
    after = CAL.next_session(ENTRY)
    data = bars(FIRST, after)
    async with Scenario(
        tmp_path, data, settings=MA_ONLY, cash=20_000.0, broker=_small_account
    ) as sc:
        days = await sc.run(FIRST, after, restart=True)
        entries = [r for r in await sc.orders() if r.kind is IntentKind.ENTRY]
        stops = await sc.resting_stops()
    assert [(e.symbol, e.asof) for e in entries] == [("MSFT", ENTRY)]
    by_day = {d.session: d.cycle.reason for d in days}
    assert "resting stop held: ma_crossover MSFT" in by_day[ENTRY]
    assert "day trade" in by_day[ENTRY]
    assert [(s.symbol, s.asof, s.status.value) for s in stops] == [("MSFT", after, "ACCEPTED")]
