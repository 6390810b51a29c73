"""The rule every engine of the peer benchmark runs, and how their fills are compared.

The rule is tradingd's ``ma_crossover`` with its defaults, on daily bars:

- signal at a session's close, order filled at the next session's open;
- entry: SMA20 crosses above SMA100 (``fast_prev <= slow_prev`` and ``fast > slow``)
  with ADX(14) > 20, in a symbol not held;
- exit: SMA20 below SMA100 (on a position entered at a cross up, the first such
  close is the cross down);
- size: ``atr_position_size`` (tradingd's own function), risking ``RISK_BUDGET``
  dollars at a ``STOP_ATR`` x ATR(14) stop;
- a protective stop sell resting from the entry's session on, at the fill price less
  ``STOP_ATR`` x the signal's ATR, on the cent: filled at the open when the open is
  at or below it, else at the stop when the session's low reaches it;
- costs: ``SLIPPAGE_BPS`` against the trader on every fill, ``COMMISSION_PER_SHARE``.

``NON_BINDING`` is the settings that make tradingd's risk layer let every entry
of the rule through at its own size: no heat, cash, correlation, regime, limit,
loss, drawdown or kill-switch gate refuses or resizes one, and the data
validation judges no bar bad (the peers trade every bar as it is).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from actors.brokers.costs import COMMISSION_PER_SHARE, SLIPPAGE_BPS
from actors.market.ticks import stop_tick
from actors.strategies.sizing import atr_position_size

FAST: Final = 20
SLOW: Final = 100
ADX_MIN: Final = 20.0
STOP_ATR: Final = 3.0
SLIPPAGE: Final = SLIPPAGE_BPS / 10_000.0
COMMISSION: Final = COMMISSION_PER_SHARE

#: Scaling a strategy's capital up and its risk share down by the same power of two
#: leaves ``capital x risk_per_trade`` bit for bit the same ($250, as 1 % of $25,000)
#: while the capital no longer caps a position nor the strategy's cash ledger.
_SCALE: Final = 2.0**20
CAPITAL: Final = 25_000.0 * _SCALE
RISK_PER_TRADE: Final = 0.01 / _SCALE
RISK_BUDGET: Final = CAPITAL * RISK_PER_TRADE
INITIAL_CASH: Final = 1e11  # the account: never short of cash, heat stays near 0
_MANY: Final = 10**9

NON_BINDING: Final[Mapping[str, Any]] = {
    "strategies.ma_crossover.capital": CAPITAL,
    "strategies.ma_crossover.risk_per_trade": RISK_PER_TRADE,
    "broker.initial_cash": INITIAL_CASH,
    "risk.sizing_base": "strategy",
    "risk.stop_atr_multiple": STOP_ATR,
    "risk.daily_loss_limit": 1.0,
    "risk.max_daily_drawdown": 1.0,
    "risk.max_drawdown": 1.0,
    "risk.reconcile_tolerance": 1.0,
    "risk.max_consecutive_failures": _MANY,
    "risk.max_rejection_rate": 1.0,
    "risk.min_rejections": _MANY,
    # every day the low-volatility regime, at full size and a 100 % heat limit
    "risk.regime.low_vix": 1e7,
    "risk.regime.high_vix": 1e8,
    "risk.regime.crisis_vix": 1e9,
    **{f"risk.regime.heat_{r}": 1.0 for r in ("low", "normal", "high", "crisis")},
    **{f"risk.regime.size_{r}": 1.0 for r in ("low", "normal", "high", "crisis")},
    # a correlation above 1 cannot happen; below it the multiplier floor is 1
    "risk.correlation.full_size_below": 0.999999,
    "risk.correlation.reject_above": 1.0,
    "risk.correlation.min_multiplier": 1.0,
    "limits.max_order_notional": 1e15,
    "limits.max_order_qty": _MANY * 1000,
    "limits.max_position_notional": 1e15,
    "limits.price_collar_pct": 1.0,
    "limits.max_orders_per_cycle": _MANY,
    "limits.max_orders_per_day": _MANY,
    # the bars are the peers' bars: none is judged bad, repaired or held for a split
    "data.validation.max_failed_share": 1.0,
    "data.validation.min_failed_symbols": _MANY,
    "data.validation.max_one_day_move": 1e9,
    "data.validation.split_tolerance": 1e-12,
    "data.validation.max_zero_volume_run": _MANY,
    "data.validation.max_missing_sessions": _MANY,
}


def settings_environ(overrides: Mapping[str, Any]) -> dict[str, str]:
    """``{"a.b": v}`` as tradingd's ``TRADINGD_A__B`` variables (values as JSON)."""
    return {
        "TRADINGD_" + key.upper().replace(".", "__"): json.dumps(value)
        for key, value in overrides.items()
    }


def entry_size(price: float, atr: float) -> int:
    """Shares of an entry at ``price`` with ``atr``: tradingd's sizing with the rule's terms."""
    return atr_position_size(
        CAPITAL, price, atr, risk_per_trade=RISK_PER_TRADE, stop_atr_multiple=STOP_ATR
    )


def buy_price(open_price: float) -> float:
    """What a market buy at ``open_price`` fills at after slippage."""
    return open_price * (1.0 + SLIPPAGE)


def protective_stop(fill_price: float, atr: float) -> float:
    """The resting stop of a position bought at ``fill_price`` (``ReferenceFillTerms``)."""
    return stop_tick(max(0.01, fill_price - STOP_ATR * atr))


@dataclass(frozen=True, slots=True, order=True)
class Fill:
    """One fill as the engines are compared on: which, which way, when, how many."""

    symbol: str
    side: str  # "buy" or "sell"
    date: dt.date
    qty: int

    def as_list(self) -> list[str | int]:
        return [self.symbol, self.side, self.date.isoformat(), self.qty]


@dataclass(frozen=True, slots=True)
class Agreement:
    """Fills both engines have (``agree``, as a multiset) out of the larger count."""

    agree: int
    total: int
    only_ours: list[Fill]
    only_theirs: list[Fill]

    @property
    def percent(self) -> float:
        return 100.0 * self.agree / self.total if self.total else 100.0

    def summary(self, sample: int = 10) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "total": self.total,
            "percent": round(self.percent, 3),
            "only_tradingd": len(self.only_ours),
            "only_peer": len(self.only_theirs),
            "sample_only_tradingd": [f.as_list() for f in self.only_ours[:sample]],
            "sample_only_peer": [f.as_list() for f in self.only_theirs[:sample]],
        }


def compare_fills(ours: Iterable[Fill], theirs: Iterable[Fill]) -> Agreement:
    """How many of two engines' fills are identical (symbol, side, date, qty)."""
    a, b = Counter(ours), Counter(theirs)
    common = a & b
    agree = sum(common.values())
    return Agreement(
        agree=agree,
        total=max(a.total(), b.total()),
        only_ours=sorted((a - common).elements()),
        only_theirs=sorted((b - common).elements()),
    )


def sma_ties(frame: pd.DataFrame, since: dt.date) -> dict[str, list[dt.date]]:
    """Sessions from ``since`` on where SMA``FAST`` equals SMA``SLOW`` exactly, per symbol.

    Closes in whole cents make such ties possible, and then which side of the tie an
    engine sees is its rounding's: a running sum (tradingd's prefix sums, TA-Lib's)
    carries ~1e-13 of it, ``math.fsum`` (backtrader) none. Exact in integer cents
    (``SLOW x sum_fast == FAST x sum_slow``); columns not in whole cents are skipped.
    """
    wide = frame.pivot(index="date", columns="symbol")["close"].sort_index(axis=1)
    close: npt.NDArray[np.float64] = np.asarray(wide.to_numpy(), dtype=np.float64)
    cents = np.rint(close * 100.0)
    whole = np.all(np.isfinite(close) & (np.abs(cents - close * 100.0) < 1e-6), axis=0)
    sums = np.zeros((close.shape[0] + 1, close.shape[1]), dtype=np.int64)
    np.cumsum(np.where(np.isfinite(cents), cents, 0).astype(np.int64), axis=0, out=sums[1:])
    t = np.arange(SLOW, close.shape[0] + 1)
    fast, slow = sums[t] - sums[t - FAST], sums[t] - sums[t - SLOW]
    tie = np.zeros(close.shape, dtype=np.bool_)
    tie[SLOW - 1 :] = (SLOW * fast == FAST * slow) & whole
    tie &= (wide.index >= pd.Timestamp(since))[:, None]
    dates = pd.DatetimeIndex(wide.index).date
    return {
        str(wide.columns[j]): [dates[i] for i in np.flatnonzero(tie[:, j])]
        for j in np.flatnonzero(tie.any(axis=0))
    }


def explained_by_ties(agreement: Agreement, ties: Mapping[str, list[dt.date]]) -> int:
    """Differing fills (either side) in a symbol with an SMA tie on or before the fill."""
    return sum(
        1
        for f in (*agreement.only_ours, *agreement.only_theirs)
        if any(day <= f.date for day in ties.get(f.symbol, ()))
    )
