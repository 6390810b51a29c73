"""Moving-average crossover: ride a new uptrend confirmed by trend strength.

Entry: the fast SMA (20) crosses above the slow SMA (100) on the last bar
(``fast_prev <= slow_prev`` and ``fast > slow``) and ``adx14 > adx_min`` (20).
Exit: the fast SMA is below the slow one (``fast < slow``). The exit is a state,
not an event: a position is sold on the first cycle that sees the trend gone,
even when the cycle that saw the cross itself was missed (the daemon was down,
the symbol's data was bad that day).

The SMAs come from the indicator keys ``sma{n}`` / ``sma{n}_prev`` when the
snapshot has them (the defaults 20/100 do); other lengths are computed here
from ``panel.close`` over the last ``n`` and the ``n`` before the last bar.

Confidence of an entry: ``min(1, adx14 / 50)``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from actors.data_feed.panel import FloatArray
from actors.messages import Signal
from actors.strategies.base import Strategy, StrategyContext, finite
from actors.strategies.params import MaCrossoverParams

ADX_FULL_CONFIDENCE = 50.0


def sma_pair(ctx: StrategyContext, n: int) -> tuple[FloatArray, FloatArray]:
    """The ``n``-session SMA of close at the last bar and at the bar before, per symbol."""
    key, prev_key = f"sma{n}", f"sma{n}_prev"
    if key in ctx.indicators:
        now = ctx.last(key)
        if prev_key in ctx.indicators:
            return now, ctx.last(prev_key)
        full = ctx.indicator(key)
        prev = full[-2] if full.shape[0] >= 2 else np.full(full.shape[1], np.nan)
        return now, prev
    close = ctx.panel.close
    t, width = close.shape
    if t < n + 1:
        nan = np.full(width, np.nan)
        return nan, nan.copy()
    # a NaN bar in a window propagates to NaN, as a rolling mean's would
    return close[-n:].mean(axis=0), close[-n - 1 : -1].mean(axis=0)


class MaCrossover(Strategy):
    """The reference system's ``strategy_ma_crossover``."""

    name: ClassVar[str] = "ma_crossover"
    params: MaCrossoverParams

    def __init__(self, params: MaCrossoverParams | None = None) -> None:
        super().__init__(params if params is not None else MaCrossoverParams())

    def generate(self, ctx: StrategyContext) -> list[Signal]:
        """SELL on a cross down, then BUY on a fresh cross up with ADX above the minimum."""
        p = self.params
        fast, fast_prev = sma_pair(ctx, p.fast)
        slow, slow_prev = sma_pair(ctx, p.slow)
        adx = ctx.last("adx14")

        signals: list[Signal] = []
        for position, col in ctx.held_columns():
            if col is None:
                continue
            f, s, fp, sp = (float(a[col]) for a in (fast, slow, fast_prev, slow_prev))
            if f < s:
                how = "crossed below" if fp >= sp else "is below"
                signals.append(
                    self.sell(
                        position,
                        col,
                        ctx,
                        f"SMA{p.fast} {f:.2f} {how} SMA{p.slow} {s:.2f} "
                        f"(prev {fp:.2f} vs {sp:.2f})",
                    )
                )
        n_exits = len(signals)

        ok = self.tradable(ctx) & finite(fast, slow, fast_prev, slow_prev, adx)
        mask = ok & (fast_prev <= slow_prev) & (fast > slow) & (adx > p.adx_min)
        confidence = np.clip(adx / ADX_FULL_CONFIDENCE, 0.0, 1.0)
        candidates = np.flatnonzero(mask)
        candidates = candidates[np.argsort(-confidence[candidates], kind="stable")]

        def reasoning(col: int) -> str:
            return (
                f"SMA{p.fast} {fast[col]:.2f} crossed above SMA{p.slow} {slow[col]:.2f} "
                f"(prev {fast_prev[col]:.2f} <= {slow_prev[col]:.2f}), "
                f"ADX {adx[col]:.1f} > {p.adx_min:g}"
            )

        signals.extend(self.entries(ctx, candidates, confidence, reasoning))
        self._diagnostics = {
            "screened": int(ok.sum()),
            "candidates": len(candidates),
            "entries": len(signals) - n_exits,
            "exits": n_exits,
        }
        return signals
