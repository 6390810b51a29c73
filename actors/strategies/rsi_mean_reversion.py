"""RSI mean reversion: buy an oversold stock that has started to turn, near its VWAP.

Entry (all three): ``rsi14 < rsi_entry`` (35), ``rsi_slope > 0`` (RSI rose on
the last bar: no falling knives) and ``|close / vwap20 - 1| <= vwap_band`` (5%).
Exit (any): ``rsi14 > rsi_exit`` (50), ``close >= vwap20``, or held
``max_hold_days`` (20) sessions.

Confidence of an entry: ``(rsi_entry - rsi14) / rsi_entry`` clipped to [0, 1]
(the deeper the oversold reading, the stronger). Entries are ordered by it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from actors.messages import Signal
from actors.strategies.base import Strategy, StrategyContext, finite
from actors.strategies.params import RsiMeanReversionParams

# The VWAP band is inclusive: "within 5%" admits exactly 5%, which binary
# rounding of close / vwap would otherwise put a hair outside.
BAND_TOLERANCE = 1e-9


class RsiMeanReversion(Strategy):
    """The reference system's ``strategy_rsi_mean_reversion``."""

    name: ClassVar[str] = "rsi_mean_reversion"
    params: RsiMeanReversionParams

    def __init__(self, params: RsiMeanReversionParams | None = None) -> None:
        super().__init__(params if params is not None else RsiMeanReversionParams())

    def generate(self, ctx: StrategyContext) -> list[Signal]:
        """SELL held positions past an exit rule, then BUY oversold-and-turning symbols."""
        p = self.params
        rsi = ctx.last("rsi14")
        slope = ctx.last("rsi_slope")
        vwap = ctx.last("vwap20")
        close = ctx.last_close()
        with np.errstate(divide="ignore", invalid="ignore"):
            deviation = close / vwap - 1.0

        signals: list[Signal] = []
        for position, col in ctx.held_columns():
            reasons: list[str] = []
            if col is not None:
                r, c, v = float(rsi[col]), float(close[col]), float(vwap[col])
                if r > p.rsi_exit:
                    reasons.append(f"RSI {r:.1f} > {p.rsi_exit:g}")
                if c >= v:
                    reasons.append(f"close {c:.2f} >= VWAP {v:.2f}")
            days = self.held_days(position, ctx)
            if days >= p.max_hold_days:
                reasons.append(f"held {days} sessions >= {p.max_hold_days}")
            if reasons:
                signals.append(self.sell(position, col, ctx, "; ".join(reasons)))
        n_exits = len(signals)

        with np.errstate(invalid="ignore"):
            ok = self.tradable(ctx) & finite(rsi, slope, vwap, deviation) & (vwap > 0)
            mask = (
                ok
                & (rsi < p.rsi_entry)
                & (slope > 0)
                & (np.abs(deviation) <= p.vwap_band + BAND_TOLERANCE)
            )
        confidence = np.clip((p.rsi_entry - rsi) / p.rsi_entry, 0.0, 1.0)
        candidates = np.flatnonzero(mask)
        candidates = candidates[np.argsort(-confidence[candidates], kind="stable")]

        def reasoning(col: int) -> str:
            dev = float(deviation[col])
            side = "below" if dev < 0 else "above"
            return (
                f"RSI {rsi[col]:.1f} < {p.rsi_entry:g}, slope {slope[col]:+.1f}, "
                f"{abs(dev):.1%} {side} VWAP {vwap[col]:.2f} (band {p.vwap_band:.1%})"
            )

        signals.extend(self.entries(ctx, candidates, confidence, reasoning))
        self._diagnostics = {
            "screened": int(ok.sum()),
            "candidates": len(candidates),
            "entries": len(signals) - n_exits,
            "exits": n_exits,
        }
        return signals
