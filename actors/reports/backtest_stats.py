"""Every figure of a backtest's ``stats.json``: pure functions over its equity, fills and book.

No I/O and no asyncio: ``actors.system.backtest_report`` reads the store and the market
and hands the plain data here. The return, risk and trade statistics are those of
:mod:`actors.reports.performance` (same conventions: 252 sessions a year, ``None`` where
a figure is undefined, max drawdown a negative fraction); this module adds what a
single backtest's report needs on top of them.

- **Equity curve**: the starting capital at the close of the session before the first
  (nothing is held yet), then the account's equity at each session's close. So the
  first session's fills and marks count, and ``total_return`` is final / initial - 1.
- **Exposure**: each session's gross exposure is the market value of the positions
  held at its close (long and short alike, absolute values) over that close's equity;
  ``exposure`` is its mean over the sessions, ``time_in_market`` the fraction of
  sessions that closed holding any position.
- **Fees**: commission plus slippage, in dollars, summed over the fills. Slippage is
  already inside each fill's price (it is reported, never subtracted twice).
- **Realised and unrealised P&L, per strategy** (average cost, as the strategies' own
  book keeps it): unrealised is the open shares x (last close - average entry price);
  realised is everything else the strategy made: its cash flows (sells' proceeds less
  buys' cost, commissions included, plus credited dividends and cash in lieu) plus the
  cost of what it still holds. Their sum is the strategy's whole P&L, so the
  portfolio's realised + unrealised is final equity - initial equity. Splits and
  renames need no special case: the book rescales shares and average prices.
- **Trades and win rate** are closed round trips matched first in, first out per
  strategy and symbol (:func:`actors.reports.performance.closed_trades_from_fills`),
  the open lots following the splits and renames the book applied (``adjustments``).
- **Benchmark**: buy-and-hold over the same sessions, from the same capital, bought at
  the close before the first session: one symbol (SPY), or an equal dollar weight of
  each symbol of the universe with a price at that close, held without rebalancing.
  Prices are split-adjusted closes; dividends are not reinvested (a price return).
- **Monthly returns**: the equity at each month's last session over the one before
  (the first month's from the starting capital), by year and month number.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from actors.market.corporate_actions import ActionKind, CorporateAction
from actors.reports.performance import (
    ClosedTrade,
    FillRecord,
    LotAdjustment,
    closed_trades_from_fills,
    summarize,
    win_rate,
)

SPY = "SPY"
EQUAL_WEIGHT = "equal_weight"


@dataclass(frozen=True, slots=True)
class SessionClose:
    """The account at one session's close: equity, cash, and what its positions are worth."""

    session: dt.date
    equity: float
    cash: float
    gross: float  # sum of |market value| of the positions held at the close
    positions: int  # how many symbols were held


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """One strategy's holding at the end, as its book has it (after splits and renames)."""

    strategy: str
    symbol: str
    shares: float
    avg_price: float


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A buy-and-hold curve in dollars, indexed by session (the starting close first)."""

    kind: str  # SPY or equal_weight
    symbols: tuple[str, ...]
    values: pd.Series
    note: str | None = None  # why it is not the benchmark asked for


@dataclass(frozen=True, slots=True)
class StrategyStats:
    """One strategy's share of the run."""

    realized_pnl: float
    unrealized_pnl: float
    trades: int
    fees: float
    win_rate: float | None
    commission: float = 0.0
    slippage: float = 0.0
    fills: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl,
            "trades": self.trades,
            "fees": self.fees,
            "win_rate": self.win_rate,
            "commission": self.commission,
            "slippage": self.slippage,
            "fills": self.fills,
        }


@dataclass(frozen=True)
class BacktestInputs:
    """Everything a run's statistics are computed from, read once from its store and market.

    ``ledger`` rows are the trade ledger (``OrderStore.trade_ledger``: strategy, symbol,
    action, shares, exec_price, notional, commission_cost, slippage_cost, date);
    ``other_cash`` each strategy's credited corporate-action cash; ``marks`` the last
    close of each symbol held at the end (as the broker marks it: today's shares).
    """

    initial_equity: float
    base_session: dt.date  # the session before the first: the starting capital's close
    closes: Sequence[SessionClose]
    ledger: Sequence[Mapping[str, Any]]
    other_cash: Mapping[str, float]
    open_positions: Sequence[OpenPosition]
    marks: Mapping[str, float]
    benchmark: Benchmark
    strategies: Sequence[str] = ()  # shown even without a fill (the enabled ones)
    adjustments: Sequence[LotAdjustment] = ()  # splits and renames the book applied

    def closed_trades(self) -> list[ClosedTrade]:
        """The run's round trips, first in first out, through its splits and renames."""
        return closed_trades_from_fills(fill_records(self.ledger), self.adjustments)


# ---------------------------------------------------------------- the curve and exposure


def equity_curve(
    initial_equity: float, base_session: dt.date, closes: Sequence[SessionClose]
) -> pd.Series:
    """The starting capital at ``base_session``, then each session's closing equity."""
    days = [base_session, *(c.session for c in closes)]
    values = [initial_equity, *(c.equity for c in closes)]
    return pd.Series(values, index=pd.DatetimeIndex(pd.to_datetime(days)), dtype=np.float64)


def exposure(closes: Sequence[SessionClose]) -> tuple[float | None, float | None]:
    """(mean gross exposure, fraction of sessions holding a position); None without sessions."""
    if not closes:
        return None, None
    gross = [c.gross / c.equity if c.equity > 0 else 0.0 for c in closes]
    held = sum(1 for c in closes if c.positions > 0)
    return float(np.mean(gross)), held / len(closes)


def gross_exposure_series(closes: Sequence[SessionClose]) -> pd.Series:
    """Each session's gross exposure (market value held / equity), for the report's chart."""
    return pd.Series(
        [c.gross / c.equity if c.equity > 0 else 0.0 for c in closes],
        index=pd.DatetimeIndex(pd.to_datetime([c.session for c in closes])),
        dtype=np.float64,
    )


def monthly_returns(equity: pd.Series) -> dict[str, dict[str, float]]:
    """{"YYYY": {"M": return}}: each month's last equity over the previous month's (the
    first month over the curve's first point, the starting capital)."""
    if len(equity) < 2:
        return {}
    body = equity.iloc[1:]
    index = pd.DatetimeIndex(body.index)
    month_end = body.groupby([index.year, index.month]).last()
    previous = float(equity.iloc[0])
    out: dict[str, dict[str, float]] = {}
    for (year, month), value in zip(month_end.index, month_end.to_numpy(), strict=True):
        out.setdefault(str(year), {})[str(month)] = float(value) / previous - 1.0
        previous = float(value)
    return out


# ---------------------------------------------------------------- fills and attribution


def lot_adjustments(actions: Sequence[CorporateAction]) -> list[LotAdjustment]:
    """The splits, stock dividends and renames among ``actions``, as lot adjustments."""
    out = []
    for a in actions:
        if a.kind is ActionKind.RENAME and a.new_symbol:
            out.append(LotAdjustment(a.ex_date, a.symbol, new_symbol=a.new_symbol))
        elif a.kind.rescales:
            out.append(LotAdjustment(a.ex_date, a.symbol, ratio=a.ratio))
    return out


def fill_records(ledger: Sequence[Mapping[str, Any]]) -> list[FillRecord]:
    """The ledger's rows as fills for :func:`closed_trades_from_fills`."""
    return [
        FillRecord.from_mapping({**row, "executed": row.get("executed", row.get("date"))})
        for row in ledger
    ]


def fee_totals(ledger: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """(commission, slippage) paid over the ledger, in dollars."""
    commission = sum(float(r["commission_cost"] or 0.0) for r in ledger)
    slippage = sum(float(r["slippage_cost"] or 0.0) for r in ledger)
    return commission, slippage


def _cash_flow(row: Mapping[str, Any]) -> float:
    """A fill's effect on cash: a buy spends notional + commission, a sell receives
    notional - commission (slippage is inside the notional already)."""
    notional = float(row["notional"])
    commission = float(row["commission_cost"] or 0.0)
    return notional - commission if str(row["action"]).upper() == "SELL" else -notional - commission


def strategy_attribution(
    ledger: Sequence[Mapping[str, Any]],
    other_cash: Mapping[str, float],
    open_positions: Sequence[OpenPosition],
    marks: Mapping[str, float],
    *,
    strategies: Sequence[str] = (),
    adjustments: Sequence[LotAdjustment] = (),
) -> dict[str, StrategyStats]:
    """Per strategy: realised and unrealised P&L, closed trades, fees and win rate.

    A symbol without a mark is valued at its average price (unrealised 0), as the
    simulated broker marks a position whose close it does not know.
    """
    flows: defaultdict[str, float] = defaultdict(float)
    commission: defaultdict[str, float] = defaultdict(float)
    slippage: defaultdict[str, float] = defaultdict(float)
    fills: defaultdict[str, int] = defaultdict(int)
    for row in ledger:
        name = str(row["strategy"])
        flows[name] += _cash_flow(row)
        commission[name] += float(row["commission_cost"] or 0.0)
        slippage[name] += float(row["slippage_cost"] or 0.0)
        fills[name] += 1
    for name, cash in other_cash.items():
        flows[name] += float(cash)
    cost: defaultdict[str, float] = defaultdict(float)
    unrealized: defaultdict[str, float] = defaultdict(float)
    for p in open_positions:
        mark = marks.get(p.symbol, p.avg_price)
        cost[p.strategy] += p.shares * p.avg_price
        unrealized[p.strategy] += p.shares * (mark - p.avg_price)
    trades = closed_trades_from_fills(fill_records(ledger), adjustments)
    by_strategy: defaultdict[str, list[ClosedTrade]] = defaultdict(list)
    for t in trades:
        by_strategy[t.strategy].append(t)
    names = sorted({*strategies, *flows, *cost})
    return {
        name: StrategyStats(
            realized_pnl=flows[name] + cost[name],
            unrealized_pnl=unrealized[name],
            trades=len(by_strategy[name]),
            fees=commission[name] + slippage[name],
            win_rate=win_rate(by_strategy[name]),
            commission=commission[name],
            slippage=slippage[name],
            fills=fills[name],
        )
        for name in names
    }


# ---------------------------------------------------------------- the benchmark


def buy_and_hold(
    closes: pd.DataFrame, initial_equity: float, base_session: dt.date
) -> tuple[pd.Series, tuple[str, ...]]:
    """Equal dollars of each column with a close at ``base_session``, held: the curve in
    dollars from ``base_session`` on, and the symbols it holds.

    A later missing close keeps the symbol at its last known close. No column with a
    close at ``base_session``: an empty curve and no symbols.
    """
    if closes.empty:
        return pd.Series([], dtype=np.float64), ()
    base = pd.Timestamp(base_session)
    frame = closes.set_axis(pd.DatetimeIndex(closes.index)).sort_index()
    frame = frame.loc[frame.index >= base].ffill()
    if frame.empty or frame.index[0] != base:
        return pd.Series([], dtype=np.float64), ()
    first = frame.iloc[0]
    held = [str(s) for s in frame.columns if math.isfinite(float(first[s])) and first[s] > 0]
    if not held:
        return pd.Series([], dtype=np.float64), ()
    growth = frame[held].div(first[held], axis="columns").mean(axis="columns")
    return (growth * initial_equity).astype(np.float64), tuple(held)


def benchmark_stats(benchmark: Benchmark) -> dict[str, Any]:
    """The benchmark's kind, symbols and its return and risk figures (None when it is empty)."""
    values = benchmark.values
    out: dict[str, Any] = {"kind": benchmark.kind, "symbols": list(benchmark.symbols)}
    if len(values) == 0:
        out.update(total_return=None, cagr=None, sharpe=None, max_drawdown=None)
    else:
        s = summarize(values, [])
        out.update(
            total_return=s.total_return,
            cagr=s.annualized_return,
            sharpe=s.sharpe_ratio,
            max_drawdown=s.max_drawdown,
        )
    if benchmark.note is not None:
        out["note"] = benchmark.note
    return out


# ---------------------------------------------------------------- stats.json


def backtest_stats(inputs: BacktestInputs) -> dict[str, Any]:
    """The ``stats.json`` object: every figure of the run, JSON-able (None where undefined)."""
    equity = equity_curve(inputs.initial_equity, inputs.base_session, inputs.closes)
    trades = inputs.closed_trades()
    summary = summarize(equity, trades)
    commission, slippage = fee_totals(inputs.ledger)
    mean_exposure, time_in_market = exposure(inputs.closes)
    attribution = strategy_attribution(
        inputs.ledger,
        inputs.other_cash,
        inputs.open_positions,
        inputs.marks,
        strategies=inputs.strategies,
        adjustments=inputs.adjustments,
    )
    sessions = [c.session for c in inputs.closes]
    final = float(equity.iloc[-1])
    stats: dict[str, Any] = _jsonable(
        {
            "start": sessions[0].isoformat() if sessions else None,
            "end": sessions[-1].isoformat() if sessions else None,
            "sessions": len(sessions),
            "initial_equity": inputs.initial_equity,
            "final_equity": final,
            "total_return": summary.total_return,
            "cagr": summary.annualized_return,
            "volatility": summary.annualized_volatility,
            "sharpe": summary.sharpe_ratio,
            "sortino": summary.sortino_ratio,
            "max_drawdown": summary.max_drawdown,
            "calmar": summary.calmar_ratio,
            "trades": len(trades),
            "fills": len(inputs.ledger),
            "win_rate": summary.win_rate,
            "profit_factor": summary.profit_factor,
            "exposure": mean_exposure,
            "time_in_market": time_in_market,
            "fees": commission + slippage,
            "commission": commission,
            "slippage": slippage,
            "realized_pnl": sum(s.realized_pnl for s in attribution.values()),
            "unrealized_pnl": sum(s.unrealized_pnl for s in attribution.values()),
            "benchmark": benchmark_stats(inputs.benchmark),
            "strategies": {name: s.as_dict() for name, s in attribution.items()},
            "monthly_returns": monthly_returns(equity),
        }
    )
    return stats


def _jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities as None and numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
