"""The four strategies by name, and building them from the configured parameters."""

from __future__ import annotations

from actors.strategies.base import Strategy
from actors.strategies.ma_crossover import MaCrossover
from actors.strategies.ml_momentum import MlMomentum
from actors.strategies.momentum import Momentum
from actors.strategies.params import StrategiesParams
from actors.strategies.rsi_mean_reversion import RsiMeanReversion

STRATEGY_CLASSES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RsiMeanReversion, MaCrossover, Momentum, MlMomentum)
}


def build_strategies(params: StrategiesParams) -> dict[str, Strategy]:
    """All four strategies, enabled or not (whether one runs is decided per cycle)."""
    return {
        RsiMeanReversion.name: RsiMeanReversion(params.rsi_mean_reversion),
        MaCrossover.name: MaCrossover(params.ma_crossover),
        Momentum.name: Momentum(params.momentum),
        MlMomentum.name: MlMomentum(params.ml_momentum),
    }
