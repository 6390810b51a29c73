"""The simulated broker: a cash account that fills market orders at the session open.

It behaves like Alpaca where the rest of tradingd can tell the difference, and
keeps its whole book in the store (``actors.store.sim_broker``): a new
``SimBroker`` on the same database after a crash sees every order, fill,
position and the cash exactly. What is kept in memory only saves work and is
never the truth: the book's reads until the next write to their table (the
store's ``ReadCache``), and the resting stops known untouched until a time
(below); a restart starts without them and reads the tables.

Cost: a call costs what changed since the last one. A resting stop is looked at
when its session opens and once it has closed (not again while its known open
left it untouched, see ``PriceSource``); the positions are marked with one
lookup per session for all of them when the price source can (``KnowsManyCloses``);
``book()`` reads the account and the positions after one settle.

Orders
------
- **Ids.** A client order id is unique forever: reusing one (even after the
  first order filled, expired or was canceled) raises ``DuplicateClientOrderId``.
  As at Alpaca, a submission refused outright (``OrderRejected``,
  ``AccountBlocked``) creates no order and so does not use the id up.
  ``broker_order_id`` is ``"sim-"`` + the first 16 hex digits of
  ``sha256(client_order_id)``.
- **Checks, in this order:** duplicate id; ``trading_blocked`` (``AccountBlocked``);
  a sell for more than the position less the shares of accepted sells not yet
  filled (``"insufficient qty available ..."``, no shorting); a buy whose cost
  (``apply_costs``: price + slippage, plus commission) exceeds cash less the
  estimated cost of accepted buys not yet filled (``"insufficient buying power ..."``).
  The price of that estimate is the trade session's open if known, else the
  latest known close; a symbol with neither is rejected (``"no price known ..."``).
- **Trade session** (the session whose open the order fills at), from the
  exchange-local time of ``clock.now()``: on a non-session day, the next session;
  on a session day before its close, that day (during market hours this fills at
  *today's* open: a daily system's documented approximation); after the close,
  the next session.
- **Fill.** The order is stored ACCEPTED and, in the same transaction, FILLED if
  ``prices.open_price(symbol, trade_session)`` is known: at
  ``apply_costs(...).exec_price``, ``filled_at`` = the session's open time, cash
  and position updated (average entry price weighted by fill price). Otherwise it
  stays ACCEPTED and ``settle()`` fills it once the price is known; a buy that
  fills later above its estimate may take the cash below zero, as a gap would.
- **Expiry.** An ACCEPTED order whose open price is still unknown once the
  *next* session after its trade session has opened is EXPIRED (a day order that
  never traded). The grace until that open lets a daily-bar feed, which learns a
  session's open only after its close, still fill it.
- ``settle()`` runs at the start of every call (``submit``, ``order_by_client_id``,
  ``positions``, ``account``, ``cancel``, ``closing_equity``); resting stops
  first, then market orders, each in submission order and each group in one
  transaction. A sell that no longer
  has the shares when it fills (``adjust_position`` took them) is REJECTED with
  a reason.
- ``cancel``: ACCEPTED -> CANCELED; a terminal or unknown order is left alone.

Valuation
---------
- A position is marked at the close of the most recent session whose close time
  has passed (exchange time) and whose close the price source knows, looking
  back at most ``MARK_LOOKBACK_SESSIONS`` sessions; else at its average entry
  price. A close is never used before its session has closed, so a backtest
  whose price source knows the future does not see it.
- ``equity`` = cash + sum of qty x mark; ``buying_power`` = cash.
- ``last_equity`` is the equity at the close of the *reference session*: the
  last session strictly before the exchange-local date of now (Alpaca's
  "previous trading day"). The first ``account()`` call that sees a reference
  session later than the stored one computes it and persists it in
  ``sim_account.last_equity`` (with the session, see ``actors.store.sim_broker``):
  cash and positions as they stood at that close (fills whose trade session is
  later are backed out, so reading before or after today's fills gives the same
  number), marked at that session's closes. If a held symbol's close for that
  session is not known yet, the value (marked at older closes or the entry
  price) is returned but not persisted, and the next call tries again.
  ``adjust_position`` and ``reset`` are not backed out: they count as having
  happened before the reference close. A new account's ``last_equity`` is its
  initial cash until the first snapshot.
- ``closing_equity(sessions)`` values the book the same way at the close of
  each asked session whose close time has passed and whose close the price
  source knows for every symbol held at that close; other sessions (not closed
  yet, not a session, a close unknown) are omitted, never estimated. The
  session of the ``last_equity`` snapshot answers with the snapshot, so both
  reads agree. As for ``last_equity``, ``adjust_position`` and ``reset`` count
  as having happened before every close asked about (the book has no history
  of them), so sessions before a ``reset`` are valued as the fresh account.

Operator and test hooks: ``set_trading_blocked``, ``adjust_position`` (a
position changed behind our back), ``reset`` (a fresh account: the book,
including order history and so used ids, is wiped).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol, runtime_checkable

from actors.brokers import sim_actions, sim_stops
from actors.brokers.base import (
    AccountBlocked,
    BrokerAccount,
    BrokerOrder,
    BrokerOrderStatus,
    BrokerPosition,
    DuplicateClientOrderId,
    MarketClock,
    OrderRejected,
    OrderRequest,
    OrderSide,
)
from actors.brokers.costs import COMMISSION_PER_SHARE, apply_costs
from actors.market.calendar import ExchangeCalendar, trading_date
from actors.store.sim_broker import (
    SimAccountRow,
    SimActionRow,
    SimBrokerStore,
    SimBrokerWriter,
    SimOrderRow,
    SimPositionRow,
)
from daemon.clock import Clock
from daemon.store.core import Store

MARK_LOOKBACK_SESSIONS = 10
#: How many sessions one call checks a resting stop over (a long outage: the next call goes on).
MAX_STOP_SESSIONS_PER_SETTLE = 400

_ACCEPTED = BrokerOrderStatus.ACCEPTED.value


class PriceSource(Protocol):
    """Daily open and close prices; None means "not known yet".

    A price once known stays known and does not change (a resting stop that did not
    trigger at a session's known open is not looked at again before that session's close).
    """

    async def open_price(self, symbol: str, session: dt.date) -> float | None: ...

    async def close_price(self, symbol: str, session: dt.date) -> float | None: ...


@runtime_checkable
class KnowsLows(Protocol):
    """A price source that also knows each session's low (once the session has closed)."""

    async def low_price(self, symbol: str, session: dt.date) -> float | None: ...


@runtime_checkable
class KnowsManyCloses(Protocol):
    """A price source that looks up many symbols' closes of one session at once."""

    async def close_prices(self, symbols: Sequence[str], session: dt.date) -> list[float | None]:
        """``close_price`` of each of ``symbols``, in that order."""
        ...


def sim_broker_order_id(client_order_id: str) -> str:
    """The simulated broker's deterministic order id for ``client_order_id``."""
    return "sim-" + hashlib.sha256(client_order_id.encode()).hexdigest()[:16]


def _accepted(request: OrderRequest, trade: dt.date, now: dt.datetime) -> SimOrderRow:
    """The stored row of a newly accepted order (a stop carries its stop price)."""
    return SimOrderRow(
        client_order_id=request.client_order_id,
        broker_order_id=sim_broker_order_id(request.client_order_id),
        symbol=request.symbol,
        side=request.side.value,
        qty=request.qty,
        filled_qty=0,
        filled_avg_price=None,
        status=_ACCEPTED,
        trade_date=trade,
        submitted_at=now,
        stop_price=request.stop_price,
    )


def _broker_positions(held: list[SimPositionRow], marks: list[float]) -> list[BrokerPosition]:
    """``held`` as the broker reports positions, each valued at its mark."""
    return [
        BrokerPosition(
            symbol=p.symbol,
            qty=p.qty,
            avg_entry_price=p.avg_entry_price,
            market_value=p.qty * mark,
        )
        for p, mark in zip(held, marks, strict=True)
    ]


def _to_broker_order(row: SimOrderRow) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=row.client_order_id,
        broker_order_id=row.broker_order_id,
        symbol=row.symbol,
        side=OrderSide(row.side),
        qty=row.qty,
        filled_qty=row.filled_qty,
        filled_avg_price=row.filled_avg_price,
        status=BrokerOrderStatus(row.status),
        submitted_at=row.submitted_at,
        filled_at=row.filled_at,
        reject_reason=row.reject_reason,
        stop_price=row.stop_price,
    )


class SimBroker:
    """A simulated cash account behind the ``Broker`` protocol; all state in the store."""

    name = "sim"

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        calendar: ExchangeCalendar,
        prices: PriceSource,
        initial_cash: float = 100_000.0,
        actions: object | None = None,
    ) -> None:
        """``actions``: where corporate actions come from (``ReportsCorporateActions``;
        ``None`` or a source without them: none are applied)."""
        if not initial_cash >= 0:
            raise ValueError(f"initial cash must be >= 0, got {initial_cash}")
        self._book = SimBrokerStore(store)
        self._clock = clock
        self._calendar = calendar
        self._prices = prices
        self._many_closes = prices if isinstance(prices, KnowsManyCloses) else None
        self._initial_cash = initial_cash
        self._actions = actions
        self._actions_checked: dt.date | None = None
        # Resting stops known untouched until a time (``_settle_stops``); memory only:
        # a pure function of its key and the prices, so a restart just looks again.
        self._quiet: dict[sim_stops.QuietKey, dt.datetime] = {}
        # Serialises operations of this broker: each reads the book, asks the
        # price source, then writes; nothing else writes the sim_* tables.
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------ Broker protocol

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        """Accept a market day order and fill it at once if its open price is known."""
        async with self._lock:
            await self._settle()
            now = self._clock.now()
            account = await self._account_row()
            if await self._book.order(request.client_order_id) is not None:
                raise DuplicateClientOrderId(
                    f"client order id {request.client_order_id!r} is already in use"
                )
            if account.trading_blocked:
                raise AccountBlocked("trading is blocked on the simulated account")
            position = await self._book.position(request.symbol)
            pending = await self._book.orders(status=_ACCEPTED)
            if request.stop_price is not None:
                return await self._rest_stop(request, position, pending, now)
            trade = self._trade_session(now)
            open_price = await self._prices.open_price(request.symbol, trade)
            if request.side is OrderSide.SELL:
                self._check_qty(request, position, pending)
            else:
                await self._check_buying_power(request, account, pending, open_price, now)
            order = _accepted(request, trade, now)
            async with self._book.write(now) as w:
                await w.insert_order(order)
                if open_price is not None:
                    order, _ = await self._fill(w, order, open_price, position)
            return _to_broker_order(order)

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        """The order with this client id (after settling), or None."""
        async with self._lock:
            await self._settle()
            row = await self._book.order(client_order_id)
            return None if row is None else _to_broker_order(row)

    async def orders_by_client_ids(
        self, client_order_ids: Sequence[str]
    ) -> dict[str, BrokerOrder | None]:
        """``order_by_client_id`` of each id after one settle (a cycle asks for every
        open intent's order: one settle each made a session's cost grow with the square
        of the resting stops held)."""
        async with self._lock:
            await self._settle()
            out: dict[str, BrokerOrder | None] = {}
            for cid in client_order_ids:
                row = await self._book.order(cid)
                out[cid] = None if row is None else _to_broker_order(row)
            return out

    async def cancel(self, client_order_id: str) -> None:
        """Cancel an ACCEPTED order; a filled, closed or unknown order is left as it is."""
        async with self._lock:
            await self._settle()
            row = await self._book.order(client_order_id)
            if row is None or row.status != _ACCEPTED:
                return
            async with self._book.write(self._clock.now()) as w:
                await w.update_order(client_order_id, status=BrokerOrderStatus.CANCELED.value)

    async def positions(self) -> list[BrokerPosition]:
        """Open positions (after settling), by symbol, with their market value at the mark."""
        async with self._lock:
            await self._settle()
            held = await self._book.positions()
            return _broker_positions(held, await self._marks(held, self._clock.now()))

    async def account(self) -> BrokerAccount:
        """Cash, equity at the marks, and the equity at the previous session's close."""
        async with self._lock:
            await self._settle()
            held = await self._book.positions()
            return await self._account_now(held, await self._marks(held, self._clock.now()))

    async def book(self) -> tuple[BrokerAccount, list[BrokerPosition]]:
        """``account()`` and ``positions()`` after one settle, every position marked once."""
        async with self._lock:
            await self._settle()
            held = await self._book.positions()
            marks = await self._marks(held, self._clock.now())
            return await self._account_now(held, marks), _broker_positions(held, marks)

    async def _account_now(
        self, positions: list[SimPositionRow], marks: list[float]
    ) -> BrokerAccount:
        """The account with ``positions`` at ``marks`` (persisting a due last_equity snapshot)."""
        now = self._clock.now()
        account = await self._account_row()
        equity = account.cash
        for p, mark in zip(positions, marks, strict=True):
            equity += p.qty * mark
        last_equity = account.last_equity
        reference = self._calendar.previous_session(self._today(now))
        snapshot_of = await self._book.last_equity_session()
        if snapshot_of is None or reference > snapshot_of:
            value, complete = await self._equity_at_close(reference, account.cash, positions)
            if complete:
                async with self._book.write(now) as w:
                    await w.set_last_equity(value, reference)
            last_equity = value
        return BrokerAccount(
            cash=account.cash,
            equity=equity,
            last_equity=last_equity,
            buying_power=account.cash,
            trading_blocked=account.trading_blocked,
        )

    async def closing_equity(self, sessions: Sequence[dt.date]) -> dict[dt.date, float]:
        """Equity at the close of each of ``sessions`` that has closed with every close known."""
        async with self._lock:
            await self._settle()
            now = self._clock.now()
            closed = sorted({s for s in sessions if self._has_closed(s, now)})
            if not closed:
                return {}
            account = await self._account_row()
            positions = await self._book.positions()
            snapshot_of = await self._book.last_equity_session()
            result: dict[dt.date, float] = {}
            for session in closed:
                if session == snapshot_of:
                    result[session] = account.last_equity
                    continue
                value, complete = await self._equity_at_close(session, account.cash, positions)
                if complete:
                    result[session] = value
            return result

    async def clock(self) -> MarketClock:
        """Market hours from the exchange calendar at ``clock.now()``."""
        now = self._clock.now()
        today = self._today(now)
        cal = self._calendar
        if cal.is_session(today):
            opens, closes = cal.session_open(today), cal.session_close(today)
            if now < opens:
                return MarketClock(timestamp=now, is_open=False, next_open=opens, next_close=closes)
            if now < closes:
                following = cal.next_session(today)
                return MarketClock(
                    timestamp=now,
                    is_open=True,
                    next_open=cal.session_open(following),
                    next_close=closes,
                )
        following = cal.next_session(today)
        return MarketClock(
            timestamp=now,
            is_open=False,
            next_open=cal.session_open(following),
            next_close=cal.session_close(following),
        )

    async def close(self) -> None:
        """Nothing to release: the store belongs to the caller."""

    # ------------------------------------------------------------ hooks

    async def settle(self) -> None:
        """Fill every accepted order whose open price is now known; expire the stale ones."""
        async with self._lock:
            await self._settle()

    async def set_trading_blocked(self, blocked: bool) -> None:
        """Block (or unblock) trading on the account, as a broker's compliance might."""
        async with self._lock:
            await self._account_row()
            async with self._book.write(self._clock.now()) as w:
                await w.set_trading_blocked(blocked)

    async def adjust_position(self, symbol: str, qty: int, avg_price: float) -> None:
        """Set a position behind the order flow's back (0 closes it); cash is not touched."""
        if qty < 0:
            raise ValueError(f"the simulated account cannot be short: qty {qty}")
        if qty > 0 and not avg_price > 0:
            raise ValueError(f"avg_price must be positive, got {avg_price}")
        async with self._lock:
            await self._account_row()
            async with self._book.write(self._clock.now()) as w:
                if qty == 0:
                    await w.delete_position(symbol)
                else:
                    await w.upsert_position(SimPositionRow(symbol, qty, avg_price, avg_price))

    async def reset(self, cash: float) -> None:
        """Start over: a fresh account with ``cash``, no positions, no order history."""
        if not cash >= 0:
            raise ValueError(f"cash must be >= 0, got {cash}")
        async with self._lock, self._book.write(self._clock.now()) as w:
            await w.reset(cash)

    # ------------------------------------------------------------ internals

    def _today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self._calendar.tz).date()

    def _trade_session(self, now: dt.datetime) -> dt.date:
        """The session whose open an order submitted at ``now`` fills at (its trading date)."""
        return trading_date(now, self._calendar)

    def _has_closed(self, session: dt.date, now: dt.datetime) -> bool:
        """Whether ``session`` is a session of the calendar whose close is at or before ``now``."""
        try:
            return self._calendar.is_session(session) and now >= self._calendar.session_close(
                session
            )
        except ValueError:  # outside the dates the calendar can cover: not a session we know
            return False

    def _last_closed_session(self, now: dt.datetime) -> dt.date:
        today = self._today(now)
        cal = self._calendar
        if cal.is_session(today) and now >= cal.session_close(today):
            return today
        return cal.previous_session(today)

    async def _close_on_or_before(self, symbol: str, session: dt.date) -> float | None:
        """The close of ``session``, or of the latest session before it that is known."""
        for _ in range(MARK_LOOKBACK_SESSIONS):
            price = await self._prices.close_price(symbol, session)
            if price is not None:
                return price
            session = self._calendar.previous_session(session)
        return None

    async def _close_in_todays_terms(self, symbol: str, session: dt.date) -> float | None:
        """``_close_on_or_before``, divided by the splits applied since that close: the
        price of one of today's shares (a split's ex date marks at the adjusted close)."""
        return (await self._closes_in_todays_terms([symbol], session))[0]

    async def _closes_in_todays_terms(
        self, symbols: Sequence[str], session: dt.date
    ) -> list[float | None]:
        """``_close_in_todays_terms`` of each of ``symbols``: the closes of a session looked
        up at once for the symbols that still have none, going back a session at a time."""
        found: list[float | None] = [None] * len(symbols)
        applied: dict[str, list[SimActionRow]] | None = None
        if self._actions is not None:
            applied = {}
            for row in await self._book.actions():
                applied.setdefault(row.symbol, []).append(row)
        todo = list(range(len(symbols)))
        for _ in range(MARK_LOOKBACK_SESSIONS):
            if not todo:
                break
            prices = await self._close_prices([symbols[i] for i in todo], session)
            left = []
            for i, price in zip(todo, prices, strict=True):
                if price is None:
                    left.append(i)
                elif applied is None:
                    found[i] = price
                else:
                    rows = applied.get(symbols[i], [])
                    found[i] = price / sim_actions.scale_since(rows, symbols[i], session)
            todo = left
            if todo:
                session = self._calendar.previous_session(session)
        return found

    async def _close_prices(self, symbols: list[str], session: dt.date) -> list[float | None]:
        if self._many_closes is not None:
            return await self._many_closes.close_prices(symbols, session)
        return [await self._prices.close_price(s, session) for s in symbols]

    async def _marks(self, positions: Sequence[SimPositionRow], now: dt.datetime) -> list[float]:
        """Each position's mark (see Valuation), the closes looked up together."""
        last = self._last_closed_session(now)
        closes = await self._closes_in_todays_terms([p.symbol for p in positions], last)
        return [
            p.avg_entry_price if close is None else close
            for p, close in zip(positions, closes, strict=True)
        ]

    async def _account_row(self) -> SimAccountRow:
        account = await self._book.account()
        if account is None:
            async with self._book.write(self._clock.now()) as w:
                await w.create_account(self._initial_cash)
            account = await self._book.account()
            assert account is not None
        return account

    @staticmethod
    def _check_qty(
        request: OrderRequest, position: SimPositionRow | None, pending: list[SimOrderRow]
    ) -> None:
        held = position.qty if position is not None else 0
        reserved = sum(
            o.qty for o in pending if o.symbol == request.symbol and o.side == OrderSide.SELL
        )
        available = held - reserved
        if request.qty > available:
            raise OrderRejected(
                f"insufficient qty available for order (requested {request.qty}, "
                f"available {available})"
            )

    async def _check_buying_power(
        self,
        request: OrderRequest,
        account: SimAccountRow,
        pending: list[SimOrderRow],
        open_price: float | None,
        now: dt.datetime,
    ) -> None:
        last_closed = self._last_closed_session(now)
        price = open_price
        if price is None:
            price = await self._close_in_todays_terms(request.symbol, last_closed)
        if price is None:
            raise OrderRejected(f"no price known for {request.symbol}")
        cost = -apply_costs(OrderSide.BUY, request.qty, price).cash_delta
        reserved = 0.0
        for o in pending:
            if o.side != OrderSide.BUY:
                continue
            estimate = await self._close_in_todays_terms(o.symbol, last_closed)
            if estimate is not None:
                reserved += -apply_costs(OrderSide.BUY, o.qty, estimate).cash_delta
        available = account.cash - reserved
        if cost > available:
            raise OrderRejected(
                f"insufficient buying power (required {cost:.2f}, available {available:.2f})"
            )

    async def _fill(
        self,
        w: SimBrokerWriter,
        order: SimOrderRow,
        open_price: float,
        position: SimPositionRow | None,
    ) -> tuple[SimOrderRow, SimPositionRow | None]:
        """Fill ``order`` at ``open_price`` through ``w``; the order and position after it."""
        side = OrderSide(order.side)
        held = position.qty if position is not None else 0
        if side is OrderSide.SELL and (position is None or held < order.qty):
            reason = f"insufficient qty at fill (requested {order.qty}, held {held})"
            await w.update_order(
                order.client_order_id,
                status=BrokerOrderStatus.REJECTED.value,
                reject_reason=reason,
            )
            rejected = replace(order, status=BrokerOrderStatus.REJECTED.value, reject_reason=reason)
            return rejected, position
        fill = apply_costs(side, order.qty, open_price)
        filled_at = self._calendar.session_open(order.trade_date)
        await w.update_order(
            order.client_order_id,
            status=BrokerOrderStatus.FILLED.value,
            filled_qty=order.qty,
            filled_avg_price=fill.exec_price,
            filled_at=filled_at,
        )
        await w.add_cash(fill.cash_delta)
        after: SimPositionRow | None
        if side is OrderSide.BUY:
            qty = held + order.qty
            cost_basis = (position.avg_entry_price * held if position is not None else 0.0) + (
                fill.exec_price * order.qty
            )
            after = SimPositionRow(order.symbol, qty, cost_basis / qty, fill.exec_price)
            await w.upsert_position(after)
        elif held == order.qty:
            after = None
            await w.delete_position(order.symbol)
        else:
            assert position is not None
            after = SimPositionRow(
                order.symbol, held - order.qty, position.avg_entry_price, fill.exec_price
            )
            await w.upsert_position(after)
        filled = replace(
            order,
            status=BrokerOrderStatus.FILLED.value,
            filled_qty=order.qty,
            filled_avg_price=fill.exec_price,
            filled_at=filled_at,
        )
        return filled, after

    async def _apply_corporate_actions(self) -> None:
        """Corporate actions due today, once per exchange date (``sim_actions``)."""
        if self._actions is None:
            return
        now = self._clock.now()
        today = self._today(now)
        if self._actions_checked == today:
            return
        await self._account_row()
        await sim_actions.apply_due(self._book, self._actions, today, now, self._close_before)
        self._actions_checked = today

    async def _close_before(self, symbol: str, ex_date: dt.date) -> float | None:
        return await self._close_on_or_before(symbol, self._calendar.previous_session(ex_date))

    async def _rest_stop(
        self,
        request: OrderRequest,
        position: SimPositionRow | None,
        pending: list[SimOrderRow],
        now: dt.datetime,
    ) -> BrokerOrder:
        """Accept a protective stop sell; it rests until a session's prices reach it."""
        self._check_qty(request, position, pending)
        order = _accepted(request, self._first_stop_session(now), now)
        async with self._book.write(now) as w:
            await w.insert_order(order)
        return _to_broker_order(order)

    def _first_stop_session(self, now: dt.datetime) -> dt.date:
        """A stop is watched from this session on if it has not closed, else the next.

        Placed during a session, it is in force for the rest of it: its low counts, and
        an open already through the stop fills it at once at the open's price.
        """
        today = self._today(now)
        if self._calendar.is_session(today) and now < self._calendar.session_close(today):
            return today
        return self._calendar.next_session(today)

    async def _settle_stops(self, stops: list[SimOrderRow], now: dt.datetime) -> None:
        """Fill each resting stop on the first session whose prices reach it (``sim_stops``).

        A stop found untouched at its session is not looked at again before the time
        ``_stop_trigger`` said it stays so (``_quiet``, by what the answer depends on).
        The stops that moved on or filled are written in one transaction, in order.
        """
        applied = await self._book.actions() if self._actions is not None else []
        quiet: dict[sim_stops.QuietKey, dt.datetime] = {}
        moved: list[tuple[SimOrderRow, dt.date, float | None]] = []
        for order in stops:
            key = sim_stops.quiet_key(order, applied)
            until = self._quiet.get(key)
            if until is not None and now < until:
                quiet[key] = until
                continue
            session, price, until = await self._stop_trigger(order, now, applied)
            if price is None and until is not None:
                moved_to = (
                    key
                    if session == order.trade_date
                    else sim_stops.quiet_key(order, applied, session)
                )
                quiet[moved_to] = until
            if session != order.trade_date or price is not None:
                moved.append((order, session, price))
        if moved:
            positions = {p.symbol: p for p in await self._book.positions()}
            async with self._book.write(now) as w:
                for order, session, price in moved:
                    await w.move_stop_check(order.client_order_id, session)
                    if price is None:
                        continue
                    filled = replace(order, trade_date=session)
                    _, after = await self._fill(w, filled, price, positions.get(order.symbol))
                    if after is None:
                        positions.pop(order.symbol, None)
                    else:
                        positions[order.symbol] = after
        self._quiet = quiet

    async def _stop_trigger(
        self, order: SimOrderRow, now: dt.datetime, applied: list[SimActionRow]
    ) -> tuple[dt.date, float | None, dt.datetime | None]:
        """The session to check the stop from next, its fill price if it triggered, and
        until when (exclusive) an untriggered stop stays untriggered at that session
        without another look (None: look again at the next call).

        At the open when the open gaps to or below the stop, else at the stop when the
        session's low (known once it closed) reaches it. The stop is in today's terms
        (adjusted for the splits applied, ``applied``); a session before a split is
        checked with the stop in that session's terms, and fills in today's.
        """
        assert order.stop_price is not None
        session = order.trade_date
        for _ in range(MAX_STOP_SESSIONS_PER_SETTLE):
            opens = self._calendar.session_open(session)
            if now < opens:
                return session, None, opens
            open_price = await self._prices.open_price(order.symbol, session)
            if open_price is None:
                return session, None, None
            scale = sim_actions.scale_since(applied, order.symbol, session)
            stop = order.stop_price * scale
            if not self._has_closed(session, now):
                if open_price <= stop:
                    return session, open_price / scale, None
                # The open is known and above the stop; the low counts once it closed.
                return session, None, self._close_or_none(session)
            low = await self._low(order.symbol, session, open_price)
            fill = sim_stops.stop_fill(stop, open_price, low)
            if fill is not None:
                return session, fill / scale, None
            session = self._calendar.next_session(session)
        return session, None, None

    def _close_or_none(self, session: dt.date) -> dt.datetime | None:
        """The close of ``session``, or None when it is not a session the calendar knows."""
        try:
            if self._calendar.is_session(session):
                return self._calendar.session_close(session)
        except ValueError:
            pass
        return None

    async def _low(self, symbol: str, session: dt.date, open_price: float) -> float | None:
        """The session's low; from a source without lows, the lower of open and close."""
        if isinstance(self._prices, KnowsLows):
            return await self._prices.low_price(symbol, session)
        close = await self._prices.close_price(symbol, session)
        return None if close is None else min(open_price, close)

    async def _settle(self) -> None:
        await self._apply_corporate_actions()
        pending = await self._book.orders(status=_ACCEPTED)
        stops = [o for o in pending if o.stop_price is not None]
        if stops:
            await self._settle_stops(stops, self._clock.now())
            pending = [o for o in pending if o.stop_price is None]
        if not pending:
            return
        now = self._clock.now()
        due: list[tuple[SimOrderRow, float | None]] = []
        for order in pending:
            price = await self._prices.open_price(order.symbol, order.trade_date)
            if price is not None:
                due.append((order, price))
            elif now >= self._expires_at(order.trade_date):
                due.append((order, None))
        if not due:
            return
        positions = {p.symbol: p for p in await self._book.positions()}
        async with self._book.write(now) as w:
            for order, price in due:
                if price is None:
                    await w.update_order(
                        order.client_order_id, status=BrokerOrderStatus.EXPIRED.value
                    )
                    continue
                _, after = await self._fill(w, order, price, positions.get(order.symbol))
                if after is None:
                    positions.pop(order.symbol, None)
                else:
                    positions[order.symbol] = after

    def _expires_at(self, trade_date: dt.date) -> dt.datetime:
        """When an unfilled day order for ``trade_date`` is given up: the next session's open."""
        return self._calendar.session_open(self._calendar.next_session(trade_date))

    async def _equity_at_close(
        self, session: dt.date, cash: float, positions: list[SimPositionRow]
    ) -> tuple[float, bool]:
        """Equity at the close of ``session`` and whether every close it needs was known."""
        qty = {p.symbol: p.qty for p in positions}
        fallback = {p.symbol: p.avg_entry_price for p in positions}
        # Newest first: a corporate action on its ex date came before that day's fills.
        events: list[tuple[dt.date, int, SimOrderRow | SimActionRow]] = [
            (o.trade_date, 1, o) for o in await self._book.filled_orders_traded_after(session)
        ]
        if self._actions is not None:
            events += [(a.ex_date, 0, a) for a in await self._book.actions()]
        for _, _, event in sorted(events, key=lambda e: (e[0], e[1]), reverse=True):
            if isinstance(event, SimActionRow):
                cash = sim_actions.back_out(event, qty, cash, session)
                continue
            o = event
            assert o.filled_avg_price is not None
            notional = o.filled_qty * o.filled_avg_price
            commission = o.filled_qty * COMMISSION_PER_SHARE
            if o.side == OrderSide.BUY:
                cash += notional + commission
                qty[o.symbol] = qty.get(o.symbol, 0) - o.filled_qty
            else:
                cash -= notional - commission
                qty[o.symbol] = qty.get(o.symbol, 0) + o.filled_qty
            fallback.setdefault(o.symbol, o.filled_avg_price)
        equity = cash
        complete = True
        for symbol, held in qty.items():
            if held == 0:
                continue
            close = await self._prices.close_price(symbol, session)
            if close is None:
                complete = False
                close = await self._close_on_or_before(
                    symbol, self._calendar.previous_session(session)
                )
            equity += held * (fallback[symbol] if close is None else close)
        return equity, complete
