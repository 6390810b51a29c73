"""The figures of a backtest's stats.json, on hand-built inputs with hand-computed answers."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from actors.market.corporate_actions import ActionKind, CorporateAction
from actors.reports.backtest_stats import (
    EQUAL_WEIGHT,
    SPY,
    BacktestInputs,
    Benchmark,
    OpenPosition,
    SessionClose,
    backtest_stats,
    benchmark_stats,
    buy_and_hold,
    equity_curve,
    exposure,
    fee_totals,
    lot_adjustments,
    monthly_returns,
    strategy_attribution,
)

D = dt.date


def fill(
    strategy: str,
    action: str,
    shares: int,
    price: float,
    day: dt.date,
    *,
    commission: float,
    slippage: float,
    symbol: str = "AAA",
) -> dict[str, Any]:
    """A trade-ledger row as ``OrderStore.trade_ledger`` gives it."""
    return {
        "strategy": strategy,
        "symbol": symbol,
        "action": action,
        "shares": shares,
        "exec_price": price,
        "notional": shares * price,
        "commission_cost": commission,
        "slippage_cost": slippage,
        "date": day.isoformat(),
    }


# A buys 100 @ 10 and sells 60 @ 12; 40 stay open, marked at 11.
LEDGER_A = [
    fill("a", "BUY", 100, 10.0, D(2026, 3, 2), commission=1.0, slippage=0.5),
    fill("a", "SELL", 60, 12.0, D(2026, 3, 9), commission=0.6, slippage=0.3),
]
# B buys 10 @ 50 and sells them @ 45; a 3.00 dividend was credited to it.
LEDGER_B = [
    fill("b", "BUY", 10, 50.0, D(2026, 3, 3), commission=0.05, slippage=0.2, symbol="BBB"),
    fill("b", "SELL", 10, 45.0, D(2026, 3, 10), commission=0.05, slippage=0.2, symbol="BBB"),
]


def test_the_curve_starts_from_the_capital_at_the_close_before_the_first_session() -> None:
    """The first point is the capital at the base session; then each session's close."""
    closes = [SessionClose(D(2026, 3, 2), 101.0, 50.0, 51.0, 1)]
    curve = equity_curve(100.0, D(2026, 2, 27), closes)
    assert list(pd.DatetimeIndex(curve.index).date) == [D(2026, 2, 27), D(2026, 3, 2)]
    assert curve.tolist() == [100.0, 101.0]


def test_exposure_is_the_mean_gross_over_equity_and_time_in_market_the_held_share() -> None:
    """Gross 50 of 100, then nothing held of 200: exposure 0.25, in the market half the time."""
    closes = [
        SessionClose(D(2026, 3, 2), 100.0, 50.0, 50.0, 1),
        SessionClose(D(2026, 3, 3), 200.0, 200.0, 0.0, 0),
    ]
    assert exposure(closes) == (0.25, 0.5)
    assert exposure([]) == (None, None)


def test_monthly_returns_chain_month_ends_from_the_capital() -> None:
    """100 at the base (January), 121 at February's end, 108.9 in March: +21 %, then -10 %."""
    curve = pd.Series(
        [100.0, 110.0, 121.0, 108.9],
        index=pd.to_datetime(["2026-01-30", "2026-02-02", "2026-02-27", "2026-03-02"]),
    )
    got = monthly_returns(curve)
    assert list(got) == ["2026"]
    assert got["2026"] == pytest.approx({"2": 0.21, "3": -0.1})
    assert monthly_returns(curve.iloc[:1]) == {}


def test_monthly_returns_span_years() -> None:
    """December then January land under their own years."""
    curve = pd.Series(
        [100.0, 102.0, 101.0], index=pd.to_datetime(["2025-11-28", "2025-12-31", "2026-01-02"])
    )
    got = monthly_returns(curve)
    assert got["2025"] == pytest.approx({"12": 0.02})
    assert got["2026"] == pytest.approx({"1": 101.0 / 102.0 - 1.0})


def test_fees_are_commission_and_slippage_summed() -> None:
    """Commission 1 + 0.6 + 0.05 + 0.05, slippage 0.5 + 0.3 + 0.2 + 0.2."""
    commission, slippage = fee_totals(LEDGER_A + LEDGER_B)
    assert commission == pytest.approx(1.7)
    assert slippage == pytest.approx(1.2)


def test_attribution_by_hand() -> None:
    """Realised, unrealised, trades, fees and win rate per strategy, computed by hand."""
    got = strategy_attribution(
        LEDGER_A + LEDGER_B,
        other_cash={"b": 3.0},
        open_positions=[OpenPosition("a", "AAA", 40, 10.0)],
        marks={"AAA": 11.0},
        strategies=["a", "b", "c"],
    )
    a, b, c = got["a"], got["b"], got["c"]
    # A: (12 - 10) x 60 less both commissions; the 40 open shares are 1.00 up.
    assert a.realized_pnl == pytest.approx(120.0 - 1.0 - 0.6)
    assert a.unrealized_pnl == pytest.approx(40.0)
    assert (a.trades, a.win_rate, a.fills) == (1, 1.0, 2)
    assert a.fees == pytest.approx(2.4)
    # B: -5 x 10 less 0.10 of commission, plus the dividend; its one trade lost.
    assert b.realized_pnl == pytest.approx(-50.0 - 0.1 + 3.0)
    assert b.unrealized_pnl == 0.0
    assert (b.trades, b.win_rate) == (1, 0.0)
    # C is enabled and never traded.
    assert (c.realized_pnl, c.unrealized_pnl, c.trades, c.fees, c.win_rate) == (0, 0, 0, 0, None)


def test_attribution_follows_the_book_through_a_split() -> None:
    """10 bought @ 50, split 2:1 (the book holds 20 @ 25), marked at 30: 100 unrealised,
    the entry commission realised, together exactly the money made."""
    ledger = [fill("d", "BUY", 10, 50.0, D(2026, 3, 2), commission=0.05, slippage=0.3)]
    got = strategy_attribution(ledger, {}, [OpenPosition("d", "AAA", 20, 25.0)], {"AAA": 30.0})
    assert got["d"].unrealized_pnl == pytest.approx(100.0)
    assert got["d"].realized_pnl == pytest.approx(-0.05)
    assert got["d"].realized_pnl + got["d"].unrealized_pnl == pytest.approx(20 * 30.0 - 500.05)


def test_trades_and_win_rate_follow_the_books_splits() -> None:
    """10 bought @ 50, split 2:1, 20 sold @ 30: one winning trade, not a loss and an
    unmatched 10 shares."""
    ledger = [
        fill("d", "BUY", 10, 50.0, D(2026, 3, 2), commission=0.05, slippage=0.3),
        fill("d", "SELL", 20, 30.0, D(2026, 3, 9), commission=0.1, slippage=0.2),
    ]
    split = CorporateAction(ActionKind.FORWARD_SPLIT, "AAA", D(2026, 3, 5), "test", ratio=2.0)
    dividend = CorporateAction(
        ActionKind.CASH_DIVIDEND, "AAA", D(2026, 3, 6), "test", cash_per_share=0.1
    )
    adjustments = lot_adjustments([split, dividend])
    assert len(adjustments) == 1
    got = strategy_attribution(ledger, {}, [], {}, adjustments=adjustments)["d"]
    assert (got.trades, got.win_rate) == (1, 1.0)
    assert got.realized_pnl == pytest.approx(600.0 - 500.0 - 0.15)


def test_an_unmarked_position_is_valued_at_its_average_price() -> None:
    """No close known for the symbol: unrealised 0, as the broker marks it at its entry."""
    ledger = [fill("d", "BUY", 10, 50.0, D(2026, 3, 2), commission=0.05, slippage=0.3)]
    got = strategy_attribution(ledger, {}, [OpenPosition("d", "AAA", 10, 50.0)], {})
    assert got["d"].unrealized_pnl == 0.0


def test_buy_and_hold_holds_equal_dollars_of_each_symbol_priced_at_the_start() -> None:
    """A 10 -> 11 -> 12 and B 20 -> 20 -> 30 from 1,000: 1,000, 1,050, 1,350; C has no
    close at the start and is left out; a missing close keeps the last one."""
    closes = pd.DataFrame(
        {"A": [9.0, 10.0, 11.0, 12.0], "B": [19.0, 20.0, np.nan, 30.0], "C": [np.nan] * 3 + [5.0]},
        index=pd.to_datetime(["2026-02-26", "2026-02-27", "2026-03-02", "2026-03-03"]),
    )
    values, held = buy_and_hold(closes, 1000.0, D(2026, 2, 27))
    assert held == ("A", "B")
    assert values.tolist() == pytest.approx([1000.0, 1050.0, 1350.0])
    assert list(pd.DatetimeIndex(values.index).date) == [
        D(2026, 2, 27),
        D(2026, 3, 2),
        D(2026, 3, 3),
    ]


def test_buy_and_hold_without_a_price_at_the_start_is_empty() -> None:
    """No close at the base session (or no data at all): an empty curve, no symbols."""
    closes = pd.DataFrame({"A": [10.0]}, index=pd.to_datetime(["2026-03-02"]))
    assert buy_and_hold(closes, 1000.0, D(2026, 2, 27))[1] == ()
    assert buy_and_hold(pd.DataFrame(), 1000.0, D(2026, 2, 27))[1] == ()


def test_benchmark_stats_say_what_it_is_and_why() -> None:
    """Kind, symbols, return and drawdown; the note of a fallback; None when empty."""
    values = pd.Series(
        [100.0, 110.0, 99.0], index=pd.to_datetime(["2026-2-27", "2026-3-2", "2026-3-3"])
    )
    got = benchmark_stats(Benchmark(EQUAL_WEIGHT, ("A", "B"), values, "no SPY"))
    assert got["kind"] == EQUAL_WEIGHT
    assert got["symbols"] == ["A", "B"]
    assert got["total_return"] == pytest.approx(-0.01)
    assert got["max_drawdown"] == pytest.approx(-0.1)
    assert got["note"] == "no SPY"
    empty = benchmark_stats(Benchmark(SPY, (), pd.Series([], dtype=float)))
    assert empty["total_return"] is None
    assert "note" not in empty


def _inputs() -> BacktestInputs:
    """A three-session run of strategies a and b: equity consistent with the ledger."""
    initial = 10_000.0
    # cash after the fills: a -1001 + 719.4, b -500.05 + 449.95 + 3 (dividend)
    cash = initial - 1001.0 + 719.4 - 500.05 + 449.95 + 3.0
    final = cash + 40 * 11.0
    closes = [
        SessionClose(D(2026, 3, 2), 10_010.0, initial - 1001.0, 1010.0, 1),
        SessionClose(D(2026, 3, 31), 10_050.0, initial - 1001.0, 1050.0, 1),
        SessionClose(D(2026, 4, 1), final, cash, 440.0, 1),
    ]
    bench = pd.Series(
        [initial, 10_100.0, 10_200.0, 10_300.0],
        index=pd.to_datetime(["2026-02-27", "2026-03-02", "2026-03-31", "2026-04-01"]),
    )
    return BacktestInputs(
        initial_equity=initial,
        base_session=D(2026, 2, 27),
        closes=closes,
        ledger=LEDGER_A + LEDGER_B,
        other_cash={"b": 3.0},
        open_positions=[OpenPosition("a", "AAA", 40, 10.0)],
        marks={"AAA": 11.0},
        benchmark=Benchmark(SPY, (SPY,), bench),
        strategies=["a", "b"],
    )


def test_stats_json_has_every_figure_of_the_contract() -> None:
    """Every key of the stats.json contract, JSON without NaN, and the identities."""
    inputs = _inputs()
    stats = backtest_stats(inputs)
    json.dumps(stats, allow_nan=False)
    assert {
        "start", "end", "sessions", "initial_equity", "final_equity", "total_return", "cagr",
        "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "trades", "fills",
        "win_rate", "exposure", "time_in_market", "fees", "commission", "slippage",
        "realized_pnl", "unrealized_pnl", "benchmark", "strategies", "monthly_returns",
    } <= set(stats)  # fmt: skip
    assert (stats["start"], stats["end"], stats["sessions"]) == ("2026-03-02", "2026-04-01", 3)
    final = inputs.closes[-1].equity
    assert stats["final_equity"] == final
    assert stats["total_return"] == pytest.approx(final / 10_000.0 - 1.0)
    assert stats["realized_pnl"] + stats["unrealized_pnl"] == pytest.approx(final - 10_000.0)
    assert stats["unrealized_pnl"] == pytest.approx(40.0)
    assert (stats["trades"], stats["fills"], stats["win_rate"]) == (2, 4, 0.5)
    assert stats["fees"] == pytest.approx(2.9)
    assert stats["exposure"] == pytest.approx((1010 / 10_010 + 1050 / 10_050 + 440 / final) / 3)
    assert stats["time_in_market"] == 1.0
    assert stats["monthly_returns"]["2026"] == pytest.approx(
        {"3": 10_050.0 / 10_000.0 - 1.0, "4": final / 10_050.0 - 1.0}
    )
    assert stats["benchmark"]["total_return"] == pytest.approx(0.03)
    assert stats["max_drawdown"] <= 0.0
    assert set(stats["strategies"]) == {"a", "b"}


def test_a_run_without_trades_has_undefined_ratios_not_nan() -> None:
    """Flat equity, no fills: Sharpe, Sortino, Calmar and win rate null, fees 0."""
    closes = [SessionClose(D(2026, 3, d), 10_000.0, 10_000.0, 0.0, 0) for d in (2, 3, 4)]
    inputs = BacktestInputs(
        initial_equity=10_000.0,
        base_session=D(2026, 2, 27),
        closes=closes,
        ledger=[],
        other_cash={},
        open_positions=[],
        marks={},
        benchmark=Benchmark(SPY, (), pd.Series([], dtype=float)),
    )
    stats = backtest_stats(inputs)
    json.dumps(stats, allow_nan=False)
    assert (stats["sharpe"], stats["sortino"], stats["calmar"], stats["win_rate"]) == (None,) * 4
    assert (stats["fees"], stats["trades"], stats["exposure"], stats["time_in_market"]) == (
        0.0,
        0,
        0.0,
        0.0,
    )
    assert stats["max_drawdown"] == 0.0
    assert stats["strategies"] == {}
