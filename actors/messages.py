"""Every message on the bus: frozen, slotted dataclasses.

Commands are imperatives (``StartCycle``, ``GenerateSignals``), events are past
tense (``CycleCompleted``, ``ActorCrashed``). Cycle messages carry ``run_id`` and
``asof`` (the trading session the cycle trades in: a strategy sees bars up to
the close of the session before ``asof``). Reply addresses travel in the
runtime's envelope, never in the message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.data_feed.panel import BarPanel

# ---------------------------------------------------------------- runtime


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Ask every actor in turn; a reply proves its mailbox is being served (watchdog)."""

    seq: int


@dataclass(frozen=True, slots=True)
class ActorStateChanged:
    """An actor moved in its lifecycle (see ``daemon.actor.LIFECYCLE``)."""

    actor: str
    old: str
    new: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class ActorCrashed:
    """A handler raised; the actor is being restarted. The poison message is not replayed."""

    actor: str
    message_type: str
    error_type: str
    error: str
    restarts_in_window: int
    at: dt.datetime


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Alert:
    """Something the operator must hear about now. ``key`` deduplicates a flapping condition."""

    key: str
    severity: Severity
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    at: dt.datetime | None = None


# ---------------------------------------------------------------- control


@dataclass(frozen=True, slots=True)
class GetStatus:
    """Ask an actor for its part of ``tradectl status`` (a JSON-able dict)."""


@dataclass(frozen=True, slots=True)
class SetStrategyEnabled:
    """Operator command: enable or disable one strategy from the next cycle on."""

    strategy: str
    enabled: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ApplySettings:
    """A reloaded, validated configuration (``daemon.config.Settings``) to take from now on."""

    settings: Any


@dataclass(frozen=True, slots=True)
class TripKillSwitch:
    """Latch a kill switch (persisted; only an operator command clears it)."""

    switch: str
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class ClearKillSwitch:
    """Operator command: clear a latched kill switch (logged with who and why)."""

    switch: str
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class GetKillSwitches:
    """Ask the kill-switch board for every switch (active or not)."""


@dataclass(frozen=True, slots=True)
class KillSwitchTripped:
    switch: str
    reason: str
    since: dt.datetime
    source: str


@dataclass(frozen=True, slots=True)
class KillSwitchCleared:
    switch: str
    reason: str
    at: dt.datetime
    source: str


# ---------------------------------------------------------------- the daily cycle


class CycleTrigger(StrEnum):
    SCHEDULE = "schedule"
    CATCH_UP = "catch-up"
    START = "start"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class StartCycle:
    """Run the daily cycle for the session ``asof``."""

    run_id: str
    asof: dt.date
    trigger: CycleTrigger = CycleTrigger.SCHEDULE


@dataclass(frozen=True, slots=True)
class FetchSnapshot:
    """Ask the data feed for a validated snapshot of bars before ``asof``."""

    run_id: str
    asof: dt.date


@dataclass(frozen=True, slots=True)
class SymbolRejected:
    """A symbol dropped from a cycle by data validation, with the rule it broke."""

    symbol: str
    reason_code: str
    details: str


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Validated bars through the close of the session before ``asof``, with indicators."""

    run_id: str
    asof: dt.date
    panel: BarPanel
    indicators: dict[str, Any]
    volatility_index: float | None
    rejected: tuple[SymbolRejected, ...] = ()
    provider: str = ""


@dataclass(frozen=True, slots=True)
class DataUnavailable:
    """The data feed's answer when it cannot give a snapshot fit to trade on."""

    run_id: str
    asof: dt.date
    reason: str
    rejected: tuple[SymbolRejected, ...] = ()


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """A position one strategy holds, as the strategy needs it for exits and sizing."""

    symbol: str
    shares: int
    entry_date: dt.date
    entry_price: float
    atr_at_entry: float = 0.0


class SignalAction(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


@dataclass(frozen=True, slots=True)
class Signal:
    """One strategy's intention for one symbol, with the numbers that justify it."""

    strategy: str
    symbol: str
    action: SignalAction
    confidence: float
    price: float
    atr: float
    shares: int
    reasoning: str


@dataclass(frozen=True, slots=True)
class GenerateSignals:
    """Ask a strategy actor for its signals on a snapshot."""

    snapshot: MarketSnapshot
    positions: tuple[HeldPosition, ...] = ()
    capital: float = 0.0


@dataclass(frozen=True, slots=True)
class Signals:
    """A strategy's answer for one cycle; ``error`` is set when the strategy failed."""

    run_id: str
    asof: dt.date
    strategy: str
    signals: tuple[Signal, ...]
    error: str | None = None
    duration_s: float = 0.0


class CycleStatus(StrEnum):
    COMPLETED = "completed"
    HALTED = "halted"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CycleCompleted:
    """A cycle ended (completed, halted by a gate, or failed) and why."""

    run_id: str
    asof: dt.date
    status: CycleStatus
    reason: str
    raw_signals: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
