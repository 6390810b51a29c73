"""The strategy registry."""

from __future__ import annotations

import datetime as dt

import numpy as np

from actors.data_feed.panel import BarPanel
from actors.messages import HeldPosition
from actors.strategies.base import StrategyContext
from actors.strategies.ml_momentum import FEATURES
from actors.strategies.params import MomentumParams, StrategiesParams
from actors.strategies.registry import STRATEGY_CLASSES, build_strategies


def test_builds_all_four_even_disabled() -> None:
    """All four strategies are built, enabled or not, each with its own parameters."""
    params = StrategiesParams(momentum=MomentumParams(enabled=False, hold_days=7))
    built = build_strategies(params)
    assert (
        set(built)
        == set(STRATEGY_CLASSES)
        == {
            "rsi_mean_reversion",
            "ma_crossover",
            "momentum",
            "ml_momentum",
        }
    )
    for name, strategy in built.items():
        assert isinstance(strategy, STRATEGY_CLASSES[name])
        assert strategy.name == name
    assert built["momentum"].params == params.momentum


def test_every_strategy_accepts_an_empty_panel() -> None:
    """No bars at all: every strategy returns no signals and raises nothing."""
    keys = set(FEATURES) | {
        "rsi14",
        "rsi_slope",
        "vwap20",
        "atr14",
        "sma20",
        "sma100",
        "sma20_prev",
        "sma100_prev",
        "adx14",
        "momentum20",
        "volume_ratio",
    }
    indicators = {k: np.empty((0, 0)) for k in keys}
    held = {"X": HeldPosition("X", 1, dt.date(2023, 1, 3), 10.0)}
    ctx = StrategyContext(dt.date(2024, 1, 2), BarPanel.empty(), indicators, held, 10_000.0)
    for strategy in build_strategies(StrategiesParams()).values():
        assert strategy.generate(ctx) == []
