"""Signals, funnels and rejections: a session's rows written in one batch each, in order."""

from __future__ import annotations

import datetime as dt

import pytest

from actors.messages import Signal, SignalAction
from actors.store.signals import SignalStore, StrategyRejection
from daemon.store import Store

DAY = dt.date(2026, 11, 23)


def _sig(symbol: str, action: SignalAction = SignalAction.BUY) -> Signal:
    return Signal("momentum", symbol, action, 0.8, 190.0, 3.0, 10, f"why {symbol}")


async def _strategies(store: Store) -> tuple[SignalStore, int, int]:
    signals = SignalStore(store)
    return (
        signals,
        await signals.ensure_strategy("momentum", "m", 25_000.0),
        await signals.ensure_strategy("ma_crossover", "ma", 25_000.0),
    )


async def test_record_signals_returns_each_rows_id_in_order(store: Store) -> None:
    """Signals of two strategies are stored in order and each id names its own row."""
    signals, mom, ma = await _strategies(store)
    await signals.record_signals("r1", DAY, [(mom, _sig("AAPL"))])
    # A deleted row leaves a gap AUTOINCREMENT never fills.
    await store.execute("DELETE FROM signals")
    rows = [(mom, _sig("AAPL")), (ma, _sig("MSFT", SignalAction.SELL)), (mom, _sig("GOOG"))]
    ids = await signals.record_signals("r2", DAY, rows)
    assert ids == [2, 3, 4]
    stored = await signals.signals_for_run("r2")
    assert [(r["id"], r["strategy_id"], r["symbol"], r["signal_type"]) for r in stored] == [
        (2, mom, "AAPL", "BUY"),
        (3, ma, "MSFT", "SELL"),
        (4, mom, "GOOG", "BUY"),
    ]
    assert {r["asof_date"] for r in stored} == {DAY.isoformat()}


async def test_record_signals_of_none_writes_nothing(store: Store) -> None:
    """No signals, no ids and no rows."""
    signals, _, _ = await _strategies(store)
    assert await signals.record_signals("r1", DAY, []) == []
    assert await signals.signals_for_run("r1") == []


async def test_save_funnels_upserts_every_strategys_counts(store: Store) -> None:
    """Each strategy's funnel is stored; saving the run again replaces the counts."""
    signals, mom, ma = await _strategies(store)
    await signals.save_funnels("r1", DAY, [(mom, "momentum", {"raw": 3}), (ma, "ma", {"raw": 1})])
    await signals.save_funnels("r1", DAY, [(mom, "momentum", {"raw": 4, "executed": 2})])
    assert [(f.strategy, f.raw, f.executed) for f in await signals.funnel("r1")] == [
        ("ma", 1, 0),
        ("momentum", 4, 2),
    ]


async def test_save_funnels_refuses_an_unknown_stage_and_writes_nothing(store: Store) -> None:
    """A batch with a stage the funnel does not have is refused whole."""
    signals, mom, ma = await _strategies(store)
    with pytest.raises(ValueError, match="unknown funnel stages"):
        await signals.save_funnels(
            "r1", DAY, [(mom, "momentum", {"raw": 3}), (ma, "ma", {"bogus": 1})]
        )
    assert await signals.funnel("r1") == []


async def test_log_strategy_rejections_keeps_them_in_order(store: Store) -> None:
    """The run's rejections read back in the order given, with strategy and details."""
    signals, mom, ma = await _strategies(store)
    await signals.log_strategy_rejections(
        "r1",
        [
            StrategyRejection(mom, "AAPL", "RISK", "heat_limit", {"limit": 0.3}),
            StrategyRejection(ma, "MSFT", "REGIME", "crisis", {}),
        ],
    )
    await signals.log_strategy_rejections("r1", [])
    assert await signals.rejections("r1") == [
        {
            "strategy": "momentum",
            "symbol": "AAPL",
            "stage": "RISK",
            "reason": "heat_limit",
            "details": {"limit": 0.3},
        },
        {
            "strategy": "ma_crossover",
            "symbol": "MSFT",
            "stage": "REGIME",
            "reason": "crisis",
            "details": {},
        },
    ]


async def test_set_terminal_gives_each_signal_its_state(store: Store) -> None:
    """Each named signal gets its state, reason and time; an empty batch changes nothing."""
    signals, mom, _ = await _strategies(store)
    ids = await signals.record_signals("r1", DAY, [(mom, _sig("AAPL")), (mom, _sig("MSFT"))])
    at = dt.datetime(2026, 11, 23, 15, tzinfo=dt.UTC)
    await signals.set_terminal([(ids[1], "REJECTED", "RISK:heat_limit")], at)
    await signals.set_terminal([], at)
    stored = await signals.signals_for_run("r1")
    assert [(r["terminal_state"], r["terminal_reason"]) for r in stored] == [
        (None, None),
        ("REJECTED", "RISK:heat_limit"),
    ]
    assert stored[1]["terminal_at"] == at.isoformat()
