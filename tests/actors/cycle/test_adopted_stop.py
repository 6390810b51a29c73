"""A position adopted from the broker (a manual trade) gets its catastrophe stop from its ATR."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import anyio
import pytest

from actors.messages import AdoptBrokerState, CycleStatus
from daemon.store import Store
from tests.actors.cycle.test_cycle import ASOF, CALENDAR, DEFAULT_36, build


async def test_an_adopted_position_is_protected_at_the_next_cycle(
    store: Store, tmp_path: Path
) -> None:
    graph = await build(store, tmp_path, universe=DEFAULT_36)
    day2 = CALENDAR.next_session(ASOF)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        await graph.run(run_id="day1")
        held = {p.symbol for p in await graph.broker.positions()}
        symbol = next(s for s in DEFAULT_36 if s not in held)
        # bought by hand long ago, far above today's price: the stop must not sell it now
        await graph.broker.adjust_position(symbol, 10, 10_000.0)
        report = await graph.sup.ref("reconciler").ask(AdoptBrokerState("my own trade"))
        unprotected = await store.fetchone(
            "SELECT stop_price FROM positions WHERE symbol = ?", (symbol,)
        )
        graph.clock.set_time(CALENDAR.session_open(day2) + dt.timedelta(hours=1))
        done = await graph.run(day2, run_id="day2")
        await graph.sup.stop()
    assert report.passed
    assert unprotected is not None
    assert unprotected["stop_price"] is None
    row = await store.fetchone(
        "SELECT stop_price, atr_at_entry, avg_price FROM positions WHERE symbol = ?", (symbol,)
    )
    assert row is not None
    assert row["atr_at_entry"] > 0
    assert row["stop_price"] < row["avg_price"]
    assert done.status is CycleStatus.COMPLETED
    assert f"{symbol} (manual) had no stop: {row['stop_price']:.2f}" in done.reason
    close = float(done.reason.split("below the last close ")[1].split(")")[0])
    assert row["stop_price"] == pytest.approx(close - 3.0 * row["atr_at_entry"], abs=0.01)
    sells = await store.fetchall(
        "SELECT * FROM order_intents WHERE symbol = ? AND stop_price IS NULL", (symbol,)
    )
    assert sells == []
    # ... and that stop rests at the broker, for the adopted shares.
    resting = await store.fetchall(
        "SELECT qty, stop_price FROM sim_orders WHERE symbol = ? AND status = 'accepted'",
        (symbol,),
    )
    assert [(r["qty"], r["stop_price"]) for r in resting] == [
        (10, pytest.approx(row["stop_price"], abs=0.006))
    ]
