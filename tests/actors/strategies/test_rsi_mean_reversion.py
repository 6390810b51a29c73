"""RSI mean reversion: entry and exit rules at their boundaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from actors.data_feed.panel import BarPanel
from actors.messages import HeldPosition, Signal, SignalAction
from actors.strategies.base import StrategyContext
from actors.strategies.params import RsiMeanReversionParams
from actors.strategies.rsi_mean_reversion import RsiMeanReversion

T = 30
DATES = pd.bdate_range("2024-01-02", periods=T)
ASOF = (DATES[-1] + pd.offsets.BDay(1)).date()


def make_ctx(
    close: list[float],
    *,
    rsi: list[float],
    slope: list[float],
    vwap: list[float],
    atr: float = 2.0,
    positions: dict[str, HeldPosition] | None = None,
    capital: float = 100_000.0,
) -> StrategyContext:
    n = len(close)
    symbols = tuple(f"S{i}" for i in range(n))
    closes = np.tile(np.asarray(close, dtype=np.float64), (T, 1))
    panel = BarPanel(DATES, symbols, closes, closes, closes, closes, np.full((T, n), 1e6))

    def rows(values: list[float]) -> np.ndarray:
        return np.tile(np.asarray(values, dtype=np.float64), (T, 1))

    indicators = {
        "rsi14": rows(rsi),
        "rsi_slope": rows(slope),
        "vwap20": rows(vwap),
        "atr14": np.full((T, n), atr),
    }
    return StrategyContext(ASOF, panel, indicators, positions or {}, capital)


def held(symbol: str, sessions: int) -> HeldPosition:
    """A position entered so that it has been held ``sessions`` sessions at the last bar."""
    return HeldPosition(symbol, 50, DATES[T - sessions].date(), 90.0, 2.0)


def buys(signals: list[Signal]) -> dict[str, Signal]:
    return {s.symbol: s for s in signals if s.action is SignalAction.BUY}


def sells(signals: list[Signal]) -> dict[str, Signal]:
    return {s.symbol: s for s in signals if s.action is SignalAction.SELL}


def test_entry_when_all_three_hold() -> None:
    """RSI below 35, rising, within 5% of VWAP: a sized BUY at the last close."""
    ctx = make_ctx([96.0], rsi=[31.2], slope=[1.4], vwap=[100.0])
    [signal] = RsiMeanReversion().generate(ctx)
    assert signal.action is SignalAction.BUY
    assert signal.strategy == "rsi_mean_reversion"
    assert signal.price == 96.0
    assert signal.atr == 2.0
    assert signal.shares == 166
    assert signal.confidence == pytest.approx((35 - 31.2) / 35)


def test_rsi_exactly_at_entry_level_is_no_entry() -> None:
    """RSI must be strictly below 35."""
    ctx = make_ctx([96.0, 96.0], rsi=[35.0, 34.99], slope=[1.0, 1.0], vwap=[100.0, 100.0])
    assert set(buys(RsiMeanReversion().generate(ctx))) == {"S1"}


def test_flat_rsi_slope_is_no_entry() -> None:
    """A slope of exactly 0 is not a turn."""
    ctx = make_ctx([96.0, 96.0], rsi=[30.0, 30.0], slope=[0.0, 0.01], vwap=[100.0, 100.0])
    assert set(buys(RsiMeanReversion().generate(ctx))) == {"S1"}


def test_vwap_band_is_inclusive_at_five_percent() -> None:
    """5.0% from VWAP (either side) enters; 5.1% does not."""
    ctx = make_ctx(
        [95.0, 105.0, 94.9, 105.1],
        rsi=[30.0] * 4,
        slope=[1.0] * 4,
        vwap=[100.0] * 4,
    )
    assert set(buys(RsiMeanReversion().generate(ctx))) == {"S0", "S1"}


def test_nan_indicator_skips_symbol() -> None:
    """A NaN in RSI, slope, VWAP or ATR skips that symbol only."""
    nan = float("nan")
    ctx = make_ctx(
        [96.0, 96.0, 96.0, 96.0],
        rsi=[nan, 30.0, 30.0, 30.0],
        slope=[1.0, nan, 1.0, 1.0],
        vwap=[100.0, 100.0, nan, 100.0],
    )
    assert set(buys(RsiMeanReversion().generate(ctx))) == {"S3"}
    ctx_atr = make_ctx([96.0], rsi=[30.0], slope=[1.0], vwap=[100.0], atr=nan)
    assert RsiMeanReversion().generate(ctx_atr) == []


def test_no_buy_for_held_symbol() -> None:
    """A symbol already held gets no BUY even when the entry rule holds."""
    ctx = make_ctx(
        [96.0, 96.0],
        rsi=[30.0, 30.0],
        slope=[1.0, 1.0],
        vwap=[100.0, 100.0],
        positions={"S0": held("S0", 3)},
    )
    signals = RsiMeanReversion().generate(ctx)
    assert set(buys(signals)) == {"S1"}
    assert sells(signals) == {}


def test_zero_shares_is_no_signal() -> None:
    """When the capital cannot buy one share, no signal is emitted."""
    ctx = make_ctx([96.0], rsi=[30.0], slope=[1.0], vwap=[100.0], capital=50.0)
    assert RsiMeanReversion().generate(ctx) == []


def test_reasoning_carries_the_numbers() -> None:
    """The entry reason states RSI, threshold, slope, distance and VWAP."""
    ctx = make_ctx([183.46], rsi=[31.2], slope=[1.4], vwap=[187.40])
    [signal] = RsiMeanReversion().generate(ctx)
    assert signal.reasoning.startswith("RSI 31.2 < 35, slope +1.4, 2.1% below VWAP 187.40")


def test_exit_on_rsi_above_exit_level() -> None:
    """RSI above 50 sells all held shares; exactly 50 does not."""
    ctx = make_ctx(
        [96.0, 96.0],
        rsi=[50.1, 50.0],
        slope=[1.0, 1.0],
        vwap=[100.0, 100.0],
        positions={"S0": held("S0", 3), "S1": held("S1", 3)},
    )
    out = sells(RsiMeanReversion().generate(ctx))
    assert set(out) == {"S0"}
    assert out["S0"].shares == 50
    assert out["S0"].confidence == 1.0
    assert out["S0"].price == 96.0
    assert "RSI 50.1 > 50" in out["S0"].reasoning


def test_exit_when_close_reaches_vwap() -> None:
    """Close at or above VWAP exits; a cent below does not."""
    ctx = make_ctx(
        [100.0, 99.99],
        rsi=[40.0, 40.0],
        slope=[1.0, 1.0],
        vwap=[100.0, 100.0],
        positions={"S0": held("S0", 3), "S1": held("S1", 3)},
    )
    out = sells(RsiMeanReversion().generate(ctx))
    assert set(out) == {"S0"}
    assert "close 100.00 >= VWAP 100.00" in out["S0"].reasoning


def test_exit_after_exactly_max_hold_days() -> None:
    """Held 20 sessions exits; 19 does not."""
    ctx = make_ctx(
        [96.0, 96.0],
        rsi=[40.0, 40.0],
        slope=[1.0, 1.0],
        vwap=[100.0, 100.0],
        positions={"S0": held("S0", 20), "S1": held("S1", 19)},
    )
    out = sells(RsiMeanReversion().generate(ctx))
    assert set(out) == {"S0"}
    assert "held 20 sessions >= 20" in out["S0"].reasoning


def test_held_days_counts_entry_through_last_bar() -> None:
    """An entry at the last panel date has been held 1 session; at the first, T sessions."""
    ctx = make_ctx([96.0], rsi=[40.0], slope=[1.0], vwap=[100.0])
    last = HeldPosition("S0", 1, DATES[-1].date(), 1.0)
    first = HeldPosition("S0", 1, DATES[0].date(), 1.0)
    assert RsiMeanReversion.held_days(last, ctx) == 1
    assert RsiMeanReversion.held_days(first, ctx) == T


def test_time_exit_for_symbol_missing_from_panel() -> None:
    """A held symbol the panel lacks still exits on time, priced at its entry."""
    ctx = make_ctx(
        [96.0],
        rsi=[40.0],
        slope=[1.0],
        vwap=[100.0],
        positions={"GONE": held("GONE", 25)},
    )
    [signal] = RsiMeanReversion().generate(ctx)
    assert (signal.symbol, signal.action, signal.price) == ("GONE", SignalAction.SELL, 90.0)


def test_params_change_thresholds() -> None:
    """The entry level and band come from the parameters."""
    params = RsiMeanReversionParams(rsi_entry=30.0, vwap_band=0.02)
    ctx = make_ctx([97.0, 99.0], rsi=[31.0, 29.0], slope=[1.0, 1.0], vwap=[100.0, 100.0])
    assert set(buys(RsiMeanReversion(params).generate(ctx))) == {"S1"}


def test_context_rejects_panel_reaching_asof() -> None:
    """A panel whose last row is the asof session is refused (look-ahead guard)."""
    ctx = make_ctx([96.0], rsi=[30.0], slope=[1.0], vwap=[100.0])
    with pytest.raises(ValueError, match="asof"):
        StrategyContext(DATES[-1].date(), ctx.panel, ctx.indicators, {}, 1e5)


def test_generate_is_deterministic() -> None:
    """Same context, same signals, entries ordered by confidence."""
    ctx = make_ctx([96.0, 96.0, 96.0], rsi=[33.0, 20.0, 30.0], slope=[1.0] * 3, vwap=[100.0] * 3)
    first = RsiMeanReversion().generate(ctx)
    assert first == RsiMeanReversion().generate(ctx)
    assert [s.symbol for s in first] == ["S1", "S2", "S0"]
