"""Broker snapshots, local positions and cash, and adopting the broker's state."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from actors.messages import Discrepancy
from actors.store.broker_state import Adjustment, BrokerStateStore, baseline_for
from actors.store.signals import SignalStore
from actors.store.state import SystemState
from daemon.store import Store

T0 = dt.datetime(2026, 11, 23, 14, 30, tzinfo=dt.UTC)


async def strategy(store: Store, name: str) -> int:
    return await SignalStore(store).ensure_strategy(name, name, 10_000.0)


async def hold(
    store: Store, strategy_id: int, symbol: str, shares: int, price: float = 100.0
) -> None:
    await store.execute(
        "INSERT INTO positions (strategy_id, symbol, shares, avg_price, entry_date, stop_price)"
        " VALUES (?, ?, ?, ?, '2026-11-02', ?)",
        (strategy_id, symbol, shares, price, price * 0.9),
    )


async def trade(
    store: Store, strategy_id: int, action: str, notional: float, commission: float
) -> None:
    await store.execute(
        "INSERT INTO trades (run_id, strategy_id, symbol, action, shares, notional,"
        " commission_cost) VALUES ('r1', ?, 'AAPL', ?, 1, ?, ?)",
        (strategy_id, action, notional, commission),
    )


async def rows(store: Store) -> dict[tuple[int, str], tuple[int, float, str, float | None]]:
    found = await store.fetchall(
        "SELECT strategy_id, symbol, shares, avg_price, entry_date, stop_price FROM positions"
    )
    return {
        (r["strategy_id"], r["symbol"]): (
            int(r["shares"]),
            r["avg_price"],
            r["entry_date"],
            r["stop_price"],
        )
        for r in found
    }


# ---------------------------------------------------------------- snapshots


async def test_snapshot_round_trips(store: Store) -> None:
    """A written snapshot reads back with its positions, discrepancies and verdict."""
    states = BrokerStateStore(store)
    gap = Discrepancy("position", "AAPL", 10.0, 12.0)
    await states.snapshot(
        "run-1",
        "START",
        cash=5_000.0,
        equity=7_000.0,
        positions={"AAPL": 12},
        discrepancies=[gap],
        passed=False,
        at=T0,
    )
    snap = await states.latest()
    assert snap is not None
    assert (snap.run_id, snap.kind, snap.cash, snap.equity) == ("run-1", "START", 5_000.0, 7_000.0)
    assert snap.positions == {"AAPL": 12}
    assert snap.discrepancies == (gap,)
    assert snap.passed is False
    assert snap.taken_at == T0
    assert snap.as_dict()["discrepancies"][0]["diff"] == 2.0


async def test_latest_filters_by_kind_and_history_is_newest_first(store: Store) -> None:
    """latest(kind) picks the newest of that kind; history() lists newest first, limited."""
    states = BrokerStateStore(store)
    for minute, kind in enumerate(("START", "RECONCILIATION", "END", "RECONCILIATION")):
        await states.snapshot(
            f"run-{minute}",
            kind,
            cash=float(minute),
            equity=float(minute),
            positions={},
            discrepancies=[],
            passed=True,
            at=T0 + dt.timedelta(minutes=minute),
        )
    start = await states.latest("START")
    assert start is not None
    assert start.run_id == "run-0"
    latest = await states.latest()
    assert latest is not None
    assert latest.run_id == "run-3"
    assert [s.run_id for s in await states.history(2)] == ["run-3", "run-2"]


async def test_unknown_snapshot_kind_is_refused(store: Store) -> None:
    """Only START, RECONCILIATION and END are snapshot kinds."""
    with pytest.raises(ValueError, match="snapshot kind"):
        await BrokerStateStore(store).snapshot(
            None,
            "MIDDAY",
            cash=0.0,
            equity=0.0,
            positions={},
            discrepancies=[],
            passed=True,
            at=T0,
        )


async def test_no_snapshot_reads_as_none(store: Store) -> None:
    """An empty table has no latest snapshot and no history."""
    states = BrokerStateStore(store)
    assert await states.latest() is None
    assert await states.history(5) == []


# ---------------------------------------------------------------- local view


async def test_local_positions_sum_over_strategies(store: Store) -> None:
    """Shares of a symbol held by several strategies add up; zero totals are left out."""
    a, b = await strategy(store, "momentum"), await strategy(store, "rsi")
    await hold(store, a, "AAPL", 10)
    await hold(store, b, "AAPL", 5)
    await hold(store, b, "MSFT", 7)
    await hold(store, a, "KO", 0)
    assert await BrokerStateStore(store).local_positions() == {"AAPL": 15, "MSFT": 7}


async def test_local_cash_is_baseline_plus_trade_deltas(store: Store) -> None:
    """A buy costs notional plus commission; a sell brings notional minus commission."""
    states = BrokerStateStore(store)
    sid = await strategy(store, "momentum")
    await states.set_cash_baseline(10_000.0, T0)
    await trade(store, sid, "BUY", 2_000.0, 1.0)
    await trade(store, sid, "SELL", 500.0, 0.5)
    assert await states.cash_baseline() == 10_000.0
    assert await states.trade_cash_deltas() == -2_001.0 + 499.5
    assert await states.local_cash() == 10_000.0 - 2_001.0 + 499.5
    assert await states.local_cash_from(10_000.0) == await states.local_cash()
    assert await states.local_cash_from(None) == -2_001.0 + 499.5


async def test_unset_baseline_reads_as_none_and_counts_as_zero(store: Store) -> None:
    """Without a baseline, cash_baseline() is None and local cash is the deltas alone."""
    states = BrokerStateStore(store)
    sid = await strategy(store, "momentum")
    await trade(store, sid, "BUY", 100.0, 0.0)
    assert await states.cash_baseline() is None
    assert await states.local_cash() == -100.0


async def test_baseline_is_stored_in_system_state(store: Store) -> None:
    """The baseline lives under system_state['cash_baseline']."""
    await BrokerStateStore(store).set_cash_baseline(2_500.25, T0)
    assert await SystemState(store).get("cash_baseline") == 2_500.25


@pytest.mark.parametrize(
    ("target", "deltas"),
    [(0.3, 0.1), (100_000.07, -12_345.678), (0.1, 0.2), (1e6 / 3, -1e5 / 7)],
)
def test_baseline_for_lands_exactly_on_the_target(target: float, deltas: float) -> None:
    """baseline_for(t, d) + d == t in floating point, not just approximately."""
    assert baseline_for(target, deltas) + deltas == target


# ---------------------------------------------------------------- adoption


async def test_adopt_makes_local_equal_the_broker(store: Store) -> None:
    """Adoption reduces over-held rows largest first and gives unknown shares to manual."""
    states = BrokerStateStore(store)
    a, b = await strategy(store, "momentum"), await strategy(store, "rsi")
    manual = await strategy(store, "manual")
    await hold(store, a, "AAPL", 30)
    await hold(store, b, "AAPL", 20)
    await hold(store, a, "MSFT", 10)
    await hold(store, b, "KO", 5)
    await trade(store, a, "BUY", 3_000.0, 1.0)
    changes = await states.adopt(
        {"AAPL": (15, 190.0), "MSFT": (10, 400.0), "NVDA": (4, 120.5)},
        8_765.43,
        T0,
        strategy_id_for_unowned=manual,
    )
    assert await states.local_positions() == {"AAPL": 15, "MSFT": 10, "NVDA": 4}
    assert await states.local_cash() == 8_765.43
    held = await rows(store)
    assert (a, "AAPL") not in held  # 30 shares, the largest, cut to 0 and deleted
    assert held[(b, "AAPL")][0] == 15
    assert held[(a, "MSFT")][0] == 10
    assert (b, "KO") not in held
    assert held[(manual, "NVDA")] == (4, 120.5, "2026-11-23", None)
    assert changes == [
        Adjustment(a, "AAPL", 30, 0),
        Adjustment(b, "AAPL", 20, 15),
        Adjustment(b, "KO", 5, 0),
        Adjustment(manual, "NVDA", 0, 4),
    ]


async def test_adopt_adds_to_an_existing_manual_row(store: Store) -> None:
    """More shares than the strategies hold go to the manual row at a weighted price."""
    states = BrokerStateStore(store)
    a, manual = await strategy(store, "momentum"), await strategy(store, "manual")
    await hold(store, a, "AAPL", 10, price=100.0)
    await hold(store, manual, "AAPL", 10, price=100.0)
    await states.adopt({"AAPL": (30, 130.0)}, 0.0, T0, strategy_id_for_unowned=manual)
    held = await rows(store)
    assert held[(a, "AAPL")][0] == 10
    assert held[(manual, "AAPL")][:3] == (20, 115.0, "2026-11-02")


async def test_adopt_leaves_agreeing_positions_untouched(store: Store) -> None:
    """Symbols that already agree keep their rows (stops, dates) as they were."""
    states = BrokerStateStore(store)
    a, manual = await strategy(store, "momentum"), await strategy(store, "manual")
    await hold(store, a, "AAPL", 10, price=100.0)
    before = await rows(store)
    changes = await states.adopt({"AAPL": (10, 101.0)}, 5.0, T0, strategy_id_for_unowned=manual)
    assert changes == []
    assert await rows(store) == before
    assert await states.local_cash() == 5.0


async def test_failed_adoption_changes_nothing(store: Store) -> None:
    """Adoption is one transaction: an error part-way leaves positions and cash as they were."""
    states = BrokerStateStore(store)
    a = await strategy(store, "momentum")
    await hold(store, a, "AAPL", 10)
    await states.set_cash_baseline(1_000.0, T0)
    before = await rows(store)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        # No strategy 999: the insert for NVDA breaks the foreign key after AAPL was cut.
        await states.adopt({"AAPL": (5, 1.0), "NVDA": (1, 1.0)}, 50.0, T0, 999)
    assert await rows(store) == before
    assert await states.local_cash() == 1_000.0
