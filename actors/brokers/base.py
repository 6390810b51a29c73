"""The ``Broker`` protocol and the values and errors every broker speaks.

Quantities are whole shares (``int``); prices are floats in USD. Every order
carries our ``client_order_id`` (the deterministic intent id, at most 48
characters), which is how an order is found again after a crash or a timeout.

Errors say what the caller must do:

- ``BrokerUnavailable`` (temporary): nothing happened; a *read* may be retried.
- ``SubmissionOutcomeUnknown`` (temporary): a submission timed out or the
  connection dropped; the order may or may not exist. Resolve it with
  ``order_by_client_id`` — never by submitting again.
- ``DuplicateClientOrderId``: the broker already has an order with this id,
  so ours exists: adopt it.
- ``OrderRejected``: the broker refused the order (reason given); final.
- ``AccountBlocked`` (operational): trading is blocked on the account; halt.

Account fills: a broker that can list every execution in the account (ours
and trades the owner placed by hand) also implements ``ReportsAccountFills``;
it is a separate protocol so a broker without such a record still is a ``Broker``.
Check with ``isinstance(broker, ReportsAccountFills)``.

Book in one read: a broker that can give its account and its positions as of one
instant (the simulated broker: one settle, one mark of every position) also
implements ``ReadsBook``; the reconciliation uses it when it is there.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from daemon.errors import OperationalError, TemporaryError, TradingdError

MAX_CLIENT_ORDER_ID = 48


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class BrokerOrderStatus(StrEnum):
    """Order states as brokers report them (Alpaca's names, simplified)."""

    NEW = "new"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_BROKER_STATUSES


TERMINAL_BROKER_STATUSES = frozenset(
    {
        BrokerOrderStatus.FILLED,
        BrokerOrderStatus.CANCELED,
        BrokerOrderStatus.EXPIRED,
        BrokerOrderStatus.REJECTED,
    }
)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A market order for whole shares, good for the day; with ``stop_price``, a protective
    stop sell good till canceled (it becomes a market sell once the price reaches it)."""

    client_order_id: str
    symbol: str
    side: OrderSide
    qty: int
    stop_price: float | None = None

    def __post_init__(self) -> None:
        if not self.client_order_id or len(self.client_order_id) > MAX_CLIENT_ORDER_ID:
            raise ValueError(
                f"client_order_id must be 1..{MAX_CLIENT_ORDER_ID} characters: "
                f"{self.client_order_id!r}"
            )
        if self.qty <= 0:
            raise ValueError(f"order qty must be a positive whole number, got {self.qty}")
        if self.stop_price is not None:
            if self.side is not OrderSide.SELL:
                raise ValueError("a stop order here is a protective sell: side must be sell")
            if not (math.isfinite(self.stop_price) and self.stop_price > 0):
                raise ValueError(f"stop price must be positive, got {self.stop_price!r}")


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: OrderSide
    qty: int
    filled_qty: int
    filled_avg_price: float | None
    status: BrokerOrderStatus
    submitted_at: dt.datetime | None = None
    filled_at: dt.datetime | None = None
    reject_reason: str | None = None
    stop_price: float | None = None


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    symbol: str
    qty: int
    avg_entry_price: float
    market_value: float | None = None


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    cash: float
    equity: float
    last_equity: float  # equity at the previous close
    buying_power: float
    trading_blocked: bool = False
    account_blocked: bool = False
    trade_suspended_by_user: bool = False
    #: FINRA's pattern day trader rule, as the broker reports it (Alpaca does).
    pattern_day_trader: bool = False
    daytrade_count: int = 0  # day trades in the last five sessions

    @property
    def can_trade(self) -> bool:
        return not (self.trading_blocked or self.account_blocked or self.trade_suspended_by_user)


@dataclass(frozen=True, slots=True)
class AccountFill:
    """One execution in the account, ours or placed by hand, as the broker recorded it.

    ``activity_id`` is the broker's id of this fill (unique, stable: dedupe by
    it); ``qty`` is the shares of this fill alone (not the order's total);
    ``side`` is ``SELL`` for a short sale too; ``at`` is timezone-aware;
    ``broker_order_id`` is the broker's id of the order filled, when it says.
    """

    activity_id: str
    symbol: str
    side: OrderSide
    qty: int
    price: float
    at: dt.datetime
    broker_order_id: str | None


@dataclass(frozen=True, slots=True)
class MarketClock:
    timestamp: dt.datetime
    is_open: bool
    next_open: dt.datetime
    next_close: dt.datetime


class BrokerError(TradingdError):
    """A broker said no, or said something we cannot use."""


class BrokerUnavailable(TemporaryError):
    """The broker did not answer usefully (timeout, 429, 5xx); nothing changed."""


class SubmissionOutcomeUnknown(TemporaryError):
    """A submission may or may not have reached the broker: look it up by client id."""


class DuplicateClientOrderId(BrokerError):
    """The broker already has an order with this client order id (ours exists: adopt it)."""


class OrderRejected(BrokerError):
    """The broker refused the order; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccountBlocked(OperationalError):
    """Trading is blocked on the account (trading_blocked, account_blocked, suspended)."""


@runtime_checkable
class Broker(Protocol):
    name: str

    async def account(self) -> BrokerAccount: ...

    async def positions(self) -> list[BrokerPosition]: ...

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder | None: ...

    async def submit(self, request: OrderRequest) -> BrokerOrder: ...

    async def cancel(self, client_order_id: str) -> None: ...

    async def clock(self) -> MarketClock: ...

    async def closing_equity(self, sessions: Sequence[dt.date]) -> dict[dt.date, float]:
        """Account equity at the close of each of ``sessions`` it can tell (others omitted)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class ReportsAccountFills(Protocol):
    """A broker that can list the account's fills, manual trades included."""

    async def account_fills(self, since: dt.datetime) -> list[AccountFill]:
        """Every fill at or after ``since`` (timezone-aware), oldest first."""
        ...


@runtime_checkable
class LooksUpManyOrders(Protocol):
    """A broker that answers for many orders at once, as of one instant."""

    async def orders_by_client_ids(
        self, client_order_ids: Sequence[str]
    ) -> dict[str, BrokerOrder | None] | None:
        """``order_by_client_id`` of each id, read together; None: ask one by one."""
        ...


@runtime_checkable
class ReadsBook(Protocol):
    """A broker that reads its account and positions in one step, as of one instant."""

    async def book(self) -> tuple[BrokerAccount, list[BrokerPosition]]:
        """``account()`` and ``positions()``, read together."""
        ...
