"""Tests for ``actors.risk.params``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from actors.risk.params import (
    CorrelationParams,
    KillSwitchParams,
    LossParams,
    PendingParams,
    RegimeParams,
    RiskParams,
)


def test_defaults_are_the_reference_rules() -> None:
    """The defaults are the reference system's thresholds."""
    risk = RiskParams()
    assert (risk.regime.low_vix, risk.regime.high_vix, risk.regime.crisis_vix) == (15, 25, 35)
    assert (risk.regime.heat_low, risk.regime.heat_normal) == (0.40, 0.30)
    assert (risk.regime.heat_high, risk.regime.heat_crisis) == (0.20, 0.0)
    assert (risk.regime.size_low, risk.regime.size_normal) == (1.2, 1.0)
    assert (risk.regime.size_high, risk.regime.size_crisis) == (0.8, 0.0)
    assert risk.correlation == CorrelationParams(
        full_size_below=0.5, reject_above=0.8, min_multiplier=0.25, long_window=60, short_window=20
    )
    assert risk.pending.decay_sessions == 3
    assert risk.kill_switches == KillSwitchParams(
        max_daily_drawdown=0.05,
        max_consecutive_failures=3,
        max_rejection_rate=0.5,
        min_rejections=5,
    )
    assert risk.loss == LossParams(daily_loss_limit=0.02, stop_atr_multiple=3.0)


@pytest.mark.parametrize(
    ("low", "high", "crisis"), [(25, 15, 35), (15, 25, 25), (15, 15, 35), (30, 25, 35)]
)
def test_regime_thresholds_must_increase(low: float, high: float, crisis: float) -> None:
    """VIX thresholds that do not strictly increase are refused."""
    with pytest.raises(ValidationError, match="must increase"):
        RegimeParams(low_vix=low, high_vix=high, crisis_vix=crisis)


def test_correlation_full_below_must_be_under_reject() -> None:
    """full_size_below at or above reject_above is refused."""
    with pytest.raises(ValidationError, match="full_size_below"):
        CorrelationParams(full_size_below=0.8, reject_above=0.8)


def test_correlation_short_window_must_be_shorter() -> None:
    """short_window at or above long_window is refused."""
    with pytest.raises(ValidationError, match="short_window"):
        CorrelationParams(short_window=60, long_window=60)


def test_unknown_keys_are_refused() -> None:
    """A misspelt key is an error, not silently ignored."""
    with pytest.raises(ValidationError):
        RiskParams.model_validate({"loss": {"daily_loss_limt": 0.03}})


def test_params_are_frozen() -> None:
    """Parameters cannot be changed after construction."""
    params = PendingParams()
    with pytest.raises(ValidationError):
        params.decay_sessions = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad",
    [
        {"loss": {"daily_loss_limit": 0}},
        {"loss": {"stop_atr_multiple": -1}},
        {"pending": {"decay_sessions": 0}},
        {"kill_switches": {"max_rejection_rate": 1.5}},
        {"correlation": {"min_multiplier": 0}},
        {"regime": {"heat_normal": 1.2}},
    ],
)
def test_out_of_range_values_are_refused(bad: dict[str, dict[str, float]]) -> None:
    """Field constraints reject values outside their documented range."""
    with pytest.raises(ValidationError):
        RiskParams.model_validate(bad)


def test_sections_load_from_a_mapping() -> None:
    """RiskParams composes its sections from plain nested mappings (a config file)."""
    risk = RiskParams.model_validate({"regime": {"low_vix": 12}, "pending": {"decay_sessions": 5}})
    assert risk.regime.low_vix == 12
    assert risk.pending.decay_sessions == 5
