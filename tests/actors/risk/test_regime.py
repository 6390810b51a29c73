"""Tests for ``actors.risk.regime``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.data_feed.panel import FloatArray
from actors.risk.params import RegimeParams
from actors.risk.regime import (
    Regime,
    RegimeDecision,
    classify,
    detect_regime,
    strategy_allowed,
    volatility_proxy,
)

P = RegimeParams()


@pytest.mark.parametrize(
    ("vix", "regime"),
    [
        (0.0, Regime.LOW_VOLATILITY),
        (14.99, Regime.LOW_VOLATILITY),
        (15.0, Regime.NORMAL),
        (20.0, Regime.NORMAL),
        (25.0, Regime.NORMAL),
        (25.01, Regime.HIGH_VOLATILITY),
        (34.99, Regime.HIGH_VOLATILITY),
        (35.0, Regime.CRISIS),
        (80.0, Regime.CRISIS),
    ],
)
def test_vix_boundaries(vix: float, regime: Regime) -> None:
    """VIX < 15 low, 15..25 inclusive normal, > 25 high, >= 35 crisis."""
    decision = detect_regime(vix, None, P)
    assert decision.regime is regime
    assert decision.source == "vix"
    assert decision.level == vix


def test_low_volatility_effects() -> None:
    """Low volatility allows 40 % heat and 1.2x size with breakouts on."""
    d = detect_regime(12.0, None, P)
    assert (d.heat_limit, d.size_multiplier) == (0.40, 1.2)
    assert d.breakouts_enabled
    assert d.entries_allowed


def test_normal_effects() -> None:
    """Normal allows 30 % heat and 1.0x size with breakouts on."""
    d = detect_regime(18.0, None, P)
    assert (d.heat_limit, d.size_multiplier) == (0.30, 1.0)
    assert d.breakouts_enabled
    assert d.entries_allowed


def test_high_volatility_effects() -> None:
    """High volatility allows 20 % heat and 0.8x size and disables breakouts."""
    d = detect_regime(30.0, None, P)
    assert (d.heat_limit, d.size_multiplier) == (0.20, 0.8)
    assert not d.breakouts_enabled
    assert d.entries_allowed
    assert "breakouts disabled" in d.reason


def test_crisis_effects() -> None:
    """Crisis allows no new entries, no heat and no breakouts."""
    d = detect_regime(40.0, None, P)
    assert (d.heat_limit, d.size_multiplier) == (0.0, 0.0)
    assert not d.entries_allowed
    assert not d.breakouts_enabled
    assert "no new entries" in d.reason


@pytest.mark.parametrize("vix", [None, math.nan, math.inf, -1.0])
def test_missing_vix_uses_the_proxy(vix: float | None) -> None:
    """A missing, NaN, infinite or negative VIX falls back to the proxy."""
    d = detect_regime(vix, 27.0, P)
    assert d.source == "proxy"
    assert d.regime is Regime.HIGH_VOLATILITY
    assert "proxy" in d.reason


def test_vix_wins_over_the_proxy() -> None:
    """When VIX is known the proxy is ignored."""
    assert detect_regime(14.0, 40.0, P).regime is Regime.LOW_VOLATILITY


@pytest.mark.parametrize("proxy", [None, math.nan])
def test_no_vix_and_no_proxy_defaults_to_normal(proxy: float | None) -> None:
    """With neither VIX nor proxy the regime is NORMAL from source "default"."""
    d = detect_regime(None, proxy, P)
    assert d.regime is Regime.NORMAL
    assert d.source == "default"
    assert math.isnan(d.level)
    assert "no VIX and no volatility proxy" in d.reason
    assert d.heat_limit == 0.30


def test_custom_thresholds_are_used() -> None:
    """Configured thresholds replace the defaults."""
    params = RegimeParams(low_vix=10, high_vix=20, crisis_vix=30)
    assert classify(20.5, params) is Regime.HIGH_VOLATILITY
    assert classify(30.0, params) is Regime.CRISIS


@given(st.floats(min_value=0, max_value=200), st.floats(min_value=0, max_value=200))
def test_heat_and_size_never_rise_with_vix(a: float, b: float) -> None:
    """A higher VIX never gives a higher heat limit or size multiplier."""
    lo, hi = detect_regime(min(a, b), None, P), detect_regime(max(a, b), None, P)
    assert hi.heat_limit <= lo.heat_limit
    assert hi.size_multiplier <= lo.size_multiplier


def _decision(vix: float) -> RegimeDecision:
    return detect_regime(vix, None, P)


def test_strategy_allowed_breakout_in_high_volatility() -> None:
    """Breakout strategies are refused in high volatility; others are allowed."""
    ok, why = strategy_allowed(_decision(30.0), is_breakout=True)
    assert not ok
    assert "breakouts disabled" in why
    assert strategy_allowed(_decision(30.0), is_breakout=False)[0]


def test_strategy_allowed_nothing_in_crisis() -> None:
    """No strategy may enter in a crisis."""
    ok, why = strategy_allowed(_decision(35.0), is_breakout=False)
    assert not ok
    assert "no new entries" in why


def test_strategy_allowed_everything_in_normal() -> None:
    """Every strategy, breakouts included, is allowed in a normal regime."""
    assert strategy_allowed(_decision(20.0), is_breakout=True) == (True, "regime normal: allowed")


def _constant_vol_prices(daily: float, rows: int, n: int = 3) -> FloatArray:
    signs = np.where(np.arange(rows - 1) % 2 == 0, 1.0, -1.0)
    rets = np.repeat((daily * signs)[:, None], n, axis=1)
    return 100.0 * np.vstack([np.ones((1, n)), np.cumprod(1.0 + rets, axis=0)])


def test_proxy_matches_annualised_realised_volatility() -> None:
    """The proxy is std(last 20 universe returns) x sqrt(252) x 100."""
    close = _constant_vol_prices(0.01, 40)
    rets = np.where(np.arange(19, 39) % 2 == 0, 0.01, -0.01)
    expected = float(np.std(rets, ddof=1)) * math.sqrt(252) * 100
    proxy = volatility_proxy(close)
    assert proxy == pytest.approx(expected, rel=1e-9)


def test_proxy_needs_21_rows() -> None:
    """Fewer than 21 rows give no proxy; 21 rows give one."""
    assert volatility_proxy(_constant_vol_prices(0.01, 20)) is None
    assert volatility_proxy(_constant_vol_prices(0.01, 21)) is not None


def test_proxy_ignores_missing_bars() -> None:
    """NaN and non-positive closes are skipped without warnings."""
    close = _constant_vol_prices(0.01, 30, n=4)
    close[:, 3] = np.nan
    close[5, 2] = 0.0
    close[-3, 1] = np.nan
    proxy = volatility_proxy(close)
    assert proxy is not None
    assert math.isfinite(proxy)


def test_proxy_is_none_when_mostly_empty() -> None:
    """With fewer than 10 usable days among the last 20 there is no proxy."""
    close = _constant_vol_prices(0.01, 30)
    close[-15:] = np.nan
    assert volatility_proxy(close) is None


def test_proxy_accepts_one_series() -> None:
    """A 1-D series (an index) is one column."""
    close = _constant_vol_prices(0.02, 25)[:, 0]
    proxy = volatility_proxy(close)
    assert proxy is not None
    assert proxy > 25


def test_proxy_feeds_regime() -> None:
    """A calm universe's proxy gives a low-volatility regime."""
    proxy = volatility_proxy(_constant_vol_prices(0.002, 60))
    assert detect_regime(None, proxy, P).regime is Regime.LOW_VOLATILITY
