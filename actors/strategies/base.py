"""The ``Strategy`` base (the reference system's ``StrategyBase``) and its input, the context.

A strategy is a pure function of a ``StrategyContext``: bars through the close
of the session before ``asof``, indicators aligned with them, this strategy's
open positions and its capital. ``generate`` screens the whole universe with
array operations on the last row(s) and loops only over the few resulting
signals to build ``Signal`` objects.

Conventions every strategy follows:

- Exits first: every held position whose exit rule fires gets one SELL for all
  its shares (confidence 1.0: a rule fired, nothing is being weighed).
- Entries: never for a symbol already held, never when a needed value is NaN
  (the symbol is skipped), never for 0 shares (sizing is ``atr_position_size``).
- A signal's ``price`` is the last close (orders fill at the next open; the
  order side handles that) and its ``atr`` the last ``atr14``.
- ``held_days`` counts sessions from ``entry_date`` through the last panel
  date, both included: a position bought at the open of session E has been
  held 1 session at the cycle of E+1 (whose panel ends at E).
"""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from actors.data_feed.panel import BarPanel, FloatArray
from actors.messages import HeldPosition, Signal, SignalAction
from actors.strategies.params import StrategyParams
from actors.strategies.sizing import atr_position_size

IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
ReasonFn = Callable[[int], str]

EXIT_CONFIDENCE = 1.0
DEFAULT_STOP_MULTIPLE = 3.0


@dataclass(frozen=True, slots=True)
class StrategyContext:
    """Everything a strategy may look at for the session ``asof``."""

    asof: dt.date
    panel: BarPanel
    indicators: Mapping[str, FloatArray]
    positions: Mapping[str, HeldPosition]
    capital: float
    risk_capital: float | None = None  # the risk base (portfolio equity); None: ``capital``
    stop_atr_multiple: float | None = None  # None: the strategy's own key, else 3.0

    def __post_init__(self) -> None:
        last = self.panel.last_date
        if last is not None and last >= self.asof:
            raise ValueError(
                f"panel ends {last}, not before asof {self.asof}: a strategy must not see asof"
            )

    def indicator(self, key: str) -> FloatArray:
        """The (T, N) indicator ``key``; KeyError or ValueError when missing or misaligned."""
        try:
            values = self.indicators[key]
        except KeyError:
            raise KeyError(f"indicator {key!r} is missing from the snapshot") from None
        if values.shape != self.panel.shape:
            raise ValueError(
                f"indicator {key!r} has shape {values.shape}, panel is {self.panel.shape}"
            )
        return values

    def last(self, key: str) -> FloatArray:
        """The last row (session t) of indicator ``key``: one value per symbol, shape (N,)."""
        values = self.indicator(key)
        if values.shape[0] == 0:
            return np.full(values.shape[1], np.nan)
        return np.asarray(values[-1], dtype=np.float64)

    def last_close(self) -> FloatArray:
        """The close of the last panel session per symbol, shape (N,)."""
        if len(self.panel.dates) == 0:
            return np.full(len(self.panel.symbols), np.nan)
        return np.asarray(self.panel.close[-1], dtype=np.float64)

    def held_columns(self) -> list[tuple[HeldPosition, int | None]]:
        """Each held position (sorted by symbol) with its panel column, None if not in the panel."""
        if not self.positions:
            return []
        index = {s: i for i, s in enumerate(self.panel.symbols)}
        return [(self.positions[s], index.get(s)) for s in sorted(self.positions)]

    def held_mask(self) -> BoolArray:
        """True for the panel columns of symbols this strategy holds."""
        mask = np.zeros(len(self.panel.symbols), dtype=np.bool_)
        cols = [col for _, col in self.held_columns() if col is not None]
        mask[cols] = True
        return mask


class Strategy(ABC):
    """A trading strategy: pure, CPU-bound, deterministic ``generate(ctx) -> signals``."""

    name: ClassVar[str]

    def __init__(self, params: StrategyParams) -> None:
        self.params = params
        self._diagnostics: dict[str, object] = {}

    @abstractmethod
    def generate(self, ctx: StrategyContext) -> list[Signal]:
        """Exits for held positions whose rule fires, then entries; same input, same output."""

    def diagnostics(self) -> Mapping[str, object]:
        """Counts and reasons from the last ``generate`` (for the signal funnel and logs)."""
        return dict(self._diagnostics)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def held_days(position: HeldPosition, ctx: StrategyContext) -> int:
        """Sessions from ``entry_date`` through the last panel date, both included.

        Counted on the panel's dates, so a position entered before the panel's
        first row counts only the rows the panel has (a lower bound).
        """
        dates = ctx.panel.dates
        first = int(dates.searchsorted(pd.Timestamp(position.entry_date), side="left"))
        return len(dates) - first

    def size(
        self,
        price: float,
        atr: float,
        capital: float,
        *,
        risk_capital: float | None = None,
        stop_atr_multiple: float | None = None,
    ) -> int:
        """Whole shares by the ATR rule with this strategy's risk parameters.

        ``capital`` caps the position by cash; ``risk_capital`` (default ``capital``)
        is what ``risk_per_trade`` is a share of; the stop distance is
        ``stop_atr_multiple``, else the strategy's own key, else 3.
        """
        multiple = stop_atr_multiple or self.params.stop_atr_multiple or DEFAULT_STOP_MULTIPLE
        return atr_position_size(
            capital,
            price,
            atr,
            risk_per_trade=self.params.risk_per_trade,
            stop_atr_multiple=multiple,
            risk_capital=risk_capital,
        )

    def buy(
        self,
        symbol: str,
        *,
        confidence: float,
        price: float,
        atr: float,
        shares: int,
        reasoning: str,
    ) -> Signal:
        """An entry signal; ``confidence`` is clipped to [0, 1]."""
        return Signal(
            strategy=self.name,
            symbol=symbol,
            action=SignalAction.BUY,
            confidence=_unit(confidence),
            price=float(price),
            atr=float(atr),
            shares=int(shares),
            reasoning=reasoning,
        )

    def sell(
        self,
        position: HeldPosition,
        col: int | None,
        ctx: StrategyContext,
        reasoning: str,
        *,
        confidence: float = EXIT_CONFIDENCE,
    ) -> Signal:
        """An exit for all held shares, priced at the last finite close (else the entry price).

        ``col`` is the symbol's panel column (None when the panel lacks it); the
        ATR is the last finite ``atr14``, else the ATR at entry.
        """
        price, atr = position.entry_price, position.atr_at_entry
        if col is not None and len(ctx.panel.dates):
            price = _last_finite(ctx.panel.close[:, col], price)
            if "atr14" in ctx.indicators:
                atr = _last_finite(ctx.indicator("atr14")[:, col], atr)
        return Signal(
            strategy=self.name,
            symbol=position.symbol,
            action=SignalAction.SELL,
            confidence=_unit(confidence),
            price=float(price),
            atr=float(atr),
            shares=int(position.shares),
            reasoning=reasoning,
        )

    def entries(
        self,
        ctx: StrategyContext,
        candidates: IntArray,
        confidence: FloatArray,
        reasoning: ReasonFn,
    ) -> list[Signal]:
        """BUY signals for panel columns ``candidates`` (in that order), sized; 0 shares skipped.

        ``confidence`` is per panel column; ``reasoning(col)`` writes the reason.
        Callers pass only columns that are not held and have every needed value
        finite; price and ATR are checked here as well.
        """
        close = ctx.last_close()
        atr = ctx.last("atr14")
        signals: list[Signal] = []
        for col in candidates.tolist():
            price, a = float(close[col]), float(atr[col])
            shares = self.size(
                price,
                a,
                ctx.capital,
                risk_capital=ctx.risk_capital,
                stop_atr_multiple=ctx.stop_atr_multiple,
            )
            if shares <= 0:
                continue
            signals.append(
                self.buy(
                    ctx.panel.symbols[col],
                    confidence=float(confidence[col]),
                    price=price,
                    atr=a,
                    shares=shares,
                    reasoning=reasoning(col),
                )
            )
        return signals

    @staticmethod
    def tradable(ctx: StrategyContext) -> BoolArray:
        """Columns that may be entered: not held, last close and ATR finite and positive."""
        close = ctx.last_close()
        atr = ctx.last("atr14")
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(close) & np.isfinite(atr) & (close > 0) & (atr > 0)
        return ok & ~ctx.held_mask()


def finite(*arrays: FloatArray) -> BoolArray:
    """True where every array is finite."""
    ok = np.ones(arrays[0].shape, dtype=np.bool_)
    for a in arrays:
        ok &= np.isfinite(a)
    return ok


def _unit(x: float) -> float:
    if not math.isfinite(x):
        return 0.0
    return min(1.0, max(0.0, float(x)))


def _last_finite(column: FloatArray, default: float) -> float:
    idx = np.flatnonzero(np.isfinite(column))
    return float(column[idx[-1]]) if idx.size else default
