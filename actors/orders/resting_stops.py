"""Protective stops resting at the broker: one good-till-canceled stop sell per lot.

The daily cycle checks each position's catastrophe stop once, before the open, on
the last close. Between cycles (a gap down, a crash day, the daemon or the VPS
down) only an order resting at the broker protects the position. So, with
``orders.broker_stops`` on, every strategy lot (a strategy's shares of a symbol)
has one stop sell at the broker for its shares at its stop price; two strategies
holding a symbol have one each, and together they never sell more than is held.

What keeps it right (``RestingStops``, used by the ``OrderManager``)
--------------------------------------------------------------------
- A stop is an order intent (kind STOP, ``stop_price`` set) with a deterministic
  id (``intents.resting_stop_id``), written durable *before* it is sent: a crash
  at any instant leaves either no row (nothing was sent) or a row a restart looks
  up by id. The broker refuses a second order with that id. So a restart never
  places two.
- A stop is changed by cancelling it, *confirmed* (the broker reports it
  cancelled, or filled), and only then placing the next one; a cancel the broker
  does not confirm leaves the lot as it is and is tried again. At no instant do
  the resting sells exceed what is held.
- Before the daemon sends its own sell of a lot (an exit, a stop-loss, a
  flatten) the order manager cancels the lot's stop, confirmed, and sizes the
  sell on what is still held: if the stop sold first, nothing is sold on top.
- ``sync`` (each cycle after placing, after each poll of the orders, at start):
  each resting stop is looked up at the broker; a fill is booked as a stop-loss
  exit (trade, position, cash); then each lot's stop is compared with the book:
  missing, wrong quantity or price, two of them, or one for a lot that is gone —
  each put right. A stop the broker adjusted for a split and that now matches
  the book is kept (and adopted). A lot the broker holds fewer shares of than the
  book (a split not yet applied there, an unreconciled difference) is left as it
  is: a stop sized on the book would be refused, or sell short.

What the operator sees: every change is a ``RestingStopChange`` (placed,
replaced, repaired, cancelled, filled, held, failed); repairs, held lots and
failures are alerts; the cycle's summary, ``tradectl status`` and the digest
show each position's resting stop.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog

from actors.brokers.base import Broker, BrokerOrder
from actors.market.ticks import stop_tick
from actors.messages import IntentKind, IntentStatus, RestingStopChange, StopAction
from actors.orders.intents import resting_stop_id
from actors.orders.limits import Breach, account_day_trade_breach
from actors.store.orders import IntentRow, OrderStore
from daemon.clock import Clock
from daemon.errors import TradingdError

log = structlog.get_logger()

MARKET_TZ = ZoneInfo("America/New_York")

#: Prices within a tick (a cent) are the same stop: a broker that adjusted a stop for a
#: split rounds to its tick its own way, and a cent is no reason to cancel and replace.
SAME_PRICE = 0.0101
#: ... or within 5 basis points of it, whichever is wider.
SAME_SHARE = 0.0005

# error_code values written to order_intents by this module (and the manager, for ours)
MISSING_AT_BROKER = "missing_at_broker"
CANCEL_REQUESTED = "cancel_requested"  # the daemon asked for the cancel (durable, before)
CANCELED_BY_US = "canceled_by_daemon"  # ... and the broker confirmed it
WITHDRAWN = "withdrawn"
STALE = "stale"

Key = tuple[int, str]  # (strategy_id, symbol)
_UNSENT = (IntentStatus.NEW, IntentStatus.SUBMITTED, IntentStatus.UNKNOWN)


@dataclass(frozen=True, slots=True)
class Want:
    """The stop a lot should have at the broker."""

    qty: int
    stop: float


@dataclass(frozen=True, slots=True)
class Seen:
    """One resting stop after looking it up: its row, and the terms we placed and the
    broker has (remaining shares, stop price); ``broker`` None when it is not resting."""

    row: IntentRow
    placed: tuple[int, float | None]
    broker: tuple[int, float | None] | None


def lost_at_broker(row: IntentRow) -> bool:
    """Whether a stop ended without the daemon's cancel and without a fill: the broker
    cancelled it (a reverse split, the owner in the broker's app) or lost it."""
    if row.error_code == MISSING_AT_BROKER:
        return True
    return row.status is IntentStatus.CANCELED and row.error_code != CANCELED_BY_US


def want_for(shares: int, stop: float | None) -> Want | None:
    """The stop a lot of ``shares`` with book stop ``stop`` should have (None: no stop)."""
    if shares <= 0 or stop is None or not (math.isfinite(stop) and stop > 0):
        return None
    return Want(shares, stop_tick(stop))


def matches(want: Want, terms: tuple[int, float | None] | None) -> bool:
    """Whether a resting stop's (shares, stop price) is ``want``: the same shares, and a
    price within a tick or ``SAME_SHARE`` of it (a stop a broker multiplied by 10 at a
    reverse split carries ten times the rounding of the price it was placed at)."""
    if terms is None or terms[1] is None:
        return False
    close_enough = max(SAME_PRICE, SAME_SHARE * want.stop)
    return terms[0] == want.qty and abs(terms[1] - want.stop) <= close_enough


def judge(want: Want | None, live: Sequence[Seen], vanished: bool) -> StopAction | None:
    """What a lot's resting stops need (None: they are right as they are).

    ``live``: the lot's stops still resting; ``vanished``: one we had is gone at
    the broker without our cancel (cancelled there, or unknown to it).
    """
    if want is None:
        return StopAction.CANCELED if live else None
    if not live:
        return StopAction.REPAIRED if vanished else StopAction.PLACED
    if len(live) == 1 and matches(want, live[0].broker):
        return None
    if len(live) == 1 and live[0].broker == live[0].placed:
        return StopAction.REPLACED  # ours as we placed it: the book changed
    return StopAction.REPAIRED


class StopOps(Protocol):
    """What the order manager lends ``RestingStops``: its submit and its reading of orders."""

    async def submit_intent(self, row: IntentRow) -> IntentRow: ...

    async def apply_order(self, row: IntentRow, order: BrokerOrder) -> IntentRow: ...

    async def set_intent(
        self, row: IntentRow, status: IntentStatus, code: str | None, message: str | None
    ) -> IntentRow: ...

    def recently_seen(self, intent_id: str) -> BrokerOrder | None:
        """The broker's answer about this order if it came moments ago (no second lookup)."""
        ...


@dataclass(slots=True)
class _Lot:
    strategy: str
    shares: int
    stop: float | None
    bought_today: bool = False


class RestingStops:
    """Keeps one protective stop per lot resting at the broker (see the module docstring)."""

    def __init__(
        self,
        orders: OrderStore,
        broker: Broker,
        clock: Clock,
        ops: StopOps,
    ) -> None:
        self._orders = orders
        self._broker = broker
        self._clock = clock
        self._ops = ops

    # ------------------------------------------------------------ sync

    async def sync(self, run_id: str) -> list[RestingStopChange]:
        """Look every resting stop up, book its fills, and put every lot's stop right."""
        changes: list[RestingStopChange] = []
        live = await self._refresh_all(changes)
        lots = await self._lots()
        # Only a lot without a live stop can have lost one (the last it had).
        vanished = await self._vanished([k for k, _ in lots if k not in live])
        try:
            at_broker = {p.symbol: p.qty for p in await self._broker.positions()}
        except TradingdError as exc:
            why = f"broker positions unreadable: {exc}"
            return changes + [self._change(k, lot, StopAction.FAILED, why) for k, lot in lots]
        book: dict[str, int] = {}
        for (_, symbol), lot in lots:
            book[symbol] = book.get(symbol, 0) + lot.shares
        exiting = {
            (r.strategy_id, r.symbol)
            for r in await self._orders.open_intents()
            if r.side == "sell" and not r.resting
        }
        lot_by_key = dict(lots)
        pdt = await self._day_trades_left(lots)
        for key in sorted(set(lot_by_key) | set(live)):
            if key in exiting:
                continue  # our own sell is on its way; its cancel-first gate took the stop
            change = await self._sync_lot(
                run_id,
                key,
                lot_by_key.get(key),
                live.get(key, []),
                vanished=key in vanished,
                shares=(book.get(key[1], 0), at_broker.get(key[1], 0)),
                pdt=pdt,
            )
            if change is not None:
                changes.append(change)
        for change in changes:
            log.info("resting_stop_" + str(change.action), **_fields(change))
        return changes

    async def _sync_lot(
        self,
        run_id: str,
        key: Key,
        lot: _Lot | None,
        live: list[Seen],
        *,
        vanished: bool,
        shares: tuple[int, int],
        pdt: Breach | None = None,
    ) -> RestingStopChange | None:
        """One lot: ``shares`` is (the book's, the broker's) of its symbol, all lots;
        ``pdt``: why a stop on a buy of today must wait for the next session, if it must."""
        want = None if lot is None else want_for(lot.shares, lot.stop)
        if any(s.broker is None for s in live):
            return None  # a stop whose state the broker did not tell: next time
        action = judge(want, live, vanished)
        if action is None:
            return None
        name = lot.strategy if lot is not None else live[0].row.strategy
        symbol = key[1]
        if action is not StopAction.CANCELED and pdt is not None and lot and lot.bought_today:
            why = (
                f"a stop that sold today's buy would be a day trade, and the account has none"
                f" left ({pdt.describe()}): the stop is placed at the next session"
            )
            return RestingStopChange(name, symbol, StopAction.HELD, 0, None, why)
        if action is not StopAction.CANCELED and shares[0] > shares[1]:
            why = (
                f"the broker holds {shares[1]} {symbol}, the book {shares[0]}:"
                " stops left as they are until they agree"
            )
            return RestingStopChange(name, symbol, StopAction.HELD, 0, None, why)
        if live:
            why_not = await self.cancel_confirmed([s.row for s in live])
            if why_not is not None:
                return RestingStopChange(name, symbol, StopAction.FAILED, 0, None, why_not)
            lot = dict(await self._lots()).get(key)  # a stop may have filled meanwhile
            want = None if lot is None else want_for(lot.shares, lot.stop)
        detail = _detail(action, want, live, vanished)
        if want is None:
            return RestingStopChange(name, symbol, action, 0, None, detail)
        row = await self._place(run_id, key, name, want)
        if row.status is IntentStatus.ACCEPTED or row.status is IntentStatus.FILLED:
            return RestingStopChange(name, symbol, action, want.qty, want.stop, detail)
        why = f"stop {want.qty} @ {want.stop:.2f}: {row.status} {row.error_message or ''}".strip()
        return RestingStopChange(name, symbol, StopAction.FAILED, want.qty, want.stop, why)

    # ------------------------------------------------------------ cancelling

    async def cancel_confirmed(self, rows: Sequence[IntentRow]) -> str | None:
        """Cancel each stop and confirm it is over at the broker; None when all are, else why not.

        A stop that filled meanwhile is booked (its fill is a stop-loss exit) and counts
        as over; one still working after the cancel is not confirmed.
        """
        for given in rows:
            row = given
            if row.status not in _UNSENT:
                # Durable before the request: a broker-side cancel is told apart from ours.
                row = await self._ops.set_intent(
                    row, row.status, CANCEL_REQUESTED, "cancel requested by the daemon"
                )
            try:
                await self._broker.cancel(row.intent_id)
                order = await self._broker.order_by_client_id(row.intent_id)
            except TradingdError as exc:
                return f"cancel of resting stop {row.intent_id} not confirmed: {exc}"
            if order is None:
                if row.status in _UNSENT:
                    message = "withdrawn before it reached the broker"
                    await self._ops.set_intent(row, IntentStatus.EXPIRED, WITHDRAWN, message)
                else:
                    message = "no longer at the broker"
                    await self._ops.set_intent(
                        row, IntentStatus.CANCELED, MISSING_AT_BROKER, message
                    )
                continue
            after = await self._ops.apply_order(row, order)
            if not after.status.terminal:
                return f"resting stop {row.intent_id} still {order.status} after its cancel"
            log.info(
                "resting_stop_cancel_confirmed", intent_id=row.intent_id, status=str(after.status)
            )
        return None

    # ------------------------------------------------------------ reading

    async def _refresh_all(self, changes: list[RestingStopChange]) -> dict[Key, list[Seen]]:
        """Every open resting stop looked up: the live ones by lot."""
        live: dict[Key, list[Seen]] = {}
        for row in await self._orders.resting_stops():
            key = (row.strategy_id, row.symbol)
            seen = await self._refresh(row)
            after = seen.row
            if after.filled_qty > row.filled_qty:
                changes.append(
                    RestingStopChange(
                        after.strategy,
                        after.symbol,
                        StopAction.FILLED,
                        after.filled_qty - row.filled_qty,
                        after.avg_fill_price,
                        f"stop {row.stop_price or 0:.2f} sold at the broker at"
                        f" {after.avg_fill_price or 0:.2f}: a stop-loss exit",
                    )
                )
            if not after.status.terminal:
                live.setdefault(key, []).append(seen)
        return live

    async def _vanished(self, keys: Sequence[Key]) -> set[Key]:
        """The lots of ``keys`` whose last stop the broker cancelled or lost (now, or at a
        settle before)."""
        vanished: set[Key] = set()
        for key in keys:
            last = await self._orders.last_resting_stop(*key)
            if last is not None and lost_at_broker(last):
                vanished.add(key)
        return vanished

    async def _refresh(self, row: IntentRow) -> Seen:
        """One resting stop brought up to date with the broker (sent now if it never was)."""
        placed = (row.remaining_qty, row.stop_price)
        try:
            order = self._ops.recently_seen(row.intent_id)
            if order is None:
                order = await self._broker.order_by_client_id(row.intent_id)
        except TradingdError as exc:
            log.warning("resting_stop_lookup_failed", intent_id=row.intent_id, error=repr(exc))
            return Seen(row, placed, None)
        if order is not None:
            broker = (max(0, order.qty - order.filled_qty), order.stop_price)
            after = await self._ops.apply_order(row, order)
            return Seen(after, placed, broker)
        if row.status not in _UNSENT:
            log.critical("resting_stop_missing_at_broker", intent_id=row.intent_id)
            message = f"the broker acknowledged this stop ({row.status}) and now has no record"
            after = await self._ops.set_intent(
                row, IntentStatus.CANCELED, MISSING_AT_BROKER, message
            )
            return Seen(after, placed, None)
        if row.asof < self._today():
            message = f"never reached the broker and session {row.asof} is over"
            after = await self._ops.set_intent(row, IntentStatus.EXPIRED, STALE, message)
            return Seen(after, placed, None)
        after = await self._ops.submit_intent(row)  # written, then the crash: send it now
        resting = after.status is IntentStatus.ACCEPTED
        return Seen(after, placed, (after.remaining_qty, after.stop_price) if resting else None)

    async def _lots(self) -> list[tuple[Key, _Lot]]:
        """Every open lot in the book: (strategy_id, symbol) -> strategy, shares, stop."""
        lots: list[tuple[Key, _Lot]] = []
        today = self._today().isoformat()
        for r in await self._orders.positions():
            shares = int(r["shares"] or 0)
            if shares > 0:
                stop = r["stop_price"]
                lot = _Lot(
                    str(r["strategy"]),
                    shares,
                    None if stop is None else float(stop),
                    bought_today=str(r["entry_date"] or "") == today,
                )
                lots.append(((int(r["strategy_id"]), str(r["symbol"])), lot))
        return lots

    async def _day_trades_left(self, lots: list[tuple[Key, _Lot]]) -> Breach | None:
        """Why a stop on today's buys must wait (the pattern-day-trader rule), if it must."""
        if not any(lot.bought_today for _, lot in lots):
            return None
        return await account_day_trade_breach(self._broker)

    # ------------------------------------------------------------ placing

    async def _place(self, run_id: str, key: Key, strategy: str, want: Want) -> IntentRow:
        """Write the lot's next stop (durable, deterministic id), then send it."""
        strategy_id, symbol = key
        today = self._today()
        n = await self._orders.resting_stop_count(today, strategy_id, symbol) + 1
        row, _ = await self._orders.create_intent(
            intent_id=resting_stop_id(today, strategy, symbol, n),
            run_id=run_id,
            asof=today,
            strategy_id=strategy_id,
            strategy=strategy,
            symbol=symbol,
            side="sell",
            qty=want.qty,
            kind=IntentKind.STOP,
            reference_price=want.stop,
            reason=f"protective stop {want.stop:.2f} resting at the broker",
            stop_price=want.stop,
            at=self._clock.now(),
        )
        if row.status is IntentStatus.NEW:
            row = await self._ops.submit_intent(row)
        return row

    # ------------------------------------------------------------ helpers

    def _today(self) -> dt.date:
        return self._clock.now().astimezone(MARKET_TZ).date()

    @staticmethod
    def _change(key: Key, lot: _Lot, action: StopAction, detail: str) -> RestingStopChange:
        return RestingStopChange(lot.strategy, key[1], action, lot.shares, lot.stop, detail)


def _detail(action: StopAction, want: Want | None, live: Sequence[Seen], vanished: bool) -> str:
    """Why a lot's stop changed, in the operator's words."""
    target = "none" if want is None else f"{want.qty} @ {want.stop:.2f}"
    before = ", ".join(_terms(s.broker) for s in live) or "none"
    if action is StopAction.PLACED:
        return f"stop {target} placed"
    if action is StopAction.CANCELED:
        return f"lot closed or without a stop: resting {before} cancelled"
    if action is StopAction.REPLACED:
        return f"book changed: resting {before} replaced by {target}"
    gone = "a resting stop was cancelled or lost at the broker; " if vanished else ""
    return f"{gone}broker had {before}, book wants {target}: put right"


def _terms(terms: tuple[int, float | None] | None) -> str:
    if terms is None:
        return "?"
    qty, stop = terms
    return f"{qty} @ {stop:.2f}" if stop is not None else f"{qty} @ ?"


def _fields(change: RestingStopChange) -> dict[str, object]:
    return {
        "strategy": change.strategy,
        "symbol": change.symbol,
        "qty": change.qty,
        "stop_price": change.stop_price,
        "detail": change.detail,
    }
