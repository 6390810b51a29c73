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
    """A reloaded, validated configuration (``actors.system.config.Settings``) to take now."""

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
class SwitchView:
    """An active kill switch as the cycle and the risk pipeline see it (the board's answer)."""

    name: str
    reason: str
    source: str


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
    """Run the daily cycle for the session ``asof``.

    A trading date whose cycle completed is done: another ``StartCycle`` for it
    is refused unless ``force``; a forced re-run sends exits and stop checks
    only, never a second round of entries, unless ``allow_entries`` too.
    """

    run_id: str
    asof: dt.date
    trigger: CycleTrigger = CycleTrigger.SCHEDULE
    force: bool = False
    allow_entries: bool = False


@dataclass(frozen=True, slots=True)
class FetchSnapshot:
    """Ask the data feed for a validated snapshot of bars before ``asof``."""

    run_id: str
    asof: dt.date


@dataclass(frozen=True, slots=True)
class FetchCorporateActions:
    """Ask the data feed for the corporate actions of the universe and ``held`` symbols.

    The answer is a ``CorporateActionsReport`` with ex dates in
    ``[asof - lookback_days, asof]``.
    """

    asof: dt.date
    held: tuple[str, ...] = ()
    lookback_days: int = 30


@dataclass(frozen=True, slots=True)
class CorporateActionsReport:
    """The actions a source reported (``actors.market.corporate_actions.CorporateAction``),
    or why it could not be read (the cycle goes on: an unexplained difference at the
    reconciliation still fails closed)."""

    actions: tuple[Any, ...] = ()
    error: str | None = None
    #: action_id -> the symbol's close before a split's ex date, unadjusted (cash in lieu).
    closes_before: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SymbolRejected:
    """A symbol dropped from a cycle by data validation, with the rule it broke."""

    symbol: str
    reason_code: str
    details: str


@dataclass(frozen=True, slots=True)
class LastPrice:
    """A symbol's last good close and the session it is from."""

    price: float
    session: dt.date


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Validated bars through the close of the session before ``asof``, with indicators.

    ``panel`` holds only the symbols fit to trade on; ``last_prices`` holds the
    last good close of *every* universe symbol that has one, rejected ones
    included (bars removed as bad prints excluded), so an open position is
    still checked against its stop when its symbol's data is bad today.
    ``notes`` lists repairs the feed made (a bar removed as a bad print).
    """

    run_id: str
    asof: dt.date
    panel: BarPanel
    indicators: dict[str, Any]
    volatility_index: float | None
    rejected: tuple[SymbolRejected, ...] = ()
    provider: str = ""
    last_prices: dict[str, LastPrice] = field(default_factory=dict)
    volatility_index_date: dt.date | None = None
    notes: tuple[str, ...] = ()


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
    capital: float = 0.0  # the strategy's allocation: caps a position by cash
    risk_capital: float = 0.0  # the base the risk per trade is a share of (0: ``capital``)
    stop_atr_multiple: float = 3.0  # the stop distance sizing assumes (risk or strategy key)


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
    details: dict[str, Any] = field(default_factory=dict)  # regime, heat, equity, daily P&L


# ---------------------------------------------------------------- orders


class IntentKind(StrEnum):
    ENTRY = "ENTRY"
    EXIT = "EXIT"
    STOP = "STOP"
    FLATTEN = "FLATTEN"


class IntentStatus(StrEnum):
    """An order intent's life: NEW -> SUBMITTED -> ACCEPTED -> a terminal state.

    UNKNOWN: a submission whose outcome we did not hear (timeout, connection
    lost); it is resolved by asking the broker for its client order id, never
    by submitting again.
    """

    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    REJECTED = "REJECTED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        return self in (
            IntentStatus.FILLED,
            IntentStatus.REJECTED,
            IntentStatus.CANCELED,
            IntentStatus.EXPIRED,
        )


@dataclass(frozen=True, slots=True)
class OrderIntentSpec:
    """What the CycleRunner wants bought or sold (whole shares, market, day)."""

    strategy: str
    symbol: str
    side: str  # "buy" | "sell"
    qty: int
    kind: IntentKind
    reference_price: float
    atr: float = 0.0
    signal_id: int | None = None
    reason: str = ""
    stop_atr_multiple: float | None = None  # the entry's stop distance in ATRs (None: default)


@dataclass(frozen=True, slots=True)
class PlaceOrders:
    """Write each intent, then submit it (exits before entries, in the given order)."""

    run_id: str
    asof: dt.date
    intents: tuple[OrderIntentSpec, ...]


@dataclass(frozen=True, slots=True)
class OrderResult:
    intent_id: str
    strategy: str
    symbol: str
    side: str
    qty: int
    status: IntentStatus
    filled_qty: int = 0
    avg_price: float | None = None
    error: str | None = None
    existing: bool = False  # the intent already existed (a re-run): nothing new submitted
    error_code: str | None = None  # the order manager's code (e.g. "account_blocked")


@dataclass(frozen=True, slots=True)
class OrderResults:
    run_id: str
    asof: dt.date
    results: tuple[OrderResult, ...]


@dataclass(frozen=True, slots=True)
class Flatten:
    """Operator command: sell every held position, or one strategy's, or one symbol's.

    Allowed while entries are halted: getting out is always possible.
    """

    run_id: str
    asof: dt.date
    target: str | None = None
    reason: str = "operator flatten"


@dataclass(frozen=True, slots=True)
class SettleOrders:
    """Poll every non-terminal intent at the broker and book new fills."""

    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class SyncRestingStops:
    """Bring the protective stops resting at the broker in line with the book.

    One good-till-canceled stop sell per strategy lot, for the lot's shares at its
    stop; placed, replaced, repaired or cancelled as needed (``actors.orders.resting_stops``).
    """

    run_id: str = "sync"


class StopAction(StrEnum):
    """What ``SyncRestingStops`` did about one lot's resting stop."""

    PLACED = "placed"  # a lot without one got its stop
    REPLACED = "replaced"  # the book's stop or quantity changed (a split, a partial exit)
    REPAIRED = "repaired"  # the broker's stop was missing or wrong: put right, and alerted
    CANCELED = "canceled"  # the lot is gone or has no stop any more
    FILLED = "filled"  # the stop sold at the broker: a stop-loss exit, booked
    HELD = "held"  # not touched: the broker holds fewer shares than the book (reconcile first)
    FAILED = "failed"  # the broker refused or did not answer; tried again at the next sync


@dataclass(frozen=True, slots=True)
class RestingStopChange:
    strategy: str
    symbol: str
    action: StopAction
    qty: int
    stop_price: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class RestingStopsReport:
    run_id: str
    #: False when ``orders.broker_stops`` is off (nothing was looked at).
    enabled: bool
    changes: tuple[RestingStopChange, ...] = ()

    @property
    def alerts(self) -> tuple[RestingStopChange, ...]:
        """What the operator must hear of: repairs, held lots, failures."""
        loud = (StopAction.REPAIRED, StopAction.HELD, StopAction.FAILED)
        return tuple(c for c in self.changes if c.action in loud)


# ---------------------------------------------------------------- reconciliation


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Compare local positions and cash with the broker; ``kind`` is START/RECONCILIATION/END."""

    run_id: str | None = None
    kind: str = "RECONCILIATION"


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: str  # "position" | "cash"
    symbol: str | None
    local: float
    broker: float

    @property
    def diff(self) -> float:
        return self.broker - self.local


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    passed: bool
    discrepancies: tuple[Discrepancy, ...]
    local_cash: float
    broker_cash: float
    broker_equity: float
    at: dt.datetime
    error: str | None = None
    can_trade: bool = True  # the account's trading_blocked / account_blocked / suspended flags
    broker_last_equity: float | None = None  # equity at the previous session's close
    #: Symbols whose split is applied here and not yet at the broker (not a mismatch).
    pending_corporate_actions: tuple[str, ...] = ()
    #: Fills at the broker on a disputed symbol that no order of ours explains (trades
    #: the account owner placed by hand), each with the ``tradectl adopt`` that takes it.
    manual_trades: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GetClosingEquity:
    """Ask the reconciler for the account's equity at the close of ``sessions`` (what it knows)."""

    sessions: tuple[dt.date, ...]


@dataclass(frozen=True, slots=True)
class AdoptBrokerState:
    """Operator command: take the broker's positions and cash as the truth (logged)."""

    reason: str
