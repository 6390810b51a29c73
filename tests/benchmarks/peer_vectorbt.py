"""The peer rule (``peer_rule``) in vectorbt: whole-history arrays and ``Portfolio.from_signals``.

The bars become (dates x symbols) frames; SMA20/SMA100 are ``vbt.MA``, ADX(14) and
ATR(14) TA-Lib's (through ``vbt.talib``, as tradingd's match TA-Lib's). A signal at
a close is shifted one bar and filled at that bar's ``open`` (``price=open``), with
``slippage`` and a per-order fee of the commission times the order's shares. The
protective stop is ``sl_stop`` from the fill price (``stop_entry_price="fillprice"``)
to the rule's stop on the cent; vectorbt fills it at the open on a gap and at the
stop when the low reaches it, with slippage (``stop_exit_price="stopmarket"``).

One difference vectorbt cannot express: ``from_signals`` watches a stop from the bar
after the entry, while tradingd's (and backtrader's) stop rests from the entry's own
session. An entry whose own session's low already reaches its stop is therefore a
round trip within that session: it is left out of the simulation (after it the
symbol is flat, as it would be) and its two fills are added to vectorbt's, counted
in ``same_session_stops``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tests.benchmarks import peer_rule
from tests.benchmarks.peer_rule import Fill

#: Lifts the stop level a hair above the cent so that a low exactly on it triggers
#: (``low <= stop``) despite the rounding of ``fill x (1 - sl_stop)``.
_ON_THE_CENT = 1e-12

Floats = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _panels(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    wide = frame.pivot(index="date", columns="symbol")
    return {c: pd.DataFrame(wide[c]).sort_index(axis=1) for c in ("open", "high", "low", "close")}


def _vector(fn: Any, *arrays: Floats) -> Floats:
    out: Floats = np.vectorize(fn, otypes=[np.float64])(*arrays)
    return out


@dataclass(frozen=True, slots=True)
class Orders:
    """The rule as (bars x symbols) arrays, aligned on the bar an order fills on."""

    entries: BoolArray
    exits: BoolArray
    size: Floats  # shares of each entry (0 elsewhere)
    sl_stop: Floats  # each entry's stop as a share below its fill price (NaN elsewhere)
    same_session: BoolArray  # entries whose own session reaches their stop


def rule_orders(bars: Mapping[str, Floats], live: BoolArray) -> Orders:
    """Entries, exits, sizes and stops of the rule from ``bars`` (open, low, close and the
    fast, slow, adx, atr indicators, each (T, N)); signals only on ``live`` rows (T, 1)."""
    fast, slow, adx, atr, c = (bars[k] for k in ("fast", "slow", "adx", "atr", "close"))
    with np.errstate(invalid="ignore"):
        cross_up = (np.roll(fast, 1, 0) <= np.roll(slow, 1, 0)) & (fast > slow)
        cross_up[0] = False
        want = live & cross_up & (adx > peer_rule.ADX_MIN) & np.isfinite(atr) & (atr > 0)
        want &= np.isfinite(c) & (c > 0)
        below = live & (fast < slow)
    # a signal at a close fills on the next bar, sized and stopped on the signal's bar
    entries, exits = np.zeros_like(want), np.zeros_like(below)
    entries[1:], exits[1:] = want[:-1], below[:-1]
    sig_close, sig_atr = np.roll(c, 1, 0), np.roll(atr, 1, 0)
    size = np.zeros_like(c)
    size[entries] = _vector(peer_rule.entry_size, sig_close[entries], sig_atr[entries])
    entries &= size > 0
    fill = bars["open"] * (1.0 + peer_rule.SLIPPAGE)
    stop = np.full_like(c, np.nan)
    stop[entries] = _vector(peer_rule.protective_stop, fill[entries], sig_atr[entries])
    with np.errstate(invalid="ignore"):
        same_session = entries & (bars["low"] <= stop)
    entries &= ~same_session
    sl_stop = np.where(entries, 1.0 - stop * (1.0 + _ON_THE_CENT) / fill, np.nan)
    return Orders(entries, exits, np.where(entries | same_session, size, 0.0), sl_stop,
                  same_session)  # fmt: skip


def run_vectorbt(frame: pd.DataFrame, first_signal: dt.date) -> dict[str, Any]:
    """Run the rule over ``frame``; signals from the close of ``first_signal`` on."""
    import vectorbt as vbt  # no stubs (see pyproject); bench only

    t0 = time.perf_counter()
    p = _panels(frame)
    close, open_, high, low = p["close"], p["open"], p["high"], p["low"]
    bars = {
        "open": open_.to_numpy(),
        "low": low.to_numpy(),
        "close": close.to_numpy(),
        "fast": vbt.MA.run(close, peer_rule.FAST).ma.to_numpy(),
        "slow": vbt.MA.run(close, peer_rule.SLOW).ma.to_numpy(),
        "adx": vbt.talib("ADX").run(high, low, close, timeperiod=14).real.to_numpy(),
        "atr": vbt.talib("ATR").run(high, low, close, timeperiod=14).real.to_numpy(),
    }
    indicators_s = time.perf_counter() - t0
    orders = rule_orders(bars, (close.index >= pd.Timestamp(first_signal))[:, None])
    held = pd.DataFrame(np.where(orders.entries, orders.size, np.nan)).ffill().to_numpy()
    pf = vbt.Portfolio.from_signals(
        close,
        entries=orders.entries,
        exits=orders.exits,
        size=orders.size,
        size_type="amount",
        direction="longonly",
        price=open_,
        open=open_,
        high=high,
        low=low,
        sl_stop=orders.sl_stop,
        stop_entry_price="fillprice",
        stop_exit_price="stopmarket",
        slippage=peer_rule.SLIPPAGE,
        fixed_fees=np.nan_to_num(held * peer_rule.COMMISSION),  # per share of the position
        init_cash=peer_rule.INITIAL_CASH,
        cash_sharing=True,
        group_by=True,
        freq="1D",
    )
    records = pf.orders.values
    wall = time.perf_counter() - t0
    symbols, dates = list(close.columns), pd.DatetimeIndex(close.index).date
    fills = [
        Fill(str(symbols[r["col"]]), "buy" if r["side"] == 0 else "sell", dates[r["idx"]],
             round(float(r["size"])))
        for r in records
    ]  # fmt: skip
    for i, j in zip(*np.nonzero(orders.same_session), strict=True):
        qty = int(orders.size[i, j])
        fills += [Fill(str(symbols[j]), side, dates[i], qty) for side in ("buy", "sell")]
    return {
        "wall_s": wall,
        "indicators_s": indicators_s,
        "fills": len(fills),
        "same_session_stops": int(orders.same_session.sum()),
        "fill_list": fills,
    }
