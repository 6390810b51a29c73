"""Momentum breakout: threshold, volume confirmation, top-N and time exit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from actors.data_feed.panel import BarPanel
from actors.messages import HeldPosition, Signal, SignalAction
from actors.strategies.base import StrategyContext
from actors.strategies.momentum import Momentum
from actors.strategies.params import MomentumParams

T = 15
DATES = pd.bdate_range("2024-05-01", periods=T)
ASOF = (DATES[-1] + pd.offsets.BDay(1)).date()


def make_ctx(
    momentum: list[float],
    volume_ratio: list[float],
    *,
    positions: dict[str, HeldPosition] | None = None,
) -> StrategyContext:
    n = len(momentum)
    symbols = tuple(f"S{i}" for i in range(n))
    closes = np.full((T, n), 40.0)
    panel = BarPanel(DATES, symbols, closes, closes, closes, closes, np.full((T, n), 1e6))

    def rows(values: list[float]) -> np.ndarray:
        return np.tile(np.asarray(values, dtype=np.float64), (T, 1))

    indicators = {
        "momentum20": rows(momentum),
        "volume_ratio": rows(volume_ratio),
        "atr14": np.full((T, n), 1.0),
    }
    return StrategyContext(ASOF, panel, indicators, positions or {}, 50_000.0)


def buys(signals: list[Signal]) -> list[str]:
    return [s.symbol for s in signals if s.action is SignalAction.BUY]


def test_threshold_is_strict() -> None:
    """Momentum must exceed 8%; exactly 8% does not enter."""
    ctx = make_ctx([0.08, 0.0801], [1.5, 1.5])
    assert buys(Momentum().generate(ctx)) == ["S1"]


def test_volume_confirmation_is_inclusive() -> None:
    """Volume ratio at 1.2 confirms; 1.19 does not."""
    ctx = make_ctx([0.10, 0.10], [1.2, 1.19])
    assert buys(Momentum().generate(ctx)) == ["S0"]


def test_takes_strongest_max_entries() -> None:
    """Only the strongest max_entries by momentum enter, strongest first."""
    ctx = make_ctx([0.09, 0.30, 0.12, 0.25, 0.50, 0.11, 0.20], [2.0] * 7)
    assert buys(Momentum().generate(ctx)) == ["S4", "S1", "S3", "S6", "S2"]
    params = MomentumParams(max_entries=2)
    assert buys(Momentum(params).generate(ctx)) == ["S4", "S1"]


def test_held_symbols_do_not_take_entry_slots() -> None:
    """A held symbol is never bought and does not use one of the top-N slots."""
    pos = HeldPosition("S0", 10, DATES[-2].date(), 40.0)
    ctx = make_ctx([0.50, 0.20, 0.10], [2.0] * 3, positions={"S0": pos})
    assert buys(Momentum(MomentumParams(max_entries=2)).generate(ctx)) == ["S1", "S2"]


def test_exit_after_hold_days() -> None:
    """Held 10 sessions sells all shares; 9 does not."""
    positions = {
        "S0": HeldPosition("S0", 30, DATES[T - 10].date(), 38.0),
        "S1": HeldPosition("S1", 40, DATES[T - 9].date(), 38.0),
    }
    ctx = make_ctx([0.01, 0.01], [1.0, 1.0], positions=positions)
    [signal] = Momentum().generate(ctx)
    assert (signal.symbol, signal.action, signal.shares) == ("S0", SignalAction.SELL, 30)
    assert signal.reasoning == "held 10 sessions >= 10"


def test_exit_when_momentum_is_lost() -> None:
    """A held position whose momentum fell to 0 is sold before its hold time is up."""
    positions = {
        "S0": HeldPosition("S0", 30, DATES[T - 3].date(), 38.0),
        "S1": HeldPosition("S1", 40, DATES[T - 3].date(), 38.0),
    }
    ctx = make_ctx([-0.02, 0.03], [1.0, 1.0], positions=positions)
    [signal] = Momentum().generate(ctx)
    assert (signal.symbol, signal.action, signal.shares) == ("S0", SignalAction.SELL, 30)
    assert signal.reasoning == "momentum lost: 20-day momentum -2.0% <= 0.0%"


def test_confidence_and_reasoning() -> None:
    """Confidence is 0.5 x momentum / threshold, capped at 1; the reason has the numbers."""
    ctx = make_ctx([0.12, 0.40], [1.5, 1.5])
    signals = {s.symbol: s for s in Momentum().generate(ctx)}
    assert signals["S0"].confidence == pytest.approx(0.75)
    assert signals["S1"].confidence == 1.0
    assert signals["S0"].reasoning == "20-day momentum +12.0% > 8.0%, volume 1.50x >= 1.2x average"
    assert signals["S0"].shares == 166  # floor(500 / 3)


def test_nan_skips_symbol() -> None:
    """NaN momentum or volume ratio skips that symbol."""
    nan = float("nan")
    ctx = make_ctx([nan, 0.2, 0.2], [2.0, nan, 2.0])
    assert buys(Momentum().generate(ctx)) == ["S2"]


def test_other_lookback_is_computed_from_closes() -> None:
    """With lookback=5 momentum is close[t] / close[t-5] - 1 from the panel."""
    closes = np.array([[10.0, 10.0]] * 10 + [[12.0, 10.5]])
    dates = pd.bdate_range("2024-05-01", periods=len(closes))
    panel = BarPanel(dates, ("A", "B"), closes, closes, closes, closes, np.ones_like(closes))
    asof = (dates[-1] + pd.offsets.BDay(1)).date()
    indicators = {"volume_ratio": np.full_like(closes, 2.0), "atr14": np.full_like(closes, 0.2)}
    ctx = StrategyContext(asof, panel, indicators, {}, 10_000.0)
    signals = Momentum(MomentumParams(lookback=5, threshold=0.1)).generate(ctx)
    assert [s.symbol for s in signals] == ["A"]
    assert "5-day momentum +20.0%" in signals[0].reasoning
