"""Kill-switch names and the pure rules over them (no asyncio, no store)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

HALT = "trading_halted"  # tradectl halt REASON: no new entries, no new cycles' entries
ENTRIES_PAUSED = "entries_paused"  # tradectl pause-entries: exits still run
ENV_DISABLED = "trading_disabled"  # TRADING_DISABLED / risk.trading_disabled in config
ACTOR_CRASH_LOOP = "actor_crash_loop"  # the supervisor's escalation
STRATEGY_PREFIX = "strategy_disabled:"


def strategy_switch(strategy: str) -> str:
    return f"{STRATEGY_PREFIX}{strategy}"


@dataclass(frozen=True, slots=True)
class SwitchView:
    name: str
    reason: str
    source: str


def entries_blocked(active: Iterable[SwitchView], strategy: str | None = None) -> list[SwitchView]:
    """The active switches that forbid new entries (for ``strategy`` when given).

    Every switch that is not a per-strategy switch stops all entries: manual
    halts and pauses, and every automatic switch (reconciliation, drawdown,
    crash loop, bad data). A strategy switch stops only its own strategy.
    """
    own = strategy_switch(strategy) if strategy is not None else None
    return [sw for sw in active if not sw.name.startswith(STRATEGY_PREFIX) or sw.name == own]
