"""Typed parameters of the risk layer; composed by ``actors.system.config`` as ``risk.*`` sections.

Every ratio is a share (0.30 = 30 %); VIX levels are in VIX points. The
defaults are the reference system's rules.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.orders.limits import LimitsParams


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegimeParams(_Params):
    """VIX thresholds and the heat limit / size multiplier of each regime.

    ``VIX < low_vix`` is low volatility, ``low_vix <= VIX <= high_vix`` normal,
    ``high_vix < VIX < crisis_vix`` high volatility and ``VIX >= crisis_vix`` crisis.
    """

    low_vix: float = Field(default=15.0, gt=0, description="below this: low volatility")
    high_vix: float = Field(default=25.0, gt=0, description="above this: high volatility")
    crisis_vix: float = Field(default=35.0, gt=0, description="at or above this: crisis")
    heat_low: float = Field(default=0.40, ge=0, le=1, description="heat limit, low volatility")
    heat_normal: float = Field(default=0.30, ge=0, le=1, description="heat limit, normal")
    heat_high: float = Field(default=0.20, ge=0, le=1, description="heat limit, high volatility")
    heat_crisis: float = Field(default=0.0, ge=0, le=1, description="heat limit, crisis")
    size_low: float = Field(default=1.2, ge=0, le=3, description="size multiplier, low volatility")
    size_normal: float = Field(default=1.0, ge=0, le=3, description="size multiplier, normal")
    size_high: float = Field(default=0.8, ge=0, le=3, description="size multiplier, high vol")
    size_crisis: float = Field(default=0.0, ge=0, le=3, description="size multiplier, crisis")
    max_vix_age_sessions: int = Field(
        default=0,
        ge=0,
        le=20,
        description="sessions the last VIX value may lag the last session; older: the proxy",
    )

    @model_validator(mode="after")
    def _thresholds_increase(self) -> Self:
        if not self.low_vix < self.high_vix < self.crisis_vix:
            raise ValueError(
                "regime thresholds must increase: low_vix < high_vix < crisis_vix "
                f"(got {self.low_vix}, {self.high_vix}, {self.crisis_vix})"
            )
        return self


class CorrelationParams(_Params):
    """Correlation attenuation: full size up to ``full_size_below``, none above ``reject_above``.

    In between the size falls linearly from 1.0 to ``min_multiplier``. Each
    window needs at least ``max(10, window // 2)`` overlapping returns to count.
    """

    full_size_below: float = Field(default=0.5, gt=-1, lt=1, description="corr <= this: 100 %")
    reject_above: float = Field(default=0.8, gt=-1, le=1, description="corr > this: rejected")
    min_multiplier: float = Field(
        default=0.25, gt=0, le=1, description="size multiplier at corr == reject_above"
    )
    long_window: int = Field(default=60, ge=10, le=2520, description="daily returns, long window")
    short_window: int = Field(default=20, ge=10, le=2520, description="daily returns, short")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.full_size_below < self.reject_above:
            raise ValueError(
                "full_size_below must be below reject_above "
                f"(got {self.full_size_below} >= {self.reject_above})"
            )
        if not self.short_window < self.long_window:
            raise ValueError(
                "short_window must be shorter than long_window "
                f"(got {self.short_window} >= {self.long_window})"
            )
        return self


class PendingParams(_Params):
    """Decay window of signals blocked by heat or cash."""

    decay_sessions: int = Field(
        default=3, ge=1, le=20, description="sessions a parked signal is re-evaluated on"
    )


class KillSwitchParams(_Params):
    """Thresholds of the automatic kill switches."""

    max_daily_drawdown: float = Field(
        default=0.05, gt=0, le=1, description="loss from the day's start value that trips (>)"
    )
    max_consecutive_failures: int = Field(
        default=3, ge=1, description="consecutive failed cycles that trip (>=)"
    )
    max_rejection_rate: float = Field(
        default=0.5, ge=0, le=1, description="rejected / total orders that trips (>)"
    )
    min_rejections: int = Field(
        default=5, ge=1, description="rejections needed before the rate counts (>=)"
    )
    max_drawdown: float = Field(
        default=0.15, gt=0, le=1, description="equity below its high-water mark that trips (>)"
    )


class LossParams(_Params):
    """Daily loss circuit breaker and catastrophe stops."""

    daily_loss_limit: float = Field(
        default=0.02, gt=0, le=1, description="loss from the day's start value that halts (>)"
    )
    stop_atr_multiple: float = Field(
        default=3.0, gt=0, le=20, description="stop = entry - multiple x ATR"
    )


SizingBase = Literal["portfolio", "strategy"]


class RiskParams(_Params):
    """All risk-layer parameters, as the ``risk.*`` sections of the daemon config."""

    regime: RegimeParams = Field(default_factory=RegimeParams)
    correlation: CorrelationParams = Field(default_factory=CorrelationParams)
    pending: PendingParams = Field(default_factory=PendingParams)
    kill_switches: KillSwitchParams = Field(default_factory=KillSwitchParams)
    loss: LossParams = Field(default_factory=LossParams)
    limits: LimitsParams = Field(default_factory=LimitsParams)
    sizing_base: SizingBase = Field(
        default="portfolio",
        description="risk_per_trade is a share of the portfolio's equity, or of the strategy's",
    )
