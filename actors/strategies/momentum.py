"""Momentum breakout: buy the strongest recent risers on above-average volume, hold a while.

Entry: ``momentum > threshold`` (close / close ``lookback`` sessions earlier - 1)
and ``volume_ratio >= volume_ratio_min``; the strongest ``max_entries`` by
momentum among the symbols not held (ranked first, then sized: a top symbol
that sizes to 0 shares is skipped, not replaced). Exit: held ``hold_days``, or
momentum lost (``momentum <= exit_momentum``, 0 by default: the stock has given
back its whole ``lookback``-day rise). Both exits are states, checked every
cycle, so a missed cycle delays an exit by a day, never cancels it.

Momentum is the indicator ``momentum{lookback}`` when the snapshot has it (the
default 20 does), else computed here from ``panel.close``.

Confidence of an entry: ``min(1, 0.5 * momentum / max(threshold, 0.01))`` —
0.5 at the threshold, 1 at twice it (the floor keeps a zero or negative
threshold from dividing by zero).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from actors.data_feed.panel import FloatArray
from actors.messages import Signal
from actors.strategies.base import Strategy, StrategyContext, finite
from actors.strategies.params import MomentumParams

MIN_CONFIDENCE_SCALE = 0.01


def momentum(ctx: StrategyContext, lookback: int) -> FloatArray:
    """``close[t] / close[t - lookback] - 1`` per symbol at the last bar."""
    key = f"momentum{lookback}"
    if key in ctx.indicators:
        return ctx.last(key)
    close = ctx.panel.close
    if close.shape[0] < lookback + 1:
        return np.full(close.shape[1], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(close[-1] / close[-1 - lookback] - 1.0, dtype=np.float64)


class Momentum(Strategy):
    """The reference system's ``strategy_momentum``."""

    name: ClassVar[str] = "momentum"
    params: MomentumParams

    def __init__(self, params: MomentumParams | None = None) -> None:
        super().__init__(params if params is not None else MomentumParams())

    def generate(self, ctx: StrategyContext) -> list[Signal]:
        """SELL positions held ``hold_days``, then BUY the strongest volume-confirmed risers."""
        p = self.params
        mom = momentum(ctx, p.lookback)
        vol_ratio = ctx.last("volume_ratio")

        signals: list[Signal] = []
        for position, col in ctx.held_columns():
            reasons: list[str] = []
            days = self.held_days(position, ctx)
            if days >= p.hold_days:
                reasons.append(f"held {days} sessions >= {p.hold_days}")
            if col is not None and np.isfinite(mom[col]) and mom[col] <= p.exit_momentum:
                reasons.append(
                    f"momentum lost: {p.lookback}-day momentum {mom[col]:+.1%} "
                    f"<= {p.exit_momentum:.1%}"
                )
            if reasons:
                signals.append(self.sell(position, col, ctx, "; ".join(reasons)))
        n_exits = len(signals)

        ok = self.tradable(ctx) & finite(mom, vol_ratio)
        mask = ok & (mom > p.threshold) & (vol_ratio >= p.volume_ratio_min)
        candidates = np.flatnonzero(mask)
        candidates = candidates[np.argsort(-mom[candidates], kind="stable")][: p.max_entries]
        scale = max(p.threshold, MIN_CONFIDENCE_SCALE)
        confidence = np.clip(0.5 * mom / scale, 0.0, 1.0)

        def reasoning(col: int) -> str:
            return (
                f"{p.lookback}-day momentum {mom[col]:+.1%} > {p.threshold:.1%}, "
                f"volume {vol_ratio[col]:.2f}x >= {p.volume_ratio_min:g}x average"
            )

        signals.extend(self.entries(ctx, candidates, confidence, reasoning))
        self._diagnostics = {
            "screened": int(ok.sum()),
            "candidates": int(mask.sum()),
            "entries": len(signals) - n_exits,
            "exits": n_exits,
        }
        return signals
