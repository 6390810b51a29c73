"""What the steps of one daily cycle share: its wiring, its state, its outcome.

``CycleDeps`` is the wiring (actor refs, stores, timeouts), ``CycleState`` what
the steps leave for each other, ``Outcome`` what the cycle ends with, and
``CycleContext`` one cycle's inputs plus the few things every step does the same
way (an event in the run's event file, a kill switch tripped, an entry block).
A step is an async function of the context; returning an ``Outcome`` ends the
cycle there.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.events import EventType
from actors.market.calendar import ExchangeCalendar
from actors.messages import (
    CycleStatus,
    HeldPosition,
    IntentStatus,
    MarketSnapshot,
    OrderIntentSpec,
    OrderResult,
    ReconciliationReport,
    Signal,
    Signals,
    StartCycle,
    SwitchView,
    TripKillSwitch,
)
from actors.metrics import Metrics
from actors.risk import pipeline
from actors.risk.drawdown import DayLoss, HighWater
from actors.risk.params import RiskParams
from actors.risk.regime import RegimeDecision
from actors.store.corporate_actions import CorporateActionStore
from actors.store.cycles import CycleJournal
from actors.store.equity import EquityCloses
from actors.store.orders import OrderStore
from actors.store.pending import PendingRow, PendingStore
from actors.store.signals import SignalStore
from actors.store.state import KillSwitchStore, SystemState
from actors.strategies.params import StrategiesParams
from daemon.actor import ActorRef
from daemon.clock import Clock
from daemon.logging import EventLog

Publish = Callable[[object], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CycleDeps:
    """What a cycle needs: actor refs, stores, parameters."""

    clock: Clock
    calendar: ExchangeCalendar
    journal: CycleJournal
    signals: SignalStore
    pending: PendingStore
    state: SystemState
    data_feed: ActorRef
    kill_switches: ActorRef
    order_manager: ActorRef
    reconciler: ActorRef
    strategies: Mapping[str, ActorRef]
    strategy_ids: Mapping[str, int]
    orders: OrderStore
    equity: EquityCloses
    switch_records: KillSwitchStore
    corporate_actions: CorporateActionStore | None = None
    events: EventLog | None = None
    metrics: Metrics | None = None
    alert: Publish | None = None
    data_timeout_s: float = 300.0
    strategy_timeout_s: float = 300.0
    order_timeout_s: float = 600.0


@dataclass(slots=True)
class Outcome:
    """How a cycle ended, with what it decided, placed and noted on the way."""

    status: CycleStatus
    reason: str
    raw: dict[str, int] = field(default_factory=dict)
    intents: list[OrderIntentSpec] = field(default_factory=list)
    results: list[OrderResult] = field(default_factory=list)
    funnel: dict[str, dict[str, int]] = field(default_factory=dict)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    regime: str | None = None
    notes: list[str] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CycleState:
    """What the steps of one cycle share; each step reads what earlier ones left."""

    switches: list[SwitchView] = field(default_factory=list)
    blocking: list[SwitchView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    snap: MarketSnapshot | None = None
    report: ReconciliationReport | None = None
    #: The broker's equity once reconcile has read it (0 when the broker was not read).
    equity: float = 0.0
    disputed: set[str] = field(default_factory=set)
    #: Symbols whose split is in the book but not yet in the history: no orders today.
    held_for_actions: set[str] = field(default_factory=set)
    stop_intents: list[OrderIntentSpec] = field(default_factory=list)
    day: DayLoss | None = None
    high_water: HighWater | None = None
    drawdown: float = math.nan
    regime: RegimeDecision | None = None
    enabled: list[str] = field(default_factory=list)
    positions: dict[str, list[HeldPosition]] = field(default_factory=dict)
    answers: list[Signals] = field(default_factory=list)
    pending: list[PendingRow] = field(default_factory=list)
    book: pipeline.Book | None = None
    decided: dict[str, list[pipeline.Decision]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ids: dict[tuple[str, str, str], int] = field(default_factory=dict)
    results: list[OrderResult] = field(default_factory=list)
    outcome: Outcome = field(default_factory=lambda: Outcome(CycleStatus.COMPLETED, ""))

    @property
    def market(self) -> MarketSnapshot:
        assert self.snap is not None, "market_data has not run"
        return self.snap

    @property
    def recon(self) -> ReconciliationReport:
        assert self.report is not None, "reconcile has not run"
        return self.report

    @property
    def market_regime(self) -> RegimeDecision:
        assert self.regime is not None, "regime has not run"
        return self.regime


@dataclass(frozen=True, slots=True)
class CycleContext:
    """One cycle's inputs and shared state; ``plan=True`` writes and submits nothing."""

    deps: CycleDeps
    params: StrategiesParams
    risk: RiskParams
    msg: StartCycle
    plan: bool = False
    #: Set for a forced re-run of a trading date whose cycle completed: exits and stops only.
    entries_blocked: str | None = None
    state: CycleState = field(default_factory=CycleState)

    async def event(self, event: EventType, **fields: Any) -> None:
        """Write ``event`` to the run's event file (not in a plan)."""
        d = self.deps
        if d.events is not None and not self.plan:
            await d.events.write(self.msg.run_id, event, d.clock.now(), **fields)

    async def events(self, entries: Sequence[tuple[EventType, Mapping[str, Any]]]) -> None:
        """Write ``(event, fields)`` entries, in order, to the run's event file (not in a plan)."""
        d = self.deps
        if d.events is not None and not self.plan and entries:
            now = d.clock.now()
            await d.events.write_many(self.msg.run_id, [(e, now, f) for e, f in entries])

    async def trip(self, switch: str, reason: str) -> None:
        """Trip ``switch`` on the board (not in a plan); an event when it was not tripped yet."""
        if self.plan:
            return
        tripped = await self.deps.kill_switches.ask(TripKillSwitch(switch, reason, "risk"))
        if tripped:
            await self.event(EventType.KILL_SWITCH_TRIGGERED, switch=switch, reason=reason)

    async def block(self, switch: str, why: str, *, trip: bool) -> None:
        """Block this cycle's entries by ``switch``; with ``trip``, latch it on the board too."""
        if trip:
            await self.trip(switch, why)
        self.state.blocking.append(SwitchView(switch, why, "risk"))

    def risk_capital(self, name: str) -> float:
        """What strategy ``name`` sizes its risk on: the broker's equity or its own capital."""
        if self.risk.sizing_base == "portfolio" and self.state.equity > 0:
            return self.state.equity
        return float(getattr(self.params, name).capital)

    def stop_multiple(self, name: str) -> float:
        """Strategy ``name``'s catastrophe stop, in ATRs."""
        return self.params.stop_atr_multiple(name, self.risk.loss.stop_atr_multiple)


Step = Callable[[CycleContext], Awaitable[Outcome | None]]


def went_through(result: OrderResult) -> bool:
    """An intent that reached the broker and was not refused (filled, accepted, pending)."""
    if result.status is IntentStatus.REJECTED:
        return False
    return not (result.status is IntentStatus.NEW and result.error)


def last_prices(snap: MarketSnapshot) -> dict[str, float]:
    """Each valid symbol's last finite close (for feeds that give no ``last_prices``)."""
    close = snap.panel.close
    if close.shape[0] == 0:
        return {}
    out: dict[str, float] = {}
    for j, symbol in enumerate(snap.panel.symbols):
        finite = close[:, j][np.isfinite(close[:, j])]
        if finite.size:
            out[symbol] = float(finite[-1])
    return out


__all__ = [
    "CycleContext",
    "CycleDeps",
    "CycleState",
    "Outcome",
    "Publish",
    "Step",
    "last_prices",
    "went_through",
]
