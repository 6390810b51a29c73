"""Reconciliation arithmetic: compare local positions and cash with the broker's (pure).

The rules, with ``tolerance`` a fraction (0.01 is 1%):

- **Positions**, for every symbol held on either side (a symbol missing on one
  side counts as 0 there): a mismatch when
  ``|broker - local| > tolerance * max(|local|, |broker|)``.
  At 1%: 100 vs 99 passes (1 is not more than 1), 100 vs 98 fails, and 1 vs 0
  fails (any position we do not know about, or believe we hold and do not).
- **Cash**: a mismatch when ``|broker - local| > tolerance * max(|broker_cash|, 1.0)``;
  the floor of $1 keeps an empty account from demanding exact equality.

A difference exactly at the limit passes; a hair of relative slack absorbs the
binary rounding of ``tolerance * scale`` so the boundary does not depend on it.
A cash amount that is not finite (NaN, infinity) is always a mismatch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from actors.messages import Discrepancy

# Relative slack on the limit: 0.01 * 300 is not exactly 3.0 in binary for every scale.
_ROUNDING_SLACK = 1e-9


def _exceeds(diff: float, tolerance: float, scale: float) -> bool:
    # A NaN or infinite amount compares False with everything: count it as a mismatch.
    return not math.isfinite(diff) or abs(diff) > tolerance * scale * (1.0 + _ROUNDING_SLACK)


def compare(
    local_positions: Mapping[str, int],
    broker_positions: Mapping[str, int],
    local_cash: float,
    broker_cash: float,
    *,
    tolerance: float,
) -> tuple[bool, list[Discrepancy]]:
    """Whether local and broker agree within ``tolerance``, and every mismatch.

    Position discrepancies come first, sorted by symbol, then the cash one.
    """
    if not tolerance >= 0.0:
        raise ValueError(f"tolerance must be a non-negative fraction, got {tolerance!r}")
    found: list[Discrepancy] = []
    for symbol in sorted(set(local_positions) | set(broker_positions)):
        local = local_positions.get(symbol, 0)
        broker = broker_positions.get(symbol, 0)
        if _exceeds(broker - local, tolerance, max(abs(local), abs(broker))):
            found.append(Discrepancy("position", symbol, float(local), float(broker)))
    if _exceeds(broker_cash - local_cash, tolerance, max(abs(broker_cash), 1.0)):
        found.append(Discrepancy("cash", None, float(local_cash), float(broker_cash)))
    return not found, found
