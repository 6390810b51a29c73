"""MA crossover: cross-up entries with ADX confirmation, cross-down exits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from actors.data_feed.panel import BarPanel
from actors.messages import HeldPosition, Signal, SignalAction
from actors.strategies.base import StrategyContext
from actors.strategies.ma_crossover import MaCrossover, sma_pair
from actors.strategies.params import MaCrossoverParams

T = 5
DATES = pd.bdate_range("2024-03-01", periods=T)
ASOF = (DATES[-1] + pd.offsets.BDay(1)).date()


def make_ctx(
    *,
    fast: list[float],
    slow: list[float],
    fast_prev: list[float],
    slow_prev: list[float],
    adx: list[float],
    close: float = 50.0,
    positions: dict[str, HeldPosition] | None = None,
) -> StrategyContext:
    n = len(fast)
    symbols = tuple(f"S{i}" for i in range(n))
    closes = np.full((T, n), close)
    panel = BarPanel(DATES, symbols, closes, closes, closes, closes, np.full((T, n), 1e6))

    def rows(values: list[float]) -> np.ndarray:
        return np.tile(np.asarray(values, dtype=np.float64), (T, 1))

    indicators = {
        "sma20": rows(fast),
        "sma100": rows(slow),
        "sma20_prev": rows(fast_prev),
        "sma100_prev": rows(slow_prev),
        "adx14": rows(adx),
        "atr14": np.full((T, n), 1.5),
    }
    return StrategyContext(ASOF, panel, indicators, positions or {}, 100_000.0)


def by_action(signals: list[Signal], action: SignalAction) -> dict[str, Signal]:
    return {s.symbol: s for s in signals if s.action is action}


def test_cross_up_with_adx_21_enters() -> None:
    """SMA20 crossing above SMA100 with ADX 21 is a BUY with confidence ADX/50."""
    ctx = make_ctx(fast=[101.0], slow=[100.0], fast_prev=[99.0], slow_prev=[100.0], adx=[21.0])
    [signal] = MaCrossover().generate(ctx)
    assert signal.action is SignalAction.BUY
    assert signal.confidence == pytest.approx(21 / 50)
    assert signal.shares == 222  # floor(1000 / (3 * 1.5))
    assert signal.reasoning == (
        "SMA20 101.00 crossed above SMA100 100.00 (prev 99.00 <= 100.00), ADX 21.0 > 20"
    )


def test_cross_up_with_adx_20_is_no_entry() -> None:
    """ADX must be strictly above 20."""
    ctx = make_ctx(fast=[101.0], slow=[100.0], fast_prev=[99.0], slow_prev=[100.0], adx=[20.0])
    assert MaCrossover().generate(ctx) == []


def test_touch_then_cross_counts_as_cross() -> None:
    """Previous fast equal to previous slow, then above, is a cross up."""
    ctx = make_ctx(fast=[101.0], slow=[100.0], fast_prev=[100.0], slow_prev=[100.0], adx=[30.0])
    assert len(MaCrossover().generate(ctx)) == 1


def test_already_above_is_no_entry() -> None:
    """No cross on the last bar (fast already above slow) is no entry."""
    ctx = make_ctx(fast=[102.0], slow=[100.0], fast_prev=[101.0], slow_prev=[100.0], adx=[40.0])
    assert MaCrossover().generate(ctx) == []


def test_fast_below_slow_exits_held_cross_seen_or_not() -> None:
    """SMA20 below SMA100 sells all held shares, whether the cross was seen today or missed."""
    pos = HeldPosition("S0", 70, DATES[1].date(), 48.0, 1.5)
    ctx = make_ctx(
        fast=[99.0, 99.0],
        slow=[100.0, 100.0],
        fast_prev=[101.0, 99.5],
        slow_prev=[100.0, 100.0],
        adx=[30.0, 30.0],
        positions={"S0": pos, "S1": HeldPosition("S1", 5, DATES[1].date(), 48.0)},
    )
    signals = MaCrossover().generate(ctx)
    out = by_action(signals, SignalAction.SELL)
    assert set(out) == {"S0", "S1"}  # S1 was already below (a missed cross): it exits too
    assert out["S0"].shares == 70
    assert "SMA20 99.00 crossed below SMA100 100.00" in out["S0"].reasoning
    assert "SMA20 99.00 is below SMA100 100.00" in out["S1"].reasoning
    assert by_action(signals, SignalAction.BUY) == {}


def test_no_buy_for_held_symbol() -> None:
    """A held symbol crossing up gets no BUY."""
    ctx = make_ctx(
        fast=[101.0],
        slow=[100.0],
        fast_prev=[99.0],
        slow_prev=[100.0],
        adx=[30.0],
        positions={"S0": HeldPosition("S0", 5, DATES[1].date(), 48.0)},
    )
    assert MaCrossover().generate(ctx) == []


def test_nan_skips_symbol() -> None:
    """A NaN ADX or SMA skips that symbol only."""
    nan = float("nan")
    ctx = make_ctx(
        fast=[101.0, 101.0, 101.0],
        slow=[100.0, nan, 100.0],
        fast_prev=[99.0, 99.0, 99.0],
        slow_prev=[100.0, 100.0, 100.0],
        adx=[nan, 30.0, 30.0],
    )
    assert set(by_action(MaCrossover().generate(ctx), SignalAction.BUY)) == {"S2"}


def test_other_lengths_are_computed_from_closes() -> None:
    """With fast=3/slow=5 the SMAs come from panel.close and a cross up on the last bar enters."""
    closes = np.array([[10.0], [10.0], [10.0], [10.0], [10.0], [9.0], [13.0]])
    dates = pd.bdate_range("2024-03-01", periods=len(closes))
    panel = BarPanel(dates, ("X",), closes, closes, closes, closes, np.ones_like(closes))
    asof = (dates[-1] + pd.offsets.BDay(1)).date()
    indicators = {"adx14": np.full_like(closes, 25.0), "atr14": np.full_like(closes, 0.5)}
    ctx = StrategyContext(asof, panel, indicators, {}, 10_000.0)
    fast, fast_prev = sma_pair(ctx, 3)
    slow, slow_prev = sma_pair(ctx, 5)
    assert fast[0] == pytest.approx(32 / 3)
    assert fast_prev[0] == pytest.approx(29 / 3)
    assert slow[0] == pytest.approx(52 / 5)
    assert slow_prev[0] == pytest.approx(49 / 5)
    [signal] = MaCrossover(MaCrossoverParams(fast=3, slow=5)).generate(ctx)
    assert (signal.symbol, signal.action, signal.price) == ("X", SignalAction.BUY, 13.0)


def test_too_short_history_gives_nothing() -> None:
    """Fewer bars than the slow SMA needs: no SMA, no signal, no warning."""
    closes = np.full((4, 1), 10.0)
    dates = pd.bdate_range("2024-03-01", periods=4)
    panel = BarPanel(dates, ("X",), closes, closes, closes, closes, np.ones_like(closes))
    asof = (dates[-1] + pd.offsets.BDay(1)).date()
    indicators = {"adx14": np.full_like(closes, 25.0), "atr14": np.full_like(closes, 0.5)}
    ctx = StrategyContext(asof, panel, indicators, {}, 10_000.0)
    assert MaCrossover(MaCrossoverParams(fast=3, slow=5)).generate(ctx) == []
