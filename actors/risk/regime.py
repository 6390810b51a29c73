"""VIX-based market regime: the heat limit, size multiplier and strategies allowed today.

Boundaries (defaults in brackets, as in the reference: "VIX < 15", "VIX > 25"):

* ``level < low_vix`` [< 15]: LOW_VOLATILITY, 40 % heat, 1.2x size;
* ``low_vix <= level <= high_vix`` [15 .. 25, both inclusive]: NORMAL, 30 %, 1.0x;
* ``high_vix < level < crisis_vix`` [> 25 and < 35]: HIGH_VOLATILITY, 20 %, 0.8x,
  breakouts disabled;
* ``level >= crisis_vix`` [>= 35]: CRISIS, no new entries at all.

When VIX is missing (None, NaN, infinite or negative) the universe's realised
volatility (:func:`volatility_proxy`, in VIX points) stands in; when both are
missing the regime is NORMAL with source ``"default"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np

from actors.data_feed.panel import FloatArray
from actors.risk.params import RegimeParams

PROXY_WINDOW = 20
"""Daily returns in the realised-volatility proxy."""
PROXY_MIN_RETURNS = 10
"""Fewest days with a universe return among the last ``PROXY_WINDOW`` for a proxy."""
TRADING_DAYS = 252

Source = Literal["vix", "proxy", "default"]


class Regime(StrEnum):
    LOW_VOLATILITY = "low_volatility"
    NORMAL = "normal"
    HIGH_VOLATILITY = "high_volatility"
    CRISIS = "crisis"


@dataclass(frozen=True, slots=True)
class RegimeDecision:
    """Today's regime and what it allows; ``level`` is NaN when ``source == "default"``."""

    regime: Regime
    level: float
    source: Source
    heat_limit: float
    size_multiplier: float
    breakouts_enabled: bool
    entries_allowed: bool
    reason: str


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value >= 0


def classify(level: float, params: RegimeParams) -> Regime:
    """The regime of a finite volatility ``level`` (VIX points); see the module docstring."""
    if level >= params.crisis_vix:
        return Regime.CRISIS
    if level > params.high_vix:
        return Regime.HIGH_VOLATILITY
    if level >= params.low_vix:
        return Regime.NORMAL
    return Regime.LOW_VOLATILITY


def _decision(regime: Regime, level: float, source: Source, params: RegimeParams) -> RegimeDecision:
    heat, size = {
        Regime.LOW_VOLATILITY: (params.heat_low, params.size_low),
        Regime.NORMAL: (params.heat_normal, params.size_normal),
        Regime.HIGH_VOLATILITY: (params.heat_high, params.size_high),
        Regime.CRISIS: (params.heat_crisis, params.size_crisis),
    }[regime]
    breakouts = regime in (Regime.LOW_VOLATILITY, Regime.NORMAL)
    entries = regime is not Regime.CRISIS
    name = "VIX" if source == "vix" else "realised-volatility proxy"
    if source == "default":
        why = "no VIX and no volatility proxy: assuming normal"
    elif regime is Regime.CRISIS:
        why = f"{name} {level:.2f} >= {params.crisis_vix:g}: crisis"
    elif regime is Regime.HIGH_VOLATILITY:
        why = f"{name} {level:.2f} > {params.high_vix:g}: high volatility"
    elif regime is Regime.NORMAL:
        why = f"{name} {level:.2f} in [{params.low_vix:g}, {params.high_vix:g}]: normal"
    else:
        why = f"{name} {level:.2f} < {params.low_vix:g}: low volatility"
    effects = f"heat {heat:.0%}, size {size:g}x"
    if not entries:
        effects += ", no new entries"
    elif not breakouts:
        effects += ", breakouts disabled"
    return RegimeDecision(
        regime=regime,
        level=level,
        source=source,
        heat_limit=heat,
        size_multiplier=size,
        breakouts_enabled=breakouts and entries,
        entries_allowed=entries,
        reason=f"{why} ({effects})",
    )


def detect_regime(vix: float | None, proxy: float | None, params: RegimeParams) -> RegimeDecision:
    """Classify today from ``vix``, else from ``proxy``, else assume NORMAL (source "default")."""
    if vix is not None and _usable(vix):
        return _decision(classify(vix, params), vix, "vix", params)
    if proxy is not None and _usable(proxy):
        return _decision(classify(proxy, params), proxy, "proxy", params)
    return _decision(Regime.NORMAL, math.nan, "default", params)


def volatility_proxy(close: FloatArray) -> float | None:
    """Annualised 20-day realised volatility of the equal-weighted universe, in VIX points.

    ``close`` is (T, N) (or (T,) for one series). Each day's universe return is
    the mean of the simple returns of the symbols with a finite, positive close
    on both days; the proxy is ``std(last 20 universe returns, ddof=1) x sqrt(252)
    x 100``. Days where no symbol has a return are skipped. None when there are
    fewer than 21 rows or fewer than 10 usable days among the last 20.
    """
    prices = np.asarray(close, dtype=np.float64)
    if prices.ndim == 1:
        prices = prices[:, np.newaxis]
    if prices.ndim != 2 or prices.shape[0] < PROXY_WINDOW + 1:
        return None
    window = prices[-(PROXY_WINDOW + 1) :]
    prev, cur = window[:-1], window[1:]
    valid = np.isfinite(prev) & np.isfinite(cur) & (prev > 0) & (cur > 0)
    returns = np.divide(cur, prev, out=np.ones_like(cur), where=valid) - 1.0
    counts = valid.sum(axis=1)
    sums = np.where(valid, returns, 0.0).sum(axis=1)
    days = counts > 0
    if int(days.sum()) < PROXY_MIN_RETURNS:
        return None
    universe = sums[days] / counts[days]
    vol = float(np.std(universe, ddof=1)) * math.sqrt(TRADING_DAYS) * 100.0
    return vol if math.isfinite(vol) else None


def strategy_allowed(decision: RegimeDecision, is_breakout: bool) -> tuple[bool, str]:
    """Whether a strategy may open positions today, and why (the regime filter)."""
    if not decision.entries_allowed:
        return False, f"regime {decision.regime}: no new entries ({decision.reason})"
    if is_breakout and not decision.breakouts_enabled:
        return False, f"regime {decision.regime}: breakouts disabled ({decision.reason})"
    return True, f"regime {decision.regime}: allowed"
