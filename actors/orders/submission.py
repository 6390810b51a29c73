"""Submitting one order intent, resolving it with the broker, booking its fills.

The ``Submitter`` does for the ``OrderManager`` (and, for their own orders, for
the resting stops: it is their ``StopOps``) everything that touches one intent at
the broker. Each step is durable before the next: SUBMITTED is written just
before ``broker.submit``, and fills are booked with ``OrderStore.book_fill``
(trade row, intent, position in one durable transaction), always as the *delta*
between the broker's cumulative filled quantity and the intent's, so polling
twice never books twice.

Submitting
----------
Our own sell of a lot first clears its resting stops (``Gates.clear_the_way``).

- ``BrokerOrder`` back: its status per ``next_status``, fills booked.
- ``DuplicateClientOrderId``: our order exists: look it up and adopt it.
- ``SubmissionOutcomeUnknown`` (or any other broker error): UNKNOWN, then one
  immediate lookup by client id: found, adopt; not found (or the lookup fails),
  it stays UNKNOWN for the next ``SettleOrders`` or start. Never resubmitted
  blindly.
- ``OrderRejected``: REJECTED with the broker's reason.
- ``BrokerUnavailable``: nothing happened; back to NEW with the error
  (reported as status NEW + error, which the CycleRunner counts as a failure).
- ``AccountBlocked``: REJECTED with the error (``is_blocked``: the order manager
  submits nothing more of the batch, nor does a resolution after it).

Resolving a non-terminal intent (on start, on ``SettleOrders``, on a re-run)
---------------------------------------------------------------------------
First ``order_by_client_id``; if that read fails the intent is left as it is.

=========================  ==================================================
local status / broker      what happens
=========================  ==================================================
any, order found           adopt it: status from the broker, new fills booked
NEW, not found             it was never sent (or the crash came before the
                           request left): submit it now
SUBMITTED, not found       the request never created an order (the broker
                           knows every order by this id): back to NEW, submit
UNKNOWN, not found         same: the broker has no order with this id, so
                           submitting it creates the first and only one; if
                           a lost request lands late after all, one of the
                           two is refused as a duplicate and we adopt the other
ACCEPTED/PARTIALLY_FILLED, the broker acknowledged it once and now denies
not found                  it: left as is with error ``missing_at_broker``
                           (a person must look; never resubmitted)
NEW/SUBMITTED/UNKNOWN of   on start and settle only: the session it was meant
an earlier session, not    for is over and today's cycle makes its own
found                      decisions, so it becomes EXPIRED ("stale"), unsent
=========================  ==================================================

"Today" is the New York date of the injected clock. A re-run's explicit
``PlaceOrders`` (``explicit=True``) is not subject to the staleness rule: it
asks for that day.

Booking
-------
A fill the store cannot book (a sell beyond the position, more than ordered)
is not booked: the intent keeps its status with error ``booking_failed`` and a
critical log, and the reconciler's disagreement stops trading until a person
looks; the actor does not crash-loop on it. A resting stop the broker adjusted
(a split) takes the broker's quantity and price.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import structlog

from actors.brokers.base import (
    AccountBlocked,
    Broker,
    BrokerOrder,
    BrokerOrderStatus,
    BrokerUnavailable,
    DuplicateClientOrderId,
    LooksUpManyOrders,
    OrderRejected,
    OrderRequest,
    OrderSide,
    SubmissionOutcomeUnknown,
)
from actors.messages import IntentStatus
from actors.orders.gates import Gates
from actors.orders.intents import next_status
from actors.orders.resting_stops import (
    CANCEL_REQUESTED,
    CANCELED_BY_US,
    MARKET_TZ,
    SAME_PRICE,
    RestingStops,
)
from actors.orders.results import (
    ACCOUNT_BLOCKED,
    BOOKING_FAILED,
    BROKER_ERROR,
    BROKER_UNAVAILABLE,
    MISSING_AT_BROKER,
    NOT_FOUND,
    OUTCOME_UNKNOWN,
    REJECTED,
    STALE,
    is_blocked,
)
from actors.store.orders import IntentRow, NegativePosition, OrderStore, OverFill
from daemon.clock import Clock
from daemon.errors import TradingdError

log = structlog.get_logger()

#: How old a broker answer may be for the resting-stop sync to use it instead of asking.
FRESH_S = 5.0

_RESUBMITTABLE = (IntentStatus.NEW, IntentStatus.SUBMITTED, IntentStatus.UNKNOWN)


class Submitter:
    """Submits, resolves and books one intent at a time (see the module docstring).

    It makes the lots' ``stops`` (``RestingStops``, which it serves as their
    ``StopOps``) and the ``gates`` our sells pass, and lends both to the order manager.
    """

    def __init__(self, orders: OrderStore, broker: Broker, clock: Clock) -> None:
        self._orders = orders
        self._broker = broker
        self._clock = clock
        self.stops = RestingStops(orders, broker, clock, self)
        self.gates = Gates(orders, broker, clock, self.stops, self)
        # The broker's last answer per order, and when: a sync right after a settle reads
        # these instead of asking again (Alpaca allows 200 requests a minute).
        self._seen: dict[str, tuple[dt.datetime, BrokerOrder]] = {}

    # ------------------------------------------------------------ submitting

    async def submit_intent(self, row: IntentRow) -> IntentRow:
        """Mark SUBMITTED (durable), send, and turn the answer or the error into a status.

        Our own sell of a lot first clears its resting stops (``Gates.clear_the_way``).
        """
        iid = row.intent_id
        if row.side == "sell" and not row.resting:
            cleared = await self.gates.clear_the_way(row)
            if cleared is None:
                return await self._orders.get(iid) or row
            row = cleared
        row = await self._orders.update_status(iid, IntentStatus.SUBMITTED, at=self._clock.now())
        request = OrderRequest(
            client_order_id=iid,
            symbol=row.symbol,
            side=OrderSide(row.side),
            qty=row.target_qty,
            stop_price=row.stop_price,
        )
        try:
            order = await self._broker.submit(request)
        except DuplicateClientOrderId:
            log.warning("order_duplicate_adopted", intent_id=iid)
            return await self._lookup(row, missing=(OUTCOME_UNKNOWN, "duplicate id, not found"))
        except SubmissionOutcomeUnknown as exc:
            log.warning("order_outcome_unknown", intent_id=iid, error=str(exc))
            row = await self.set_intent(row, IntentStatus.UNKNOWN, OUTCOME_UNKNOWN, str(exc))
            return await self._lookup(row)
        except OrderRejected as exc:
            log.warning("order_rejected", intent_id=iid, reason=exc.reason)
            return await self.set_intent(row, IntentStatus.REJECTED, REJECTED, exc.reason)
        except BrokerUnavailable as exc:
            log.warning("order_broker_unavailable", intent_id=iid, error=str(exc))
            return await self.set_intent(row, IntentStatus.NEW, BROKER_UNAVAILABLE, str(exc))
        except AccountBlocked as exc:
            log.error("order_account_blocked", intent_id=iid, error=str(exc))
            return await self.set_intent(
                row, IntentStatus.REJECTED, ACCOUNT_BLOCKED, f"account blocked: {exc}"
            )
        except TradingdError as exc:
            # Some other broker failure after the request may have left: treat as unknown.
            log.warning("order_submit_failed", intent_id=iid, error=repr(exc))
            row = await self.set_intent(row, IntentStatus.UNKNOWN, BROKER_ERROR, repr(exc))
            return await self._lookup(row)
        log.info("order_submitted", intent_id=iid, broker_status=str(order.status))
        return await self.apply_order(row, order)

    async def _lookup(self, row: IntentRow, *, missing: tuple[str, str] | None = None) -> IntentRow:
        """One lookup by client id: adopt what is found; otherwise UNKNOWN stays UNKNOWN."""
        try:
            order = await self._broker.order_by_client_id(row.intent_id)
        except TradingdError as exc:
            log.warning("order_lookup_failed", intent_id=row.intent_id, error=repr(exc))
            order = None
        if order is not None:
            return await self.apply_order(row, order)
        if missing is not None:
            return await self.set_intent(row, IntentStatus.UNKNOWN, *missing)
        return row

    # ------------------------------------------------------------ resolving

    async def resolve_all(self) -> list[IntentRow]:
        """Resolve every non-terminal intent (stale ones expire); the intents that changed.

        Once one submitted now finds the account blocked, the rest are not submitted.
        """
        changed: list[IntentRow] = []
        may_submit = True
        rows = await self._orders.open_intents()
        known = await self._orders_of(rows)
        for row in rows:
            new, submitted = await self.resolve(
                row, explicit=False, may_submit=may_submit, known=known
            )
            if submitted and is_blocked(new):
                may_submit = False
            if _differs(row, new):
                changed.append(new)
        return changed

    async def _orders_of(self, rows: list[IntentRow]) -> dict[str, BrokerOrder | None]:
        """The broker's orders of ``rows`` read together, when it can (``LooksUpManyOrders``);
        {} otherwise, or when that read fails (then each is asked alone, as before)."""
        broker = self._broker
        ids = [r.intent_id for r in rows if not r.status.terminal]
        if not ids or not isinstance(broker, LooksUpManyOrders):
            return {}
        try:
            found = await broker.orders_by_client_ids(ids)
        except TradingdError as exc:
            log.warning("order_lookup_failed", intent_id=None, error=repr(exc))
            return {}
        return found or {}

    async def resolve(
        self,
        row: IntentRow,
        *,
        explicit: bool,
        may_submit: bool,
        known: Mapping[str, BrokerOrder | None] | None = None,
    ) -> tuple[IntentRow, bool]:
        """Bring one intent up to date with the broker; True when it was submitted now.

        ``known``: the broker's answers for some intents, read together just before.
        """
        if row.status.terminal:
            return row, False
        if known is not None and row.intent_id in known:
            order = known[row.intent_id]
        else:
            try:
                order = await self._broker.order_by_client_id(row.intent_id)
            except TradingdError as exc:
                log.warning("order_lookup_failed", intent_id=row.intent_id, error=repr(exc))
                return row, False
        if order is not None:
            return await self.apply_order(row, order), False
        if row.status not in _RESUBMITTABLE:
            log.critical("order_missing_at_broker", intent_id=row.intent_id, status=str(row.status))
            message = f"the broker acknowledged this order ({row.status}) and now has no record"
            return await self.set_intent(row, row.status, MISSING_AT_BROKER, message), False
        if not explicit and row.asof < self._today():
            log.warning("order_intent_stale", intent_id=row.intent_id, asof=row.asof.isoformat())
            message = f"never reached the broker and session {row.asof} is over"
            return await self.set_intent(row, IntentStatus.EXPIRED, STALE, message), False
        if not may_submit:
            return row, False
        if row.status is not IntentStatus.NEW:
            # The broker answered that no order with this id exists: it was never created.
            row = await self.set_intent(
                row, IntentStatus.NEW, NOT_FOUND, f"{row.status} but unknown to the broker"
            )
        log.info("order_resubmitting", intent_id=row.intent_id)
        return await self.submit_intent(row), True

    # ------------------------------------------------------------ applying broker state

    async def apply_order(self, row: IntentRow, order: BrokerOrder) -> IntentRow:
        """Take the broker's view of the order: status per ``next_status``, new fills booked."""
        if row.status.terminal:
            return row
        iid = row.intent_id
        if row.resting:
            self._seen[iid] = (self._clock.now(), order)
        if row.resting and _terms_differ(row, order):
            # The broker adjusted the resting stop (a split): its terms are the order's now.
            log.warning(
                "resting_stop_adjusted_at_broker",
                intent_id=iid,
                qty=(row.target_qty, order.qty),
                stop=(row.stop_price, order.stop_price),
            )
            row = await self._orders.set_terms(iid, order.qty, order.stop_price, self._clock.now())
        status = next_status(row.status, order.status, order.filled_qty, row.target_qty)
        delta = order.filled_qty - row.filled_qty
        if delta < 0:
            log.error(
                "order_broker_fills_shrank",
                intent_id=iid,
                booked=row.filled_qty,
                broker=order.filled_qty,
            )
        if delta > 0:
            price = order.filled_avg_price
            if price is None or not price > 0:
                # Cannot book without a price: keep it open, the next poll will.
                log.warning("order_fill_without_price", intent_id=iid, filled=order.filled_qty)
                interim = IntentStatus.PARTIALLY_FILLED if row.filled_qty else IntentStatus.ACCEPTED
                return await self.set_intent(row, interim, None, None, order.broker_order_id)
            booked_value = row.filled_qty * (row.avg_fill_price or 0.0)
            delta_price = (order.filled_qty * price - booked_value) / delta
            if not delta_price > 0:
                delta_price = price
            try:
                new = await self._orders.book_fill(
                    iid,
                    delta,
                    delta_price,
                    status=status,
                    at=self._clock.now(),
                    broker_order_id=order.broker_order_id,
                )
            except (NegativePosition, OverFill) as exc:
                log.critical("order_fill_not_booked", intent_id=iid, error=str(exc))
                return await self.set_intent(
                    row, row.status, BOOKING_FAILED, str(exc), order.broker_order_id
                )
            log.info(
                "order_filled",
                intent_id=iid,
                shares=delta,
                price=delta_price,
                filled_qty=new.filled_qty,
                status=str(new.status),
            )
            return new
        code: str | None = None
        message: str | None = None
        if status is IntentStatus.REJECTED:
            code, message = REJECTED, order.reject_reason or "rejected by the broker"
        elif row.error_code == CANCEL_REQUESTED and order.status is BrokerOrderStatus.CANCELED:
            code, message = CANCELED_BY_US, "cancelled by the daemon"
        elif (
            order.status is BrokerOrderStatus.CANCELED or order.status is BrokerOrderStatus.EXPIRED
        ):
            message = f"{order.status} at the broker"
        if (
            status is row.status
            and order.broker_order_id == row.broker_order_id
            and code == row.error_code
            and message == row.error_message
        ):
            return row
        return await self.set_intent(row, status, code, message, order.broker_order_id)

    async def set_intent(
        self,
        row: IntentRow,
        status: IntentStatus,
        code: str | None,
        message: str | None,
        broker_order_id: str | None = None,
    ) -> IntentRow:
        """Write the intent's status and error (durable)."""
        return await self._orders.update_status(
            row.intent_id,
            status,
            at=self._clock.now(),
            broker_order_id=broker_order_id,
            error_code=code,
            error_message=message,
        )

    # ------------------------------------------------------------ helpers

    def recently_seen(self, intent_id: str) -> BrokerOrder | None:
        """The broker's answer about this resting stop if it came moments ago (``FRESH_S``)."""
        seen = self._seen.pop(intent_id, None)
        if seen is None or (self._clock.now() - seen[0]).total_seconds() > FRESH_S:
            return None
        return seen[1]

    def _today(self) -> dt.date:
        return self._clock.now().astimezone(MARKET_TZ).date()


def _terms_differ(row: IntentRow, order: BrokerOrder) -> bool:
    """Whether the broker's resting stop sells another quantity or at another price."""
    if order.qty != row.target_qty:
        return True
    if order.stop_price is None or row.stop_price is None:
        return False
    return abs(order.stop_price - row.stop_price) > SAME_PRICE


def _differs(old: IntentRow, new: IntentRow) -> bool:
    return (old.status, old.filled_qty, old.error_code, old.error_message) != (
        new.status,
        new.filled_qty,
        new.error_code,
        new.error_message,
    )
