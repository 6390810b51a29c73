"""``BarPanel``: daily OHLCV for many symbols as dense (dates x symbols) float arrays.

Everything downstream (validation, indicators, strategies) works on these
arrays column-wise, so one vectorised pass serves the whole universe. Missing
bars are NaN. ``dates`` are exchange sessions as tz-naive midnight timestamps.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
FIELDS = ("open", "high", "low", "close", "volume")
LONG_COLUMNS = ("symbol", "date", *FIELDS)


@dataclass(frozen=True, slots=True, eq=False)
class BarPanel:
    """Bars as five (T, N) arrays over ``dates`` (T) and ``symbols`` (N)."""

    dates: pd.DatetimeIndex
    symbols: tuple[str, ...]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        shape = (len(self.dates), len(self.symbols))
        for name in FIELDS:
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ValueError(f"BarPanel.{name} has shape {arr.shape}, expected {shape}")
        if not self.dates.is_monotonic_increasing or self.dates.has_duplicates:
            raise ValueError("BarPanel.dates must be strictly increasing")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("BarPanel.symbols must be unique")

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.dates), len(self.symbols))

    @classmethod
    def empty(cls) -> BarPanel:
        z = np.empty((0, 0))
        return cls(pd.DatetimeIndex([]), (), z, z.copy(), z.copy(), z.copy(), z.copy())

    @classmethod
    def from_long(cls, frame: pd.DataFrame) -> BarPanel:
        """Build from rows of ``symbol, date, open, high, low, close, volume``."""
        missing = [c for c in LONG_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"bars are missing columns: {', '.join(missing)}")
        if frame.empty:
            return cls.empty()
        df = frame.loc[:, list(LONG_COLUMNS)].copy()
        df["date"] = pd.to_datetime(df["date"]).dt.normalize()
        if df["date"].dt.tz is not None:
            df["date"] = df["date"].dt.tz_localize(None)
        df = df.drop_duplicates(subset=["symbol", "date"], keep="last")
        # One factorisation and a scatter per field (no pivot: 10x faster at 5,000 symbols).
        sym_codes, sym_uniques = pd.factorize(df["symbol"].astype(str).to_numpy(), sort=True)
        date_codes, date_uniques = pd.factorize(df["date"].to_numpy(), sort=True)
        symbols = tuple(str(x) for x in sym_uniques)
        dates = pd.DatetimeIndex(date_uniques)
        shape = (len(dates), len(symbols))
        arrays: dict[str, FloatArray] = {}
        for name in FIELDS:
            wide = np.full(shape, np.nan)
            wide[date_codes, sym_codes] = df[name].to_numpy(dtype=np.float64, na_value=np.nan)
            arrays[name] = wide
        return cls(dates=dates, symbols=symbols, **arrays)

    def to_long(self) -> pd.DataFrame:
        """Rows of ``symbol, date, open, high, low, close, volume`` (rows of all-NaN dropped)."""
        t, n = self.shape
        frame = pd.DataFrame(
            {
                "symbol": np.tile(np.asarray(self.symbols, dtype=object), t),
                "date": np.repeat(self.dates.to_numpy(), n),
                **{name: getattr(self, name).reshape(-1) for name in FIELDS},
            }
        )
        return frame.dropna(subset=["close"]).reset_index(drop=True)

    def until(self, last: dt.date | pd.Timestamp) -> BarPanel:
        """The rows with date <= ``last`` (a view, no copy)."""
        stop = int(self.dates.searchsorted(pd.Timestamp(last), side="right"))
        return self.rows(0, stop)

    def before(self, asof: dt.date | pd.Timestamp) -> BarPanel:
        """The rows strictly before session ``asof`` (what a strategy may see at ``asof``)."""
        stop = int(self.dates.searchsorted(pd.Timestamp(asof), side="left"))
        return self.rows(0, stop)

    def tail(self, n: int) -> BarPanel:
        t = len(self.dates)
        return self.rows(max(0, t - n), t)

    def rows(self, start: int, stop: int) -> BarPanel:
        return BarPanel(
            dates=self.dates[start:stop],
            symbols=self.symbols,
            **{name: getattr(self, name)[start:stop] for name in FIELDS},
        )

    def select(self, symbols: tuple[str, ...] | list[str]) -> BarPanel:
        """Only ``symbols`` (in that order); unknown symbols raise KeyError naming them."""
        index = {s: i for i, s in enumerate(self.symbols)}
        unknown = [s for s in symbols if s not in index]
        if unknown:
            raise KeyError(f"symbols not in panel: {', '.join(unknown)}")
        cols = [index[s] for s in symbols]
        return BarPanel(
            dates=self.dates,
            symbols=tuple(symbols),
            **{name: getattr(self, name)[:, cols] for name in FIELDS},
        )

    def column(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    @property
    def last_date(self) -> dt.date | None:
        return self.dates[-1].date() if len(self.dates) else None
