"""Signals blocked by heat or cash are parked and re-evaluated for a few sessions.

A signal created (blocked) on session ``d`` is re-evaluated on each of the
next ``decay_sessions`` [3] sessions; ``expires_asof`` is the last of them,
and the signal is expired on any session after it. Only capacity blocks
(``heat_limit``, ``insufficient_cash``) are parked: a signal refused for its
own sake (regime, correlation, data) would be refused again.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from actors.messages import Signal
from actors.risk.cash import INSUFFICIENT_CASH
from actors.risk.heat import HEAT_LIMIT
from actors.risk.params import PendingParams
from actors.strategies.sizing import atr_position_size

PARKABLE_REASONS = frozenset({HEAT_LIMIT, INSUFFICIENT_CASH})


@dataclass(frozen=True, slots=True)
class PendingDecision:
    """Whether a blocked signal is parked, and the last session it is re-evaluated on."""

    park: bool
    expires_asof: dt.date | None
    reason: str


def should_park(reason_code: str | None) -> bool:
    """True for the capacity blocks worth retrying: ``heat_limit`` and ``insufficient_cash``."""
    return reason_code in PARKABLE_REASONS


def expiry_asof(created_asof: dt.date, sessions: Sequence[dt.date], decay_sessions: int) -> dt.date:
    """The ``decay_sessions``-th session strictly after ``created_asof``.

    ``sessions`` must be ascending; ``created_asof`` need not be one of them.
    Raises ``ValueError`` when ``sessions`` does not reach that far.
    """
    if decay_sessions < 1:
        raise ValueError(f"decay_sessions must be at least 1, got {decay_sessions}")
    if any(a >= b for a, b in pairwise(sessions)):
        raise ValueError("sessions must be strictly ascending")
    at = bisect_right(sessions, created_asof) + decay_sessions - 1
    if at >= len(sessions):
        raise ValueError(
            f"the calendar ends before {decay_sessions} sessions after {created_asof.isoformat()}"
        )
    return sessions[at]


def is_expired(expires_asof: dt.date, asof: dt.date) -> bool:
    """True once ``asof`` is after the last session of re-evaluation."""
    return asof > expires_asof


def decide_pending(
    reason_code: str | None,
    created_asof: dt.date,
    sessions: Sequence[dt.date],
    params: PendingParams,
) -> PendingDecision:
    """Park a signal blocked for ``reason_code`` on ``created_asof``, or say why not."""
    if not should_park(reason_code):
        return PendingDecision(False, None, f"{reason_code or 'no reason'} is not a capacity block")
    expires = expiry_asof(created_asof, sessions, params.decay_sessions)
    return PendingDecision(
        True,
        expires,
        f"{reason_code}: re-evaluated for {params.decay_sessions} sessions "
        f"until {expires.isoformat()}",
    )


def reprice(
    signal: Signal,
    *,
    price: float,
    atr: float,
    capital: float,
    risk_capital: float,
    risk_per_trade: float,
    stop_atr_multiple: float,
    since: dt.date,
) -> Signal | None:
    """A parked entry priced and sized on today's data; None when it cannot be sized today.

    A signal parked yesterday carries yesterday's close and size; sent as it
    was it would buy at today's open on a stale price with a stale risk
    budget. It is re-priced at today's last close and ATR and re-sized by the
    same ATR rule as a fresh signal (``atr_position_size``).
    """
    shares = atr_position_size(
        capital,
        price,
        atr,
        risk_per_trade=risk_per_trade,
        stop_atr_multiple=stop_atr_multiple,
        risk_capital=risk_capital,
    )
    if shares <= 0:
        return None
    note = f" [pending since {since}, re-priced at {price:.2f}]"
    return replace(
        signal,
        price=float(price),
        atr=float(atr),
        shares=shares,
        reasoning=signal.reasoning.split(" [pending since")[0] + note,
    )
