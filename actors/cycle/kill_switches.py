"""Every kill switch in one place: the names, which forbid entries, and the automatic rules.

Operator and process switches (set by ``tradectl`` or the configuration):

* ``trading_halted`` (``tradectl halt REASON``): no new entries;
* ``entries_paused`` (``tradectl pause-entries``): exits still run;
* ``trading_disabled`` (``TRADING_DISABLED`` / ``risk.trading_disabled``);
* ``actor_crash_loop``: the supervisor's escalation;
* ``strategy_disabled:<name>``: one strategy's entries only.

The automatic switches, evaluated by the cycle for the day's risk context
(defaults in brackets):

* ``reconciliation_failed``: the broker reconciliation failed (``False``;
  ``None`` = not run yet, does not trip);
* ``daily_drawdown``: loss from the day's start value strictly above
  ``max_daily_drawdown`` [> 5 %]; a NaN drawdown trips (unknown loss, fail closed);
* ``consecutive_failures``: at least ``max_consecutive_failures`` [>= 3];
* ``order_rejection_rate``: at least ``min_rejections`` [>= 5] rejected orders
  *and* a rejection rate strictly above ``max_rejection_rate`` [> 50 %];
* ``max_drawdown``: equity below its high-water mark by strictly more than
  ``max_drawdown`` [> 15 %] (a NaN drawdown does not trip: no mark yet);
* ``bad_data``: stale market data or a data-quality failure. Unlike the others it
  is not an operator latch: the cycle clears it once the data is good again;
* ``broker_blocked`` (set by the cycle, not here): the broker says the account may
  not trade, from its account flags or a refused submission.

Blocks the cycle adds for itself alone (never latched, never on the board):

* ``daily_loss_limit``: the day's loss is beyond ``risk.daily_loss_limit``: no
  entries this cycle;
* ``day_already_traded``: a forced re-run of a trading date whose cycle completed:
  exits and stop checks only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from actors.messages import SwitchView
from actors.risk.params import KillSwitchParams

HALT = "trading_halted"  # tradectl halt REASON: no new entries, no new cycles' entries
ENTRIES_PAUSED = "entries_paused"  # tradectl pause-entries: exits still run
ENV_DISABLED = "trading_disabled"  # TRADING_DISABLED / risk.trading_disabled in config
ACTOR_CRASH_LOOP = "actor_crash_loop"  # the supervisor's escalation
STRATEGY_PREFIX = "strategy_disabled:"


def strategy_switch(strategy: str) -> str:
    return f"{STRATEGY_PREFIX}{strategy}"


def entries_blocked(active: Iterable[SwitchView], strategy: str | None = None) -> list[SwitchView]:
    """The active switches that forbid new entries (for ``strategy`` when given).

    Every switch that is not a per-strategy switch stops all entries: manual
    halts and pauses, and every automatic switch (reconciliation, drawdown,
    crash loop, bad data). A strategy switch stops only its own strategy.
    """
    own = strategy_switch(strategy) if strategy is not None else None
    return [sw for sw in active if not sw.name.startswith(STRATEGY_PREFIX) or sw.name == own]


def disabled_strategies(active: Iterable[SwitchView]) -> set[str]:
    """Strategy names whose ``strategy_disabled:`` switch is active."""
    return {
        v.name.removeprefix(STRATEGY_PREFIX) for v in active if v.name.startswith(STRATEGY_PREFIX)
    }


RECONCILIATION_FAILED: Final = "reconciliation_failed"
DAILY_DRAWDOWN: Final = "daily_drawdown"
CONSECUTIVE_FAILURES: Final = "consecutive_failures"
ORDER_REJECTION_RATE: Final = "order_rejection_rate"
BAD_DATA: Final = "bad_data"
MAX_DRAWDOWN: Final = "max_drawdown"
BROKER_BLOCKED: Final = "broker_blocked"
AUTO_SWITCHES: Final = (
    RECONCILIATION_FAILED,
    DAILY_DRAWDOWN,
    CONSECUTIVE_FAILURES,
    ORDER_REJECTION_RATE,
    BAD_DATA,
    MAX_DRAWDOWN,
    BROKER_BLOCKED,
)
#: Switches the cycle clears by itself once their condition is gone (not operator latches).
SELF_CLEARING: Final = frozenset({BAD_DATA})

#: The cycle's own block when the day's loss is beyond the daily loss limit.
DAILY_LOSS_LIMIT: Final = "daily_loss_limit"
#: The cycle's own block in a forced re-run of a trading date whose cycle completed.
DAY_ALREADY_TRADED: Final = "day_already_traded"


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the automatic switches look at; ``daily_drawdown`` is a loss ratio (0.05 = 5 % down)."""

    reconciliation_passed: bool | None
    daily_drawdown: float
    consecutive_failures: int
    rejected_orders: int
    total_orders: int
    stale_data: bool
    bad_data_reason: str | None
    drawdown_from_peak: float = 0.0
    peak_equity: float = 0.0


def evaluate(ctx: RiskContext, params: KillSwitchParams) -> list[tuple[str, str]]:
    """The switches that trip, as ``(switch name, reason with the numbers)``, in rule order."""
    tripped: list[tuple[str, str]] = []
    if ctx.reconciliation_passed is False:
        tripped.append((RECONCILIATION_FAILED, "broker reconciliation failed"))
    limit = params.max_daily_drawdown
    if math.isnan(ctx.daily_drawdown):
        tripped.append((DAILY_DRAWDOWN, "daily drawdown unknown (NaN)"))
    elif ctx.daily_drawdown > limit:
        tripped.append((DAILY_DRAWDOWN, f"daily drawdown {ctx.daily_drawdown:.2%} > {limit:.2%}"))
    if ctx.consecutive_failures >= params.max_consecutive_failures:
        tripped.append(
            (
                CONSECUTIVE_FAILURES,
                f"{ctx.consecutive_failures} consecutive failures "
                f">= {params.max_consecutive_failures}",
            )
        )
    if ctx.rejected_orders >= params.min_rejections and ctx.total_orders > 0:
        rate = ctx.rejected_orders / ctx.total_orders
        if rate > params.max_rejection_rate:
            tripped.append(
                (
                    ORDER_REJECTION_RATE,
                    f"{ctx.rejected_orders}/{ctx.total_orders} orders rejected ({rate:.0%}) "
                    f"> {params.max_rejection_rate:.0%} with >= {params.min_rejections} rejected",
                )
            )
    peak_limit = params.max_drawdown
    if ctx.drawdown_from_peak > peak_limit:
        tripped.append(
            (
                MAX_DRAWDOWN,
                f"equity {ctx.drawdown_from_peak:.2%} below its high-water mark "
                f"{ctx.peak_equity:,.2f} > {peak_limit:.2%}",
            )
        )
    reasons = []
    if ctx.stale_data:
        reasons.append("stale market data")
    if ctx.bad_data_reason:
        reasons.append(ctx.bad_data_reason)
    if reasons:
        tripped.append((BAD_DATA, "; ".join(reasons)))
    return tripped
