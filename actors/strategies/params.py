"""Typed parameters of the four strategies; composed into ``actors.system.config.Settings``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StrategyParams(BaseModel):
    """What every strategy has: a switch, its capital and the sizing rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    capital: float = Field(default=25_000.0, gt=0, description="capital allocated, USD")
    risk_per_trade: float = Field(
        default=0.01, gt=0, le=0.1, description="share of capital risked per position"
    )
    stop_atr_multiple: float | None = Field(
        default=None,
        gt=0,
        le=20,
        description="stop distance in ATRs; unset: risk.stop_atr_multiple",
    )
    breakout: bool = Field(
        default=False, description="a breakout strategy: disabled in high-volatility regimes"
    )


class RsiMeanReversionParams(StrategyParams):
    rsi_entry: float = Field(default=35.0, gt=0, lt=100)
    rsi_exit: float = Field(default=50.0, gt=0, lt=100)
    vwap_band: float = Field(default=0.05, gt=0, description="entry within this of VWAP")
    max_hold_days: int = Field(default=20, ge=1)


class MaCrossoverParams(StrategyParams):
    fast: int = Field(default=20, ge=2)
    slow: int = Field(default=100, ge=3)
    adx_min: float = Field(default=20.0, ge=0)


class MomentumParams(StrategyParams):
    breakout: bool = True
    lookback: int = Field(default=20, ge=2)
    threshold: float = Field(default=0.08, description="entry when 20-day momentum exceeds this")
    volume_ratio_min: float = Field(default=1.2, gt=0, description="volume / 20-day average volume")
    hold_days: int = Field(default=10, ge=1)
    exit_momentum: float = Field(
        default=0.0, description="exit a held position once its momentum falls to this"
    )
    max_entries: int = Field(default=5, ge=1, description="strongest N per cycle")


class MlMomentumParams(StrategyParams):
    probability_entry: float = Field(default=0.6, gt=0.5, lt=1)
    horizon_days: int = Field(default=5, ge=1, description="label: P(return over N days > 0)")
    hold_days: int = Field(default=5, ge=1)
    train_window_days: int = Field(default=250, ge=30)
    retrain_every_days: int = Field(default=20, ge=1)
    min_train_rows: int = Field(default=500, ge=50)
    regularization_c: float = Field(default=1.0, gt=0)
    max_entries: int = Field(default=5, ge=1)


class StrategiesParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rsi_mean_reversion: RsiMeanReversionParams = RsiMeanReversionParams()
    ma_crossover: MaCrossoverParams = MaCrossoverParams()
    momentum: MomentumParams = MomentumParams()
    ml_momentum: MlMomentumParams = MlMomentumParams()

    def enabled_names(self) -> list[str]:
        return [name for name, p in self.items() if p.enabled]

    def items(self) -> list[tuple[str, StrategyParams]]:
        return [(name, getattr(self, name)) for name in type(self).model_fields]

    def stop_atr_multiple(self, name: str, default: float) -> float:
        """The stop distance of strategy ``name``: its own key when set, else ``default``.

        ``default`` is ``risk.stop_atr_multiple``: one key for every strategy, a
        strategy's own ``stop_atr_multiple`` overriding it only where it is set.
        """
        own: float | None = getattr(self, name).stop_atr_multiple
        return default if own is None else own
