"""Protective stops resting at the broker, end to end over real bars on the real schedule.

The daemon's graph (``tests.fakes.scenario.Scenario``) over real MSFT bars, one cycle
a day at the open with restarts between days, the MA crossover holding MSFT with its
3 x ATR stop resting at the simulated broker (``orders.broker_stops``, on by default).
MSFT then gaps down 25 % at an open. What the operator sees:

- the position is sold at that open's price, through the resting stop, the same
  session (not at the next day's open, as the daily check on the last close would);
- the next cycle reports the stop-loss exit with its real fill price in its summary,
  its details (which the digest shows) and the trades; no second sell is sent;
- the digest shows the stop resting with the position, then its fill among the trades.

Run on the daemon's live feed and on a backtest's precomputed market (whose prices
the simulated broker reads, lows included), so a backtest models the same stop.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from actors.messages import CycleStatus, IntentKind
from actors.notifier.digest import render_text
from actors.notifier.digest_data import digest_data
from actors.store.cycles import CycleJournal
from tests.fakes.market_events import raw_split
from tests.fakes.real_bars import real_bars, require_real_bars
from tests.fakes.scenario import Scenario, exchange_calendar, trim_bars

CAL = exchange_calendar()
STRATEGIES = ("rsi_mean_reversion", "ma_crossover", "momentum", "ml_momentum")
MA_ONLY: dict[str, Any] = {
    **{f"strategies.{s}.enabled": False for s in STRATEGIES if s != "ma_crossover"},
    "risk.stop_atr_multiple": 3.0,
}
FIRST, FALL = dt.date(2007, 10, 15), dt.date(2007, 11, 27)


def _gap_down() -> Any:
    require_real_bars()
    nxt = CAL.next_session(CAL.next_session(FALL))
    return raw_split(trim_bars(real_bars(), FIRST, nxt), "MSFT", FALL, 1 / 0.75)


@pytest.mark.parametrize("feed", ["live", "backtest"])
async def test_a_gap_down_exits_at_the_open_through_the_resting_stop(
    tmp_path: Path, feed: Any
) -> None:
    data = _gap_down()
    fall_open = float(
        data.loc[(data["symbol"] == "MSFT") & (data["date"] == str(FALL)), "open"].iloc[0]
    )
    async with Scenario(tmp_path, data, settings=MA_ONLY, feed=feed) as sc:
        await sc.run(FIRST, CAL.previous_session(FALL))
        [held] = [p for p in await sc.positions() if p.symbol == "MSFT"]
        assert held.stop_price is not None
        assert fall_open < held.stop_price  # the gap goes through the stop
        [stop] = [r for r in await sc.resting_stops() if r.status.value == "ACCEPTED"]
        assert (stop.symbol, stop.target_qty) == ("MSFT", held.shares)
        assert stop.stop_price == pytest.approx(held.stop_price, abs=0.006)
        last = (await sc.cycles(CAL.previous_session(FALL)))[-1]
        held_digest = render_text(await digest_data(sc.store, await _record(sc, last.run_id)))
        [day] = await sc.run(FALL, FALL)  # the cycle at the open; the stop sells at it
        digest = await digest_data(sc.store, await _record(sc, day.cycle.run_id))
        after = await sc.run(CAL.next_session(FALL), CAL.next_session(FALL))
        sells = [f for f in await sc.fills() if f.symbol == "MSFT" and f.action == "SELL"]
        orders = [r for r in await sc.orders() if r.symbol == "MSFT" and r.side == "sell"]
        assert not [p for p in await sc.positions() if p.symbol == "MSFT"]
    assert day.cycle.status is CycleStatus.COMPLETED
    assert [(f.session, f.shares) for f in sells] == [(FALL, held.shares)]
    assert sells[0].price == pytest.approx(fall_open, rel=0.001)  # the open, slipped
    assert sells[0].price < held.stop_price
    # One sell only: the resting stop's (a stop-loss exit); no daily stop sent on top.
    assert [(r.kind, r.resting) for r in orders] == [(IntentKind.STOP, True)]
    reported = f"resting stop filled at the broker: ma_crossover sold {held.shares:g} MSFT"
    assert reported in day.cycle.reason
    assert reported not in after[0].cycle.reason  # reported once
    # The digest of the day before shows the stop resting with the position ...
    assert "Resting stop at the broker" in held_digest
    assert f"{held.shares:,} @ ${stop.stop_price:,.2f} (ACCEPTED)" in held_digest
    # ... and the fall's digest its fill among the trades.
    text = render_text(digest)
    assert f"SELL (stop ${stop.stop_price:,.2f} at the broker)" in text


async def _record(sc: Scenario, run_id: str) -> Any:
    record = await CycleJournal(sc.store).get(run_id)
    assert record is not None
    return record
