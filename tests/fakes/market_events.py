"""Market events injected into a long bar frame: pure functions, each returning a new frame.

The frame is the providers' long form (``symbol,date,open,high,low,close,volume``,
tz-naive midnight dates), as ``tests.fakes.real_bars.real_bars`` returns it.
Nothing here mutates its input. A day or symbol an event needs that the frame
does not have raises ``ValueError`` naming it, so a typo in a scenario fails
instead of injecting nothing.

The volatility index is a ``pd.Series`` of closes indexed by date (what
``BarProvider.volatility_index`` returns); ``vix_series`` builds one and
``stale_vix`` makes it stop updating.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

PRICES = ["open", "high", "low", "close"]


def _ts(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day)


def _symbol_rows(frame: pd.DataFrame, symbol: str) -> pd.Series:
    rows = frame["symbol"] == symbol
    if not rows.any():
        known = ", ".join(sorted(frame["symbol"].unique()))
        raise ValueError(f"no bars for {symbol!r} in the frame (has {known})")
    return rows


def _bar(frame: pd.DataFrame, symbol: str, day: dt.date) -> pd.Series:
    rows = _symbol_rows(frame, symbol) & (frame["date"] == _ts(day))
    if not rows.any():
        raise ValueError(f"{symbol} has no bar on {day}")
    return rows


def drop_bar(frame: pd.DataFrame, symbol: str, day: dt.date) -> pd.DataFrame:
    """``symbol`` has no bar on ``day``: one missing session (a feed gap), the rest intact."""
    rows = _bar(frame, symbol, day)
    return frame.loc[~rows].reset_index(drop=True)


def bad_print(frame: pd.DataFrame, symbol: str, day: dt.date, factor: float) -> pd.DataFrame:
    """One implausible bar: ``symbol``'s o/h/l/c on ``day`` times ``factor``; the next bar is good.

    Models a bad tick in the daily data (e.g. ``factor=10``: a misplaced decimal
    point); volume is left as it was.
    """
    if not factor > 0:
        raise ValueError(f"bad_print factor must be positive, got {factor}")
    rows = _bar(frame, symbol, day)
    out = frame.copy()
    out.loc[rows, PRICES] = out.loc[rows, PRICES] * factor
    return out


def raw_split(frame: pd.DataFrame, symbol: str, day: dt.date, ratio: float) -> pd.DataFrame:
    """An unadjusted split on ``day``: from ``day`` on o/h/l/c / ``ratio``, volume x ``ratio``.

    ``ratio=2`` is a 2:1 forward split (the price halves, the share count
    doubles), ``ratio=0.1`` a 1:10 reverse split. The bars before ``day`` stay as
    they were, so the series is *not* split-adjusted: what a feed that misses
    the corporate action delivers.
    """
    if not ratio > 0:
        raise ValueError(f"raw_split ratio must be positive, got {ratio}")
    _bar(frame, symbol, day)
    rows = (frame["symbol"] == symbol) & (frame["date"] >= _ts(day))
    out = frame.copy()
    out.loc[rows, PRICES] = out.loc[rows, PRICES] / ratio
    out.loc[rows, "volume"] = out.loc[rows, "volume"] * ratio
    return out


def stale_from(frame: pd.DataFrame, symbol: str, day: dt.date) -> pd.DataFrame:
    """``symbol`` stops updating: no bar from ``day`` on (a stale or delisted feed)."""
    _symbol_rows(frame, symbol)
    rows = (frame["symbol"] == symbol) & (frame["date"] >= _ts(day))
    if not rows.any():
        raise ValueError(f"{symbol} has no bar on or after {day}: nothing to make stale")
    return frame.loc[~rows].reset_index(drop=True)


def crash_day(frame: pd.DataFrame, day: dt.date, move: float) -> pd.DataFrame:
    """A market-wide move that persists: ``day``'s close is ``move`` from the previous close.

    Every symbol with a bar on ``day`` and one before it has all its bars from
    ``day`` on scaled by one factor, so that its close on ``day`` is
    ``previous close * (1 + move)`` (``move=-0.03``: every symbol closes 3 %
    down) and later days keep their real returns from the new level. Volume is
    unchanged. Symbols without both bars are left alone.
    """
    if not move > -1:
        raise ValueError(f"crash_day move must be above -100 %, got {move}")
    when = _ts(day)
    out = frame.copy()
    scaled = []
    for symbol, bars in frame.groupby("symbol", sort=True):
        today = bars.loc[bars["date"] == when, "close"]
        before = bars.loc[bars["date"] < when].sort_values("date")["close"]
        if today.empty or before.empty:
            continue
        factor = float(before.iloc[-1]) * (1 + move) / float(today.iloc[0])
        rows = (out["symbol"] == symbol) & (out["date"] >= when)
        out.loc[rows, PRICES] = out.loc[rows, PRICES] * factor
        scaled.append(symbol)
    if not scaled:
        raise ValueError(f"no symbol has a bar on {day} and one before it")
    return out


def vix_series(frame: pd.DataFrame, level_by_date: Mapping[dt.date, float] | float) -> pd.Series:
    """A volatility index over the frame's sessions: step levels held from each given date on.

    ``level_by_date`` maps a date to the level from that date on (until the next
    key); sessions before the first key take the first level. A plain number is
    a constant level. ``{date(2007, 1, 2): 14.0, date(2008, 9, 15): 45.0}``:
    calm, then a panic from the Lehman weekend on. Indexed by every date of the
    frame (tz-naive midnight), named ``VIX``.
    """
    dates = pd.DatetimeIndex(sorted(frame["date"].unique()))
    if isinstance(level_by_date, int | float):
        return pd.Series(float(level_by_date), index=dates, name="VIX", dtype=np.float64)
    if not level_by_date:
        raise ValueError("vix_series needs at least one level")
    keys = sorted(level_by_date)
    starts = pd.DatetimeIndex([_ts(k) for k in keys])
    # For each session the last key on or before it (the first key before all keys).
    at = np.clip(starts.searchsorted(dates, side="right") - 1, 0, None)
    values = np.array([float(level_by_date[keys[i]]) for i in at], dtype=np.float64)
    return pd.Series(values, index=dates, name="VIX")


def stale_vix(series: pd.Series, day: dt.date) -> pd.Series:
    """The index stops updating: no value from ``day`` on (its last value gets old)."""
    kept = series.loc[series.index < _ts(day)]
    if len(kept) == len(series):
        raise ValueError(f"the series has no value on or after {day}: nothing to make stale")
    return kept.copy()
