"""Hard pre-trade limits end to end: the real graph over real bars, one cycle a day.

The MA crossover buys MSFT on 2007-10-17 (``tests/test_risk_scenarios.py``). With a
limit it breaks, the buy is refused after the risk rules, at stage ``LIMITS``, with
the limit's code and numbers: in the cycle's rejections, in ``why-no-trade``, and no
order reaches the broker. Without it (the defaults) the same day buys.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from actors.messages import IntentKind
from tests.fakes.scenario import Scenario
from tests.test_risk_scenarios import MA_ONLY, bars

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
