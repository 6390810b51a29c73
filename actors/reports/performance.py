"""Performance statistics over a daily equity series and closed round-trip trades.

Pure functions, no I/O. Conventions (those of empyrical and quantstats):

- Daily data, 252 periods a year. ``returns`` are simple daily returns, as
  :func:`returns_from_equity` makes them from an equity curve.
- Sharpe = mean(excess) / std(excess, ddof=1) · √252.
- Sortino = mean(excess) · 252 / (√(mean(min(excess, 0)²)) · √252): the
  downside deviation is taken over *all* days, not over the losing days only.
- CAGR from the count of periods: (1 + total)^(252 / n) − 1, n = number of returns.
- Calmar = CAGR / |max drawdown|.
- ``risk_free`` is an *annual* rate, default 0.0; it becomes a daily rate as
  (1 + rf)^(1/252) − 1 and is subtracted from every daily return.

Undefined statistics are ``None``, never NaN or ±inf, so a summary is always
JSON-able:

- fewer than one return (empty or one-point equity): every returns-based
  statistic is ``None``; ``total_return`` is 0.0, max drawdown 0.0, duration 0;
- volatility and Sharpe need two returns; Sortino needs two returns as well;
- a numerically constant excess return (flat equity) has volatility 0.0 and
  Sharpe ``None`` (0/0 or x/0: undefined, not ±inf);
- no day below the risk-free rate → downside deviation 0 → Sortino ``None``;
- no drawdown → Calmar ``None``;
- no trades → win rate, profit factor, averages ``None``; no losing trade →
  profit factor ``None`` (gross losses are 0); no winning trade → profit factor 0.0.

Equity must be positive and finite and returns finite and greater than −1;
anything else raises ``ValueError`` rather than producing a silent NaN.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

PERIODS_PER_YEAR = 252
_RELATIVE_ZERO = 1e-12  # a std this small relative to the mean is rounding noise on a constant

FloatArray = npt.NDArray[np.float64]


# ---------------------------------------------------------------- validation


def _equity_values(equity: pd.Series) -> FloatArray:
    values = np.asarray(equity, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("equity must be one-dimensional")
    if not (np.all(np.isfinite(values)) and np.all(values > 0.0)):
        raise ValueError("equity must be positive and finite")
    return values


def _return_values(returns: pd.Series | Sequence[float]) -> FloatArray:
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("returns must be one-dimensional")
    if not (np.all(np.isfinite(values)) and np.all(values > -1.0)):
        raise ValueError("returns must be finite and greater than -1")
    return values


def daily_risk_free(risk_free: float) -> float:
    """The daily rate equivalent to the annual ``risk_free``: (1 + rf)^(1/252) − 1."""
    if not (math.isfinite(risk_free) and risk_free > -1.0):
        raise ValueError(f"risk_free must be finite and greater than -1, got {risk_free}")
    return float(math.expm1(math.log1p(risk_free) / PERIODS_PER_YEAR))


def _is_zero_spread(std: float, mean: float) -> bool:
    return std == 0.0 or std <= _RELATIVE_ZERO * abs(mean)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------- equity and returns


def returns_from_equity(equity: pd.Series) -> pd.Series:
    """Simple daily returns of ``equity``; the first day, which has none, is dropped."""
    values = _equity_values(equity)
    if values.size < 2:
        return pd.Series([], index=equity.index[:0], dtype=np.float64)
    return pd.Series(values[1:] / values[:-1] - 1.0, index=equity.index[1:], dtype=np.float64)


def total_return(returns: pd.Series | Sequence[float]) -> float:
    """Compounded return over the whole series; 0.0 when there are no returns."""
    values = _return_values(returns)
    if values.size == 0:
        return 0.0
    return float(math.expm1(float(np.sum(np.log1p(values)))))


def annualized_return(returns: pd.Series | Sequence[float]) -> float | None:
    """CAGR from the count of periods: (1 + total)^(252 / n) − 1; ``None`` without returns.

    Also ``None`` when the annualised figure overflows a float (a huge return
    over a few days, where the number means nothing).
    """
    values = _return_values(returns)
    if values.size == 0:
        return None
    log_growth = float(np.sum(np.log1p(values))) * PERIODS_PER_YEAR / values.size
    try:
        return float(math.expm1(log_growth))
    except OverflowError:
        return None


def annualized_volatility(returns: pd.Series | Sequence[float]) -> float | None:
    """std(returns, ddof=1) · √252; ``None`` with fewer than two returns, 0.0 when constant."""
    values = _return_values(returns)
    if values.size < 2:
        return None
    std = float(np.std(values, ddof=1))
    if _is_zero_spread(std, float(np.mean(values))):
        return 0.0
    return std * math.sqrt(PERIODS_PER_YEAR)


def sharpe_ratio(returns: pd.Series | Sequence[float], risk_free: float = 0.0) -> float | None:
    """Annualised Sharpe ratio: mean/std(ddof=1) of daily excess returns · √252.

    ``risk_free`` is an annual rate (default 0.0, the usual convention for a
    strategy report), converted to a daily rate as (1 + rf)^(1/252) − 1. ``None``
    with fewer than two returns or a constant excess return (undefined, not inf).
    """
    values = _return_values(returns)
    if values.size < 2:
        return None
    excess = values - daily_risk_free(risk_free)
    mean = float(np.mean(excess))
    std = float(np.std(excess, ddof=1))
    if _is_zero_spread(std, mean):
        return None
    return _finite_or_none(mean / std * math.sqrt(PERIODS_PER_YEAR))


def sortino_ratio(returns: pd.Series | Sequence[float], risk_free: float = 0.0) -> float | None:
    """Annualised Sortino ratio: mean(excess) · √252 / √(mean(min(excess, 0)²)) over all days.

    ``risk_free`` as in :func:`sharpe_ratio`. ``None`` with fewer than two
    returns, or when no day's return is below the risk-free rate (the downside
    deviation is 0: the ratio is undefined, reported as ``None`` rather than inf).
    """
    values = _return_values(returns)
    if values.size < 2:
        return None
    excess = values - daily_risk_free(risk_free)
    downside = float(np.sqrt(np.mean(np.square(np.minimum(excess, 0.0)))))
    if downside == 0.0:
        return None
    return _finite_or_none(float(np.mean(excess)) / downside * math.sqrt(PERIODS_PER_YEAR))


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Equity / running peak − 1 at every point (0 at a new high, −0.1 ten percent below it)."""
    values = _equity_values(equity)
    if values.size == 0:
        return pd.Series([], index=equity.index, dtype=np.float64)
    peaks = np.maximum.accumulate(values)
    return pd.Series(values / peaks - 1.0, index=equity.index, dtype=np.float64)


def max_drawdown(equity: pd.Series) -> float:
    """The deepest fall from a running peak as a negative ratio (−0.12); 0.0 without one."""
    values = _equity_values(equity)
    if values.size == 0:
        return 0.0
    return float(min(0.0, float(np.min(values / np.maximum.accumulate(values) - 1.0))))


def max_drawdown_duration(equity: pd.Series) -> int:
    """The longest drawdown in sessions: from the peak to the first session back at or above it.

    A drawdown not recovered by the last point runs to the end of the series
    (last index − peak index). 0 when the equity never falls below a peak.
    """
    values = _equity_values(equity)
    longest = 0
    peak_value = -math.inf
    peak_index = 0
    underwater = False
    for i, value in enumerate(values.tolist()):
        if value >= peak_value:
            if underwater:
                longest = max(longest, i - peak_index)
                underwater = False
            peak_value, peak_index = value, i
        else:
            underwater = True
    if underwater:
        longest = max(longest, values.size - 1 - peak_index)
    return longest


def calmar_ratio(equity: pd.Series) -> float | None:
    """CAGR / |max drawdown| of ``equity``; ``None`` without returns or without a drawdown.

    Also ``None`` when the ratio overflows a float, as :func:`annualized_return` does.
    """
    cagr = annualized_return(returns_from_equity(equity))
    worst = max_drawdown(equity)
    if cagr is None or worst == 0.0:
        return None
    return _finite_or_none(cagr / abs(worst))


# ---------------------------------------------------------------- trades


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One closed lot: ``shares`` bought at ``entry_price`` and sold at ``exit_price``.

    Prices are execution prices, which already include slippage. ``costs`` are
    the cash costs on top of those prices (commissions, entry and exit share);
    ``slippage`` is the modelled slippage already inside the prices, kept for
    reporting only and never subtracted again.
    """

    strategy: str
    symbol: str
    entry_date: dt.date
    exit_date: dt.date
    shares: int
    entry_price: float
    exit_price: float
    costs: float
    slippage: float = 0.0

    @property
    def pnl(self) -> float:
        """Profit in dollars: (exit − entry) · shares − costs."""
        return (self.exit_price - self.entry_price) * self.shares - self.costs

    @property
    def return_pct(self) -> float:
        """P&L as a fraction of the entry notional."""
        return self.pnl / (self.entry_price * self.shares)


def win_rate(trades: Sequence[ClosedTrade]) -> float | None:
    """The fraction of trades with a positive P&L; ``None`` without trades."""
    if not trades:
        return None
    return sum(1 for t in trades if t.pnl > 0.0) / len(trades)


def profit_factor(trades: Sequence[ClosedTrade]) -> float | None:
    """Gross wins / |gross losses|; ``None`` without a losing trade (no trades or all wins)."""
    losses = -sum(t.pnl for t in trades if t.pnl < 0.0)
    if losses == 0.0:
        return None
    return sum(t.pnl for t in trades if t.pnl > 0.0) / losses


def average_win(trades: Sequence[ClosedTrade]) -> float | None:
    """Mean P&L of the winning trades; ``None`` without one."""
    wins = [t.pnl for t in trades if t.pnl > 0.0]
    return sum(wins) / len(wins) if wins else None


def average_loss(trades: Sequence[ClosedTrade]) -> float | None:
    """Mean P&L of the losing trades (a negative number); ``None`` without one."""
    losses = [t.pnl for t in trades if t.pnl < 0.0]
    return sum(losses) / len(losses) if losses else None


def average_holding_sessions(
    trades: Sequence[ClosedTrade], sessions: Sequence[dt.date] | None = None
) -> float | None:
    """Mean holding period from entry to exit; ``None`` without trades.

    With ``sessions`` (the sorted trading sessions, e.g. the exchange calendar)
    the period is counted in sessions: exit's position − entry's position, so a
    trade entered on one session and exited on the next held 1. Without it the
    period is in calendar days (a Friday-to-Monday trade holds 3).
    """
    if not trades:
        return None
    if sessions is None:
        days = [(t.exit_date - t.entry_date).days for t in trades]
    else:
        ordered = sorted(_as_date(s) for s in sessions)
        days = [
            bisect.bisect_left(ordered, t.exit_date) - bisect.bisect_left(ordered, t.entry_date)
            for t in trades
        ]
    return sum(days) / len(days)


class FillLike(Protocol):
    """A booked fill: what :func:`closed_trades_from_fills` reads (see :class:`FillRecord`)."""

    @property
    def strategy(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def shares(self) -> int: ...
    @property
    def exec_price(self) -> float: ...
    @property
    def commission_cost(self) -> float: ...
    @property
    def slippage_cost(self) -> float: ...
    @property
    def executed(self) -> dt.date: ...


@dataclass(frozen=True, slots=True)
class FillRecord:
    """A fill as the ``trades`` table stores it; ``action`` is BUY or SELL."""

    strategy: str
    symbol: str
    action: str
    shares: int
    exec_price: float
    commission_cost: float
    slippage_cost: float
    executed: dt.date

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> FillRecord:
        """A record from a ``trades`` row (``strategy_id``, ``executed_at`` ISO text accepted)."""
        executed = row["executed"] if "executed" in row else row["executed_at"]
        if isinstance(executed, str):
            executed = dt.datetime.fromisoformat(executed)
        return cls(
            strategy=str(row["strategy"] if "strategy" in row else row["strategy_id"]),
            symbol=str(row["symbol"]),
            action=str(row["action"]).upper(),
            shares=int(row["shares"]),
            exec_price=float(row["exec_price"]),
            commission_cost=float(row["commission_cost"]),
            slippage_cost=float(row["slippage_cost"]),
            executed=_as_date(executed),
        )


@dataclass(slots=True)
class _Lot:
    date: dt.date
    shares: int
    price: float
    commission_per_share: float
    slippage_per_share: float


def _as_date(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


@dataclass(frozen=True, slots=True)
class LotAdjustment:
    """A corporate action on the open lots of ``symbol``, at the open of ``date``.

    A split or stock dividend (``ratio``: 2.0 for 2:1, 0.1 for 1:10) leaves
    ``floor(shares x ratio)`` shares of each holding (the fraction was paid in cash)
    at per-share prices and costs divided by ``ratio``; a rename (``new_symbol``)
    moves the lots to the new symbol.
    """

    date: dt.date
    symbol: str
    ratio: float = 1.0
    new_symbol: str | None = None


def _rescale_lots(lots: deque[_Lot], ratio: float) -> None:
    """Each lot's shares x ``ratio`` (floored), the holding's total floored once: the
    shares lost to flooring lot by lot go back to the oldest lots."""
    total = math.floor(sum(lot.shares for lot in lots) * ratio + 1e-9)
    for lot in lots:
        lot.shares = math.floor(lot.shares * ratio + 1e-9)
        lot.price /= ratio
        lot.commission_per_share /= ratio
        lot.slippage_per_share /= ratio
    short = total - sum(lot.shares for lot in lots)
    for lot in list(lots)[: max(0, short)]:
        lot.shares += 1
    kept = [lot for lot in lots if lot.shares > 0]
    lots.clear()
    lots.extend(kept)


def _adjust(open_lots: defaultdict[tuple[str, str], deque[_Lot]], action: LotAdjustment) -> None:
    for key in [k for k in open_lots if k[1] == action.symbol and open_lots[k]]:
        lots = open_lots[key]
        if action.new_symbol is not None:
            open_lots[(key[0], action.new_symbol)].extend(lots)
            open_lots[key] = deque()
        elif action.ratio != 1.0:
            _rescale_lots(lots, action.ratio)


def closed_trades_from_fills(
    fills: Sequence[FillLike], adjustments: Sequence[LotAdjustment] = ()
) -> list[ClosedTrade]:
    """Round trips matched first-in first-out per (strategy, symbol).

    Fills are taken in order of ``executed`` (stable: same-day fills keep their
    input order). A sell closes the oldest open lots first; a sell that covers
    part of a lot splits it, and a sell spread over several lots yields one
    :class:`ClosedTrade` per lot. Commissions and slippage are apportioned by
    shares on both sides. Sell shares with no open lot (a window that starts
    with a position already open) have no known entry and are left out; lots
    still open at the end are not trades yet. The result is ordered by exit.

    ``adjustments`` (splits, stock dividends, renames) apply to the lots open at
    the start of their date, before that date's fills: a lot bought before a 2:1
    split and sold after it is one trade of twice the shares at half the entry.
    """
    open_lots: defaultdict[tuple[str, str], deque[_Lot]] = defaultdict(deque)
    closed: list[ClosedTrade] = []
    pending = deque(sorted(adjustments, key=lambda a: a.date))
    for fill in sorted(fills, key=lambda f: _as_date(f.executed)):
        while pending and pending[0].date <= _as_date(fill.executed):
            _adjust(open_lots, pending.popleft())
        if fill.shares <= 0:
            raise ValueError(f"a fill must have a positive number of shares, got {fill.shares}")
        action = str(fill.action).upper()
        key = (fill.strategy, fill.symbol)
        commission = fill.commission_cost / fill.shares
        slippage = fill.slippage_cost / fill.shares
        if action == "BUY":
            open_lots[key].append(
                _Lot(_as_date(fill.executed), fill.shares, fill.exec_price, commission, slippage)
            )
            continue
        if action != "SELL":
            raise ValueError(f"a fill's action must be BUY or SELL, got {fill.action!r}")
        lots = open_lots[key]
        remaining = fill.shares
        while remaining and lots:
            lot = lots[0]
            qty = min(remaining, lot.shares)
            closed.append(
                ClosedTrade(
                    strategy=fill.strategy,
                    symbol=fill.symbol,
                    entry_date=lot.date,
                    exit_date=_as_date(fill.executed),
                    shares=qty,
                    entry_price=lot.price,
                    exit_price=fill.exec_price,
                    costs=(lot.commission_per_share + commission) * qty,
                    slippage=(lot.slippage_per_share + slippage) * qty,
                )
            )
            remaining -= qty
            lot.shares -= qty
            if lot.shares == 0:
                lots.popleft()
    return closed


# ---------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class PerformanceSummary:
    """Every statistic of one equity curve and its closed trades; ``None`` where undefined."""

    start: dt.date | None
    end: dt.date | None
    periods: int
    starting_equity: float | None
    ending_equity: float | None
    risk_free: float
    total_return: float
    annualized_return: float | None
    annualized_volatility: float | None
    sharpe_ratio: float | None
    sortino_ratio: float | None
    max_drawdown: float
    max_drawdown_duration: int
    calmar_ratio: float | None
    trade_count: int
    total_pnl: float
    win_rate: float | None
    profit_factor: float | None
    average_win: float | None
    average_loss: float | None
    average_holding_sessions: float | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict: dates as ISO text, NaN and ±inf as ``None``."""
        return {key: _jsonable(value) for key, value in asdict(self).items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def _index_date(label: object) -> dt.date | None:
    if isinstance(label, dt.date):  # pd.Timestamp is a datetime
        return _as_date(label)
    if isinstance(label, np.datetime64 | str):
        try:
            return _as_date(pd.Timestamp(label).to_pydatetime())
        except ValueError:
            return None
    return None


def summarize(
    equity: pd.Series,
    trades: Sequence[ClosedTrade],
    risk_free: float = 0.0,
    *,
    sessions: Sequence[dt.date] | None = None,
) -> PerformanceSummary:
    """All statistics of a daily ``equity`` series (indexed by session) and closed ``trades``.

    ``risk_free`` is the annual rate for Sharpe and Sortino (default 0.0);
    ``sessions`` goes to :func:`average_holding_sessions` (calendar days if None).
    """
    values = _equity_values(equity)
    returns = returns_from_equity(equity)
    return PerformanceSummary(
        start=_index_date(equity.index[0]) if values.size else None,
        end=_index_date(equity.index[-1]) if values.size else None,
        periods=len(returns),
        starting_equity=float(values[0]) if values.size else None,
        ending_equity=float(values[-1]) if values.size else None,
        risk_free=risk_free,
        total_return=total_return(returns),
        annualized_return=annualized_return(returns),
        annualized_volatility=annualized_volatility(returns),
        sharpe_ratio=sharpe_ratio(returns, risk_free),
        sortino_ratio=sortino_ratio(returns, risk_free),
        max_drawdown=max_drawdown(equity),
        max_drawdown_duration=max_drawdown_duration(equity),
        calmar_ratio=calmar_ratio(equity),
        trade_count=len(trades),
        total_pnl=sum(t.pnl for t in trades),
        win_rate=win_rate(trades),
        profit_factor=profit_factor(trades),
        average_win=average_win(trades),
        average_loss=average_loss(trades),
        average_holding_sessions=average_holding_sessions(trades, sessions),
    )
