"""Performance statistics: reference implementations, hand-computed cases, edge cases, FIFO."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.brokers.base import OrderSide
from actors.brokers.costs import apply_costs
from actors.reports.performance import (
    PERIODS_PER_YEAR,
    ClosedTrade,
    FillRecord,
    LotAdjustment,
    PerformanceSummary,
    annualized_return,
    annualized_volatility,
    average_holding_sessions,
    average_loss,
    average_win,
    calmar_ratio,
    closed_trades_from_fills,
    daily_risk_free,
    drawdown_series,
    max_drawdown,
    max_drawdown_duration,
    profit_factor,
    returns_from_equity,
    sharpe_ratio,
    sortino_ratio,
    summarize,
    total_return,
    win_rate,
)

D0 = dt.date(2024, 1, 2)


def _equity(values: list[float], start: str = "2024-01-02") -> pd.Series:
    return pd.Series(values, index=pd.bdate_range(start, periods=len(values)), dtype=float)


def _random_equity(seed: int, n: int = 500, drift: float = 0.0004, vol: float = 0.012) -> pd.Series:
    rng = np.random.default_rng(seed)
    return _equity(list(100_000.0 * np.cumprod(1.0 + rng.normal(drift, vol, n))))


# ------------------------------------------------------------ an independent reference
# Plain Python loops over lists, written from the definitions, sharing no code
# with the module under test.


def ref_returns(equity: list[float]) -> list[float]:
    out = []
    for i in range(1, len(equity)):
        out.append(equity[i] / equity[i - 1] - 1.0)
    return out


def ref_mean(xs: list[float]) -> float:
    total = 0.0
    for x in xs:
        total += x
    return total / len(xs)


def ref_std(xs: list[float]) -> float:
    m = ref_mean(xs)
    acc = 0.0
    for x in xs:
        acc += (x - m) * (x - m)
    return math.sqrt(acc / (len(xs) - 1))


def ref_sharpe(rets: list[float], daily_rf: float = 0.0) -> float:
    excess = [r - daily_rf for r in rets]
    return ref_mean(excess) / ref_std(excess) * math.sqrt(252)


def ref_sortino(rets: list[float], daily_rf: float = 0.0) -> float:
    excess = [r - daily_rf for r in rets]
    acc = 0.0
    for x in excess:
        if x < 0:
            acc += x * x
    return ref_mean(excess) / math.sqrt(acc / len(excess)) * math.sqrt(252)


def ref_cagr(equity: list[float]) -> float:
    n = len(equity) - 1
    return float((equity[-1] / equity[0]) ** (252 / n)) - 1.0


def ref_max_drawdown(equity: list[float]) -> float:
    peak = equity[0]
    worst = 0.0
    for value in equity:
        peak = max(peak, value)
        worst = min(worst, value / peak - 1.0)
    return worst


def ref_duration(equity: list[float]) -> int:
    longest = 0
    for start in range(len(equity)):
        if any(equity[j] > equity[start] for j in range(start)):
            continue  # not a running peak
        end = start
        while end + 1 < len(equity) and equity[end + 1] < equity[start]:
            end += 1
        if end > start:  # fell below this peak
            recovered = end + 1 < len(equity)
            longest = max(longest, end + 1 - start if recovered else end - start)
    return longest


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_statistics_match_the_plain_python_reference(seed: int) -> None:
    """Sharpe, Sortino, CAGR, max drawdown, duration and Calmar agree with the loop reference."""
    equity = _random_equity(seed)
    values = list(equity)
    rets = returns_from_equity(equity)
    ref = ref_returns(values)
    assert list(rets) == pytest.approx(ref, rel=1e-12)
    assert sharpe_ratio(rets) == pytest.approx(ref_sharpe(ref), rel=1e-9)
    assert sortino_ratio(rets) == pytest.approx(ref_sortino(ref), rel=1e-9)
    assert annualized_return(rets) == pytest.approx(ref_cagr(values), rel=1e-9)
    assert max_drawdown(equity) == pytest.approx(ref_max_drawdown(values), rel=1e-12)
    assert max_drawdown_duration(equity) == ref_duration(values)
    assert calmar_ratio(equity) == pytest.approx(
        ref_cagr(values) / abs(ref_max_drawdown(values)), rel=1e-9
    )
    assert annualized_volatility(rets) == pytest.approx(ref_std(ref) * math.sqrt(252), rel=1e-12)


@pytest.mark.parametrize("annual_rf", [0.0, 0.02, 0.05])
def test_risk_free_rate_matches_the_reference(annual_rf: float) -> None:
    """An annual risk-free rate is compounded down to a daily rate and subtracted every day."""
    equity = _random_equity(11)
    ref = ref_returns(list(equity))
    daily = (1.0 + annual_rf) ** (1.0 / 252) - 1.0
    assert daily_risk_free(annual_rf) == pytest.approx(daily, rel=1e-12, abs=1e-18)
    rets = returns_from_equity(equity)
    assert sharpe_ratio(rets, annual_rf) == pytest.approx(ref_sharpe(ref, daily), rel=1e-9)
    assert sortino_ratio(rets, annual_rf) == pytest.approx(ref_sortino(ref, daily), rel=1e-9)


@pytest.mark.parametrize("seed", [7, 8, 9, 10])
@pytest.mark.parametrize("annual_rf", [0.0, 0.03])
def test_statistics_match_empyrical(seed: int, annual_rf: float) -> None:
    """Sharpe, Sortino, max drawdown, annual return and Calmar agree with empyrical to 1e-9."""
    empyrical = pytest.importorskip("empyrical")
    equity = _random_equity(seed, drift=0.0002 * seed)
    rets = returns_from_equity(equity)
    daily = daily_risk_free(annual_rf)
    assert sharpe_ratio(rets, annual_rf) == pytest.approx(
        empyrical.sharpe_ratio(rets, risk_free=daily), rel=1e-9
    )
    assert sortino_ratio(rets, annual_rf) == pytest.approx(
        empyrical.sortino_ratio(rets, required_return=daily), rel=1e-9
    )
    assert max_drawdown(equity) == pytest.approx(empyrical.max_drawdown(rets), rel=1e-9)
    assert annualized_return(rets) == pytest.approx(empyrical.annual_return(rets), rel=1e-9)
    assert calmar_ratio(equity) == pytest.approx(empyrical.calmar_ratio(rets), rel=1e-9)
    assert annualized_volatility(rets) == pytest.approx(empyrical.annual_volatility(rets), rel=1e-9)


# ------------------------------------------------------------ hand-computed


def test_hand_computed_curve() -> None:
    """100 → 110 → 99 → 121: total 0.21, max drawdown −0.1 lasting 2 sessions, CAGR 1.21^84 − 1."""
    equity = _equity([100.0, 110.0, 99.0, 121.0])
    rets = returns_from_equity(equity)
    assert list(rets) == pytest.approx([0.1, -0.1, 0.22222222222222222])
    assert list(rets.index) == list(equity.index[1:])
    assert total_return(rets) == pytest.approx(0.21)
    assert max_drawdown(equity) == pytest.approx(-0.1)
    assert max_drawdown_duration(equity) == 2
    cagr = 1.21**84 - 1.0
    assert annualized_return(rets) == pytest.approx(cagr)
    assert calmar_ratio(equity) == pytest.approx(cagr / 0.1)
    assert list(drawdown_series(equity)) == pytest.approx([0.0, 0.0, -0.1, 0.0])


def test_hand_computed_sharpe_and_sortino() -> None:
    """Returns 1%, −1%, 2%: Sharpe = (2/3%)/std · √252; Sortino's downside is √(1e-4 / 3)."""
    rets = pd.Series([0.01, -0.01, 0.02])
    mean = 0.02 / 3
    std = math.sqrt(((0.01 - mean) ** 2 + (-0.01 - mean) ** 2 + (0.02 - mean) ** 2) / 2)
    assert sharpe_ratio(rets) == pytest.approx(mean / std * math.sqrt(252))
    assert sortino_ratio(rets) == pytest.approx(mean / math.sqrt(1e-4 / 3) * math.sqrt(252))


def test_unrecovered_drawdown_runs_to_the_end() -> None:
    """A drawdown still open at the last point counts sessions from its peak to the end."""
    equity = _equity([100.0, 120.0, 110.0, 115.0, 119.0, 90.0])
    assert max_drawdown_duration(equity) == 4
    assert max_drawdown(equity) == pytest.approx(90.0 / 120.0 - 1.0)


def test_longest_not_deepest_drawdown_sets_the_duration() -> None:
    """The duration is of the longest drawdown, which need not be the deepest one."""
    equity = _equity([100.0, 50.0, 100.0, 99.0, 99.0, 99.0, 99.0, 101.0])
    assert max_drawdown_duration(equity) == 5
    assert max_drawdown(equity) == pytest.approx(-0.5)


def test_returning_to_the_peak_ends_a_drawdown() -> None:
    """Equity back exactly at its previous peak counts as recovered."""
    equity = _equity([100.0, 90.0, 100.0, 100.0, 100.0])
    assert max_drawdown_duration(equity) == 2


# ------------------------------------------------------------ edge cases


@pytest.mark.parametrize("values", [[], [100_000.0]])
def test_no_returns_leave_returns_metrics_undefined(values: list[float]) -> None:
    """Empty or one-point equity: total return 0, drawdown 0, every returns statistic None."""
    equity = _equity(values)
    rets = returns_from_equity(equity)
    assert len(rets) == 0
    assert total_return(rets) == 0.0
    assert annualized_return(rets) is None
    assert annualized_volatility(rets) is None
    assert sharpe_ratio(rets) is None
    assert sortino_ratio(rets) is None
    assert max_drawdown(equity) == 0.0
    assert max_drawdown_duration(equity) == 0
    assert calmar_ratio(equity) is None
    assert len(drawdown_series(equity)) == len(values)


def test_single_return() -> None:
    """Two points (a single day): total and CAGR defined; volatility, Sharpe, Sortino None."""
    equity = _equity([100.0, 101.0])
    rets = returns_from_equity(equity)
    assert total_return(rets) == pytest.approx(0.01)
    assert annualized_return(rets) == pytest.approx(1.01**252 - 1.0)
    assert annualized_volatility(rets) is None
    assert sharpe_ratio(rets) is None
    assert sortino_ratio(rets) is None
    assert calmar_ratio(equity) is None


def test_flat_equity() -> None:
    """Flat equity: volatility 0, Sharpe undefined (None, not inf), drawdown 0, Calmar None."""
    equity = _equity([100.0] * 30)
    rets = returns_from_equity(equity)
    assert total_return(rets) == 0.0
    assert annualized_return(rets) == 0.0
    assert annualized_volatility(rets) == 0.0
    assert sharpe_ratio(rets) is None
    assert sortino_ratio(rets) is None
    assert max_drawdown(equity) == 0.0
    assert max_drawdown_duration(equity) == 0
    assert calmar_ratio(equity) is None


def test_constant_growth_has_no_sharpe() -> None:
    """A constant 0.1% a day is rounding noise away from zero spread: Sharpe None, not 1e17."""
    equity = _equity(list(100.0 * 1.001 ** np.arange(60)))
    rets = returns_from_equity(equity)
    assert sharpe_ratio(rets) is None
    assert annualized_volatility(rets) == 0.0


def test_no_losing_day_has_no_sortino() -> None:
    """Without a day below the risk-free rate the downside deviation is 0: Sortino None."""
    rets = pd.Series([0.01, 0.0, 0.02, 0.005])
    assert sortino_ratio(rets) is None
    assert sharpe_ratio(rets) is not None


def test_risk_free_can_make_a_losing_day() -> None:
    """A zero-return day is below a positive risk-free rate, so Sortino becomes defined."""
    rets = pd.Series([0.01, 0.0, 0.02, 0.005])
    sortino = sortino_ratio(rets, risk_free=0.05)
    assert sortino is not None
    assert sortino > 0.0


def test_rising_equity_has_no_drawdown_and_no_calmar() -> None:
    """Equity that only rises: max drawdown 0, duration 0, Calmar None."""
    equity = _equity([100.0, 101.0, 103.0, 103.5])
    assert max_drawdown(equity) == 0.0
    assert max_drawdown_duration(equity) == 0
    assert calmar_ratio(equity) is None


def test_annualized_return_overflow_is_none() -> None:
    """A CAGR that overflows a float (doubling in a day) is None rather than inf."""
    assert annualized_return(pd.Series([1e6])) is None


def test_calmar_overflow_is_none() -> None:
    """A finite but astronomically large CAGR over a tiny drawdown gives Calmar None, not inf."""
    equity = _equity([1.0, 240.0, 240.0 * (1.0 - 1e-10)])
    assert annualized_return(returns_from_equity(equity)) is not None
    assert calmar_ratio(equity) is None


@pytest.mark.parametrize("bad", [[100.0, 0.0, 100.0], [100.0, -5.0], [100.0, math.nan], [math.inf]])
def test_invalid_equity_is_refused(bad: list[float]) -> None:
    """Zero, negative or non-finite equity raises instead of producing NaN statistics."""
    with pytest.raises(ValueError, match="positive and finite"):
        max_drawdown(_equity(bad))


@pytest.mark.parametrize("bad", [[0.01, math.nan], [0.01, -1.0], [math.inf]])
def test_invalid_returns_are_refused(bad: list[float]) -> None:
    """Non-finite returns or returns of −100% and below raise ValueError."""
    with pytest.raises(ValueError, match="returns must be"):
        sharpe_ratio(pd.Series(bad))


# ------------------------------------------------------------ trades


def _trade(pnl: float, entry: dt.date = D0, exit_: dt.date = D0) -> ClosedTrade:
    return ClosedTrade("s", "AAA", entry, exit_, 1, 100.0, 100.0 + pnl, 0.0)


def test_trade_statistics() -> None:
    """Win rate, profit factor and average win/loss over winning, losing and flat trades."""
    trades = [_trade(30.0), _trade(10.0), _trade(-20.0), _trade(0.0)]
    assert win_rate(trades) == 0.5
    assert profit_factor(trades) == pytest.approx(2.0)
    assert average_win(trades) == pytest.approx(20.0)
    assert average_loss(trades) == pytest.approx(-20.0)


def test_no_trades() -> None:
    """Without trades every trade statistic is None."""
    assert win_rate([]) is None
    assert profit_factor([]) is None
    assert average_win([]) is None
    assert average_loss([]) is None
    assert average_holding_sessions([]) is None


def test_all_wins() -> None:
    """Only winners: win rate 1.0, profit factor None (no gross loss), average loss None."""
    trades = [_trade(5.0), _trade(7.0)]
    assert win_rate(trades) == 1.0
    assert profit_factor(trades) is None
    assert average_loss(trades) is None


def test_all_losses() -> None:
    """Only losers: win rate 0.0, profit factor 0.0, average win None."""
    trades = [_trade(-5.0), _trade(-7.0)]
    assert win_rate(trades) == 0.0
    assert profit_factor(trades) == 0.0
    assert average_win(trades) is None


def test_pnl_subtracts_costs_and_return_is_of_entry_notional() -> None:
    """P&L is (exit − entry) · shares − costs; slippage is informational only."""
    trade = ClosedTrade("s", "AAA", D0, D0, 10, 50.0, 55.0, 2.0, slippage=0.75)
    assert trade.pnl == pytest.approx(48.0)
    assert trade.return_pct == pytest.approx(48.0 / 500.0)


def test_holding_period_in_calendar_days_or_sessions() -> None:
    """Without sessions the holding period is in calendar days; with them, in sessions."""
    friday, monday, tuesday = dt.date(2024, 1, 5), dt.date(2024, 1, 8), dt.date(2024, 1, 9)
    trades = [_trade(1.0, friday, monday), _trade(1.0, friday, tuesday)]
    assert average_holding_sessions(trades) == pytest.approx(3.5)
    sessions = [dt.date(2024, 1, d) for d in (2, 3, 4, 5, 8, 9, 10)]
    assert average_holding_sessions(trades, sessions) == pytest.approx(1.5)


# ------------------------------------------------------------ FIFO


def _fill(
    action: str,
    shares: int,
    price: float,
    day: int,
    *,
    strategy: str = "trend",
    symbol: str = "AAA",
    commission: float | None = None,
    slippage: float = 0.0,
) -> FillRecord:
    return FillRecord(
        strategy=strategy,
        symbol=symbol,
        action=action,
        shares=shares,
        exec_price=price,
        commission_cost=0.005 * shares if commission is None else commission,
        slippage_cost=slippage,
        executed=dt.date(2024, 1, day),
    )


def test_fifo_with_partial_exits() -> None:
    """Sells close the oldest lots first; a partial close splits a lot, costs by shares."""
    fills = [
        _fill("BUY", 100, 10.0, 2, commission=1.0, slippage=0.5),
        _fill("BUY", 50, 12.0, 3, commission=0.5),
        _fill("SELL", 60, 15.0, 4, commission=0.6),
        _fill("SELL", 90, 11.0, 5, commission=0.9, slippage=0.9),
    ]
    trades = closed_trades_from_fills(fills)
    got = [
        (t.entry_date.day, t.exit_date.day, t.shares, t.entry_price, t.exit_price) for t in trades
    ]
    assert got == [(2, 4, 60, 10.0, 15.0), (2, 5, 40, 10.0, 11.0), (3, 5, 50, 12.0, 11.0)]
    assert [t.costs for t in trades] == pytest.approx([0.6 + 0.6, 0.4 + 0.4, 0.5 + 0.5])
    assert [t.slippage for t in trades] == pytest.approx([0.3, 0.2 + 0.4, 0.5])
    assert sum(t.pnl for t in trades) == pytest.approx(
        60 * 5.0 + 40 * 1.0 + 50 * -1.0 - (1.0 + 0.5 + 0.6 + 0.9)
    )


def test_fifo_is_per_strategy_and_symbol() -> None:
    """Lots of another strategy or symbol are never matched against a sell."""
    fills = [
        _fill("BUY", 10, 10.0, 2, strategy="trend"),
        _fill("BUY", 10, 20.0, 2, strategy="meanrev"),
        _fill("BUY", 10, 30.0, 2, symbol="BBB"),
        _fill("SELL", 10, 25.0, 3, strategy="meanrev"),
    ]
    trades = closed_trades_from_fills(fills)
    assert len(trades) == 1
    assert (trades[0].strategy, trades[0].symbol, trades[0].entry_price) == ("meanrev", "AAA", 20.0)


def test_fifo_orders_fills_by_date_and_skips_unmatched_sells() -> None:
    """Fills are sorted by date; sell shares without an open lot are left out; open lots too."""
    fills = [
        _fill("SELL", 5, 11.0, 4),
        _fill("SELL", 5, 9.0, 2),
        _fill("BUY", 3, 10.0, 3),
        _fill("BUY", 7, 10.0, 5),
    ]
    trades = closed_trades_from_fills(fills)
    assert [(t.entry_date.day, t.exit_date.day, t.shares) for t in trades] == [(3, 4, 3)]


def test_fifo_follows_a_split_between_entry_and_exit() -> None:
    """100 bought @ 10, a 2:1 split on day 3, 200 sold @ 6 on day 4: one trade of 200
    shares entered @ 5 (costs carried over), not a loss on 100 and 100 unmatched."""
    fills = [_fill("BUY", 100, 10.0, 2, commission=1.0), _fill("SELL", 200, 6.0, 4, commission=1.0)]
    trades = closed_trades_from_fills(fills, [LotAdjustment(dt.date(2024, 1, 3), "AAA", 2.0)])
    assert [(t.shares, t.entry_price, t.exit_price) for t in trades] == [(200, 5.0, 6.0)]
    assert trades[0].costs == pytest.approx(2.0)
    assert trades[0].pnl == pytest.approx(200 * 1.0 - 2.0)


def test_fifo_split_floors_the_holding_once_and_applies_before_the_days_fills() -> None:
    """Lots of 1 and 1 share through a 3:2 split hold 3 shares (floor of 3.0, not 1 + 1);
    a sell on the ex date itself sells post-split shares."""
    fills = [
        _fill("BUY", 1, 30.0, 2, commission=0.0),
        _fill("BUY", 1, 30.0, 3, commission=0.0),
        _fill("SELL", 3, 21.0, 5, commission=0.0),
    ]
    trades = closed_trades_from_fills(fills, [LotAdjustment(dt.date(2024, 1, 5), "AAA", 1.5)])
    assert sum(t.shares for t in trades) == 3
    assert all(t.entry_price == pytest.approx(20.0) for t in trades)


def test_fifo_follows_a_rename() -> None:
    """Bought as AAA, renamed to AAA.X, sold as AAA.X: one trade under the new name."""
    fills = [_fill("BUY", 10, 10.0, 2), _fill("SELL", 10, 12.0, 4, symbol="AAA.X")]
    rename = LotAdjustment(dt.date(2024, 1, 3), "AAA", new_symbol="AAA.X")
    trades = closed_trades_from_fills(fills, [rename])
    assert [(t.symbol, t.shares, t.entry_price) for t in trades] == [("AAA.X", 10, 10.0)]


def test_fifo_rejects_bad_fills() -> None:
    """An unknown action or a non-positive share count raises ValueError."""
    with pytest.raises(ValueError, match="BUY or SELL"):
        closed_trades_from_fills([_fill("SHORT", 1, 10.0, 2)])
    with pytest.raises(ValueError, match="positive number of shares"):
        closed_trades_from_fills([_fill("BUY", 0, 10.0, 2)])


def test_round_trip_pnl_matches_the_cash_it_moved() -> None:
    """Summed P&L equals the cash change of the fills (slippage is inside the prices)."""
    fills = [
        apply_costs(OrderSide.BUY, 100, 50.0),
        apply_costs(OrderSide.BUY, 40, 52.0),
        apply_costs(OrderSide.SELL, 70, 55.0),
        apply_costs(OrderSide.SELL, 70, 49.0),
    ]
    records = [
        FillRecord(
            strategy="trend",
            symbol="AAA",
            action=f.side.value,
            shares=f.qty,
            exec_price=f.exec_price,
            commission_cost=f.commission_cost,
            slippage_cost=f.slippage_cost,
            executed=dt.date(2024, 1, 2 + i),
        )
        for i, f in enumerate(fills)
    ]
    trades = closed_trades_from_fills(records)
    assert sum(t.pnl for t in trades) == pytest.approx(sum(f.cash_delta for f in fills))
    assert sum(t.costs + t.slippage for t in trades) == pytest.approx(
        sum(f.total_cost for f in fills)
    )


def test_fill_record_from_a_trades_row() -> None:
    """A ``trades`` table row (strategy_id, lower-case action, ISO executed_at) converts."""
    record = FillRecord.from_mapping(
        {
            "strategy_id": "trend",
            "symbol": "AAA",
            "action": "sell",
            "shares": 5,
            "exec_price": 10.5,
            "commission_cost": 0.025,
            "slippage_cost": 0.01,
            "executed_at": "2024-01-03T14:30:00+00:00",
        }
    )
    assert record == FillRecord("trend", "AAA", "SELL", 5, 10.5, 0.025, 0.01, dt.date(2024, 1, 3))


# ------------------------------------------------------------ summary


def test_summary_collects_everything_and_is_json_able() -> None:
    """summarize() fills every field; as_dict() is JSON-able with ISO dates."""
    equity = _equity([100.0, 110.0, 99.0, 121.0])
    trades = [_trade(30.0, D0, dt.date(2024, 1, 4)), _trade(-10.0, D0, dt.date(2024, 1, 5))]
    summary = summarize(equity, trades)
    assert isinstance(summary, PerformanceSummary)
    assert summary.start == D0
    assert summary.end == dt.date(2024, 1, 5)
    assert summary.periods == 3
    assert summary.total_return == pytest.approx(0.21)
    assert summary.max_drawdown == pytest.approx(-0.1)
    assert summary.trade_count == 2
    assert summary.total_pnl == pytest.approx(20.0)
    assert summary.profit_factor == pytest.approx(3.0)
    assert summary.average_holding_sessions == pytest.approx(2.5)
    data = summary.as_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["start"] == "2024-01-02"
    assert data["sharpe_ratio"] == pytest.approx(sharpe_ratio(returns_from_equity(equity)))


def test_empty_summary_has_none_not_nan() -> None:
    """An empty curve with no trades gives None for every undefined field, never NaN."""
    data = summarize(_equity([]), []).as_dict()
    json.dumps(data, allow_nan=False)
    assert data["total_return"] == 0.0
    assert data["start"] is None
    assert data["sharpe_ratio"] is None
    assert data["win_rate"] is None
    assert data["profit_factor"] is None
    assert data["periods"] == 0


def test_as_dict_maps_non_finite_floats_to_none() -> None:
    """A non-finite float in a summary becomes None in the dict."""
    summary = summarize(_equity([100.0, 101.0, 100.5]), [])
    patched = dataclasses.replace(summary, sharpe_ratio=math.inf, calmar_ratio=math.nan)
    assert patched.as_dict()["sharpe_ratio"] is None
    assert patched.as_dict()["calmar_ratio"] is None


def test_summary_uses_sessions_for_holding_periods() -> None:
    """summarize(sessions=) counts holding periods in sessions."""
    equity = _equity([100.0, 101.0])
    trades = [_trade(1.0, dt.date(2024, 1, 5), dt.date(2024, 1, 8))]
    sessions = [dt.date(2024, 1, 5), dt.date(2024, 1, 8)]
    assert summarize(equity, trades, sessions=sessions).average_holding_sessions == 1.0


# ------------------------------------------------------------ properties

_equity_values = st.lists(
    st.floats(min_value=1.0, max_value=1e7, allow_nan=False, allow_infinity=False),
    min_size=0,
    max_size=80,
)


@given(_equity_values)
@settings(max_examples=200, deadline=None)
def test_drawdown_bounds(values: list[float]) -> None:
    """Max drawdown stays in [−1, 0], its duration in [0, n − 1], the series ≤ 0."""
    equity = _equity(values)
    worst = max_drawdown(equity)
    assert -1.0 <= worst <= 0.0
    duration = max_drawdown_duration(equity)
    assert 0 <= duration <= max(0, len(values) - 1)
    assert (duration == 0) == (worst == 0.0)
    assert all(d <= 0.0 for d in drawdown_series(equity))
    if values:
        assert worst == pytest.approx(ref_max_drawdown(values), abs=1e-12)
        assert duration == ref_duration(values)


@given(_equity_values)
@settings(max_examples=200, deadline=None)
def test_statistics_are_finite_or_none(values: list[float]) -> None:
    """Every statistic of any positive curve is a finite float or None, never NaN or inf."""
    data = summarize(_equity(values), []).as_dict()
    for key, value in data.items():
        if isinstance(value, float):
            assert math.isfinite(value), key
    json.dumps(data, allow_nan=False)
    sharpe = sharpe_ratio(returns_from_equity(_equity(values)))
    assert sharpe is None or math.isfinite(sharpe)


def test_periods_per_year_is_252() -> None:
    """The annualisation uses 252 sessions a year."""
    assert PERIODS_PER_YEAR == 252
