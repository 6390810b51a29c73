"""The simulated broker's book: every SQL statement on the ``sim_*`` tables.

The tables hold the whole state of the simulated account (``SimBroker`` keeps
nothing that matters in memory), so a new broker on the same database after a
crash sees every order, fill, position and the cash exactly.

- Reads (``account``, ``order``, ``orders``, ``positions``, ...) see committed rows.
  The account, the equity snapshot's session, the accepted orders, the positions,
  the applied corporate actions and single orders are kept in the store's
  ``ReadCache`` (``actors.store.read_cache``) from one write to the next: every
  write goes through ``write()``, which forgets them before and after its
  transaction, so a read without a write in between is not a query. Nothing else
  writes these tables while a broker is using the store (``rewind`` works on a copy
  before any broker, and calls ``forget_cached_book`` all the same).
- Writes go through ``async with book.write(at) as w:``: one *durable*
  transaction (``synchronous=FULL``) per broker operation, so an order, its fill
  and the cash and position change it causes land together or not at all.
- The session whose close ``sim_account.last_equity`` values is kept under the
  ``system_state`` key ``sim_broker.last_equity_session`` (an ISO date as JSON),
  written in the same transaction as ``last_equity``.

Rows carry plain values (``str`` side and status); the broker gives them meaning.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiosqlite

from actors.market.ticks import stop_tick
from actors.store.read_cache import Key, ReadCache, cache_of
from daemon.store.core import Row, Store

LAST_EQUITY_SESSION_KEY = "sim_broker.last_equity_session"

# The dividends still owed, read each settle; it searches an index of schema version 7
# (the applied actions themselves are read through the cache: see ``actions``).
OWED_SQL = (
    "SELECT * FROM sim_corporate_actions WHERE credited_at IS NULL AND pay_date <= ?"
    " ORDER BY ex_date, applied_at, action_id"
)


@dataclass(frozen=True, slots=True)
class SimAccountRow:
    cash: float
    last_equity: float
    trading_blocked: bool
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SimOrderRow:
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: str
    qty: int
    filled_qty: int
    filled_avg_price: float | None
    status: str
    trade_date: dt.date
    submitted_at: dt.datetime
    filled_at: dt.datetime | None = None
    reject_reason: str | None = None
    stop_price: float | None = None


@dataclass(frozen=True, slots=True)
class SimPositionRow:
    symbol: str
    qty: int
    avg_entry_price: float
    last_price: float | None = None


@dataclass(frozen=True, slots=True)
class SimActionRow:
    """A corporate action the simulated broker applied to its account."""

    action_id: str
    kind: str
    symbol: str
    new_symbol: str | None
    ex_date: dt.date
    ratio: float
    shares_before: int
    shares_after: int
    cash: float
    pay_date: dt.date | None
    credited: bool


def _sim_action(row: Row) -> SimActionRow:
    return SimActionRow(
        action_id=row["action_id"],
        kind=row["kind"],
        symbol=row["symbol"],
        new_symbol=row["new_symbol"],
        ex_date=dt.date.fromisoformat(row["ex_date"]),
        ratio=float(row["ratio"]),
        shares_before=int(row["shares_before"]),
        shares_after=int(row["shares_after"]),
        cash=float(row["cash"]),
        pay_date=dt.date.fromisoformat(row["pay_date"]) if row["pay_date"] else None,
        credited=row["credited_at"] is not None,
    )


def _account(row: Row) -> SimAccountRow:
    return SimAccountRow(
        cash=float(row["cash"]),
        last_equity=float(row["last_equity"]),
        trading_blocked=bool(row["trading_blocked"]),
        updated_at=dt.datetime.fromisoformat(row["updated_at"]),
    )


def _order(row: Row) -> SimOrderRow:
    filled_at = row["filled_at"]
    avg = row["filled_avg_price"]
    return SimOrderRow(
        client_order_id=row["client_order_id"],
        broker_order_id=row["broker_order_id"],
        symbol=row["symbol"],
        side=row["side"],
        qty=int(row["qty"]),
        filled_qty=int(row["filled_qty"]),
        filled_avg_price=None if avg is None else float(avg),
        status=row["status"],
        trade_date=dt.date.fromisoformat(row["trade_date"]),
        submitted_at=dt.datetime.fromisoformat(row["submitted_at"]),
        filled_at=None if filled_at is None else dt.datetime.fromisoformat(filled_at),
        reject_reason=row["reject_reason"],
        stop_price=None if row["stop_price"] is None else float(row["stop_price"]),
    )


def _position(row: Row) -> SimPositionRow:
    last = row["last_price"]
    return SimPositionRow(
        symbol=row["symbol"],
        qty=int(row["qty"]),
        avg_entry_price=float(row["avg_entry_price"]),
        last_price=None if last is None else float(last),
    )


_ORDER_COLUMNS = (
    "client_order_id, broker_order_id, symbol, side, qty, filled_qty, filled_avg_price,"
    " status, trade_date, submitted_at, filled_at, reject_reason, stop_price"
)
_ORDER_PLACEHOLDERS = ", ".join("?" * len(_ORDER_COLUMNS.split(",")))


ACCOUNT, ORDERS, POSITIONS = "sim_account", "sim_orders", "sim_positions"
ACTIONS = "sim_corporate_actions"
STATE = "system_state"  # the last_equity snapshot's session
TABLES = (ACCOUNT, ORDERS, POSITIONS, ACTIONS, STATE)


class SimBrokerWriter:
    """The writes of one broker operation, inside one durable transaction.

    Each method first forgets the cached reads of the tables it writes (``wrote``).
    """

    def __init__(self, conn: aiosqlite.Connection, at: dt.datetime, cache: ReadCache) -> None:
        self._conn = conn
        self._at = at.isoformat()
        self._cache = cache
        self.wrote: set[str] = set()
        #: The accepted orders as cached when this transaction first wrote ``sim_orders``,
        #: and the orders it changed since: after the commit the cache is patched with
        #: them instead of every accepted order read again (``SimBrokerStore.write``).
        self.accepted_before: dict[str, SimOrderRow] | None = None
        self.orders_changed: list[str] = []
        self.orders_inserted: set[str] = set()
        self.orders_bulk = False

    def _writes(self, *tables: str) -> None:
        self.wrote.update(tables)
        self._cache.forget(tables)

    def _writes_order(self, client_order_id: str | None, *, inserted: bool = False) -> None:
        """``sim_orders`` is written: one order (tracked), or several at once (None)."""
        if ORDERS not in self.wrote:
            self.accepted_before = self._cache.get(_ACCEPTED)
        self._writes(ORDERS)
        if client_order_id is None:
            self.orders_bulk = True
            return
        self.orders_changed.append(client_order_id)
        if inserted:
            self.orders_inserted.add(client_order_id)

    async def create_account(self, cash: float) -> None:
        """Open the account with ``cash`` (and ``last_equity = cash``) unless it exists."""
        self._writes(ACCOUNT)
        await self._conn.execute(
            "INSERT OR IGNORE INTO sim_account (id, cash, last_equity, trading_blocked, updated_at)"
            " VALUES (1, ?, ?, 0, ?)",
            (cash, cash, self._at),
        )

    async def add_cash(self, delta: float) -> None:
        """Change the cash balance by ``delta`` (negative for a buy)."""
        self._writes(ACCOUNT)
        await self._conn.execute(
            "UPDATE sim_account SET cash = cash + ?, updated_at = ? WHERE id = 1",
            (delta, self._at),
        )

    async def set_trading_blocked(self, blocked: bool) -> None:
        self._writes(ACCOUNT)
        await self._conn.execute(
            "UPDATE sim_account SET trading_blocked = ?, updated_at = ? WHERE id = 1",
            (int(blocked), self._at),
        )

    async def set_last_equity(self, equity: float, session: dt.date) -> None:
        """Record ``equity`` as the equity at the close of ``session``."""
        self._writes(ACCOUNT, STATE)
        await self._conn.execute(
            "UPDATE sim_account SET last_equity = ?, updated_at = ? WHERE id = 1",
            (equity, self._at),
        )
        await self._conn.execute(
            "INSERT INTO system_state (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (LAST_EQUITY_SESSION_KEY, json.dumps(session.isoformat()), self._at),
        )

    async def insert_order(self, order: SimOrderRow) -> None:
        """Record a new order; ``sqlite3.IntegrityError`` if its client id was ever used."""
        self._writes_order(order.client_order_id, inserted=True)
        await self._conn.execute(
            f"INSERT INTO sim_orders ({_ORDER_COLUMNS}) VALUES ({_ORDER_PLACEHOLDERS})",  # noqa: S608 -- constants
            (
                order.client_order_id,
                order.broker_order_id,
                order.symbol,
                order.side,
                order.qty,
                order.filled_qty,
                order.filled_avg_price,
                order.status,
                order.trade_date.isoformat(),
                order.submitted_at.isoformat(),
                None if order.filled_at is None else order.filled_at.isoformat(),
                order.reject_reason,
                order.stop_price,
            ),
        )

    async def update_order(
        self,
        client_order_id: str,
        *,
        status: str,
        filled_qty: int = 0,
        filled_avg_price: float | None = None,
        filled_at: dt.datetime | None = None,
        reject_reason: str | None = None,
    ) -> None:
        """Move an order to ``status`` with its fill (if any)."""
        self._writes_order(client_order_id)
        await self._conn.execute(
            "UPDATE sim_orders SET status = ?, filled_qty = ?, filled_avg_price = ?,"
            " filled_at = ?, reject_reason = ? WHERE client_order_id = ?",
            (
                status,
                filled_qty,
                filled_avg_price,
                None if filled_at is None else filled_at.isoformat(),
                reject_reason,
                client_order_id,
            ),
        )

    async def adjust_resting_stops(self, symbol: str, ratio: float) -> None:
        """A split on ``symbol``: its resting stops sell ``floor(qty x ratio)`` at
        ``stop / ratio`` on the tick (FINRA Rule 5330's adjustment of open orders)."""
        self._writes_order(None)
        async with self._conn.execute(
            "SELECT client_order_id, qty, stop_price FROM sim_orders WHERE symbol = ?"
            " AND status = 'accepted' AND stop_price IS NOT NULL",
            (symbol,),
        ) as cur:
            rows = list(await cur.fetchall())
        for r in rows:
            qty = math.floor(int(r["qty"]) * ratio + 1e-9)
            stop = stop_tick(float(r["stop_price"]) / ratio)
            if qty <= 0:
                await self._conn.execute(
                    "UPDATE sim_orders SET status = 'canceled' WHERE client_order_id = ?",
                    (r["client_order_id"],),
                )
                continue
            await self._conn.execute(
                "UPDATE sim_orders SET qty = ?, stop_price = ? WHERE client_order_id = ?",
                (qty, stop, r["client_order_id"]),
            )

    async def cancel_resting_stops(self, symbol: str) -> None:
        """``symbol``'s resting stops are cancelled (a symbol change)."""
        self._writes_order(None)
        await self._conn.execute(
            "UPDATE sim_orders SET status = 'canceled' WHERE symbol = ?"
            " AND status = 'accepted' AND stop_price IS NOT NULL",
            (symbol,),
        )

    async def move_stop_check(self, client_order_id: str, session: dt.date) -> None:
        """A resting stop is checked from ``session`` on (or filled on it)."""
        self._writes_order(client_order_id)
        await self._conn.execute(
            "UPDATE sim_orders SET trade_date = ? WHERE client_order_id = ?",
            (session.isoformat(), client_order_id),
        )

    async def upsert_position(self, position: SimPositionRow) -> None:
        self._writes(POSITIONS)
        await self._conn.execute(
            "INSERT INTO sim_positions (symbol, qty, avg_entry_price, last_price)"
            " VALUES (?, ?, ?, ?) ON CONFLICT(symbol) DO UPDATE SET qty = excluded.qty,"
            " avg_entry_price = excluded.avg_entry_price, last_price = excluded.last_price",
            (position.symbol, position.qty, position.avg_entry_price, position.last_price),
        )

    async def delete_position(self, symbol: str) -> None:
        self._writes(POSITIONS)
        await self._conn.execute("DELETE FROM sim_positions WHERE symbol = ?", (symbol,))

    async def record_action(self, row: SimActionRow) -> None:
        """Record an applied corporate action (credited now when ``row.credited``)."""
        self._writes(ACTIONS)
        await self._conn.execute(
            "INSERT INTO sim_corporate_actions (action_id, kind, symbol, new_symbol, ex_date,"
            " ratio, shares_before, shares_after, cash, pay_date, applied_at, credited_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                row.action_id,
                row.kind,
                row.symbol,
                row.new_symbol,
                row.ex_date.isoformat(),
                row.ratio,
                row.shares_before,
                row.shares_after,
                row.cash,
                row.pay_date.isoformat() if row.pay_date else None,
                self._at,
                self._at if row.credited else None,
            ),
        )

    async def credit_action(self, action_id: str) -> None:
        self._writes(ACTIONS)
        await self._conn.execute(
            "UPDATE sim_corporate_actions SET credited_at = ? WHERE action_id = ?",
            (self._at, action_id),
        )

    async def reset(self, cash: float) -> None:
        """Wipe the book (orders, positions, equity snapshot) and open a fresh account."""
        self._writes(*TABLES)
        await self._conn.execute("DELETE FROM sim_orders")
        await self._conn.execute("DELETE FROM sim_positions")
        await self._conn.execute("DELETE FROM sim_corporate_actions")
        await self._conn.execute("DELETE FROM sim_account")
        await self._conn.execute(
            "DELETE FROM system_state WHERE key = ?", (LAST_EQUITY_SESSION_KEY,)
        )
        await self.create_account(cash)


_ACCOUNT: Key[SimAccountRow | None] = Key(("account",), (ACCOUNT,))
_LAST_EQUITY_SESSION: Key[dt.date | None] = Key(("last_equity_session",), (STATE,))
_ACCEPTED: Key[dict[str, SimOrderRow]] = Key(("orders", "accepted"), (ORDERS,))
_POSITIONS: Key[tuple[SimPositionRow, ...]] = Key(("positions",), (POSITIONS,))
_ACTIONS: Key[tuple[SimActionRow, ...]] = Key(("actions",), (ACTIONS,))


def _order_key(client_order_id: str) -> Key[SimOrderRow | None]:
    return Key(("order", client_order_id), (ORDERS,))


def forget_cached_book(store: Store) -> None:
    """Forget the cached reads of the book: ``store``'s ``sim_*`` tables were written
    other than through ``SimBrokerStore.write``."""
    cache_of(store).forget()


class SimBrokerStore:
    """Reads of the simulated broker's book, and ``write()`` for its transactions."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache = cache_of(store)

    @asynccontextmanager
    async def write(self, at: dt.datetime) -> AsyncIterator[SimBrokerWriter]:
        """One durable transaction stamped ``at``; everything in it commits or nothing does.

        The cached reads of a table are forgotten when it is first written in it, and
        again after it, whatever its outcome.
        """
        writer: SimBrokerWriter | None = None
        try:
            async with self._store.transaction(durable=True) as conn:
                writer = SimBrokerWriter(conn, at, self._cache)
                yield writer
        finally:
            if writer is not None:
                self._cache.forget(writer.wrote)
        # Committed. The store's lock kept every other write out of the transaction, so
        # the accepted orders are those cached before it with its own changes: read back
        # those few, not every accepted order (each submission re-read them all, a cost
        # growing with the resting stops held). A write meanwhile: not kept (``read``).
        done = writer
        before = None if done is None or done.orders_bulk else done.accepted_before
        if done is not None and before is not None and done.orders_changed:
            await self._cache.read(_ACCEPTED, lambda: self._patched(before, done))

    async def account(self) -> SimAccountRow | None:
        return await self._cache.read(_ACCOUNT, self._read_account)

    async def _read_account(self) -> SimAccountRow | None:
        row = await self._store.fetchone(
            "SELECT cash, last_equity, trading_blocked, updated_at FROM sim_account WHERE id = 1"
        )
        return None if row is None else _account(row)

    async def last_equity_session(self) -> dt.date | None:
        """The session whose close ``last_equity`` values, or None before the first snapshot."""
        return await self._cache.read(_LAST_EQUITY_SESSION, self._read_last_equity_session)

    async def _read_last_equity_session(self) -> dt.date | None:
        row = await self._store.fetchone(
            "SELECT value FROM system_state WHERE key = ?", (LAST_EQUITY_SESSION_KEY,)
        )
        if row is None:
            return None
        return dt.date.fromisoformat(json.loads(row["value"]))

    async def order(self, client_order_id: str) -> SimOrderRow | None:
        accepted = self._cache.get(_ACCEPTED)
        if accepted is not None and client_order_id in accepted:
            return accepted[client_order_id]
        return await self._cache.read(
            _order_key(client_order_id), lambda: self._read_order(client_order_id)
        )

    async def _read_order(self, client_order_id: str) -> SimOrderRow | None:
        row = await self._store.fetchone(
            f"SELECT {_ORDER_COLUMNS} FROM sim_orders WHERE client_order_id = ?",  # noqa: S608 -- a constant column list
            (client_order_id,),
        )
        return None if row is None else _order(row)

    async def orders(self, *, status: str | None = None) -> list[SimOrderRow]:
        """Orders (all, or those in ``status``) in the order they were submitted."""
        if status == "accepted":
            accepted = await self._cache.read(_ACCEPTED, self._read_accepted)
            return list(accepted.values())
        return await self._read_orders(status)

    async def _patched(
        self, before: dict[str, SimOrderRow], writer: SimBrokerWriter
    ) -> dict[str, SimOrderRow]:
        """``before`` with the orders ``writer`` changed read back, in submission order:
        an order still accepted keeps its place, a new one comes last (the newest rowid),
        one no longer accepted leaves; anything else, every accepted order read again."""
        out = dict(before)
        for cid in dict.fromkeys(writer.orders_changed):
            row = await self._read_order(cid)
            if row is None or row.status != "accepted":
                out.pop(cid, None)
            elif cid in out or cid in writer.orders_inserted:
                out[cid] = row
            else:
                return await self._read_accepted()
        return out

    async def _read_accepted(self) -> dict[str, SimOrderRow]:
        return {o.client_order_id: o for o in await self._read_orders("accepted")}

    async def _read_orders(self, status: str | None) -> list[SimOrderRow]:
        where, params = ("WHERE status = ?", (status,)) if status is not None else ("", ())
        rows = await self._store.fetchall(
            f"SELECT {_ORDER_COLUMNS} FROM sim_orders {where} ORDER BY rowid",  # noqa: S608 -- constant fragments only
            params,
        )
        return [_order(r) for r in rows]

    async def filled_orders_traded_after(self, session: dt.date) -> list[SimOrderRow]:
        """Filled orders whose trade session is after ``session``, in submission order."""
        rows = await self._store.fetchall(
            f"SELECT {_ORDER_COLUMNS} FROM sim_orders"  # noqa: S608 -- a constant column list
            " WHERE filled_qty > 0 AND trade_date > ? ORDER BY rowid",
            (session.isoformat(),),
        )
        return [_order(r) for r in rows]

    async def actions(self, *, after: dt.date | None = None) -> list[SimActionRow]:
        """The corporate actions applied to the account, by ex date: every one, or with
        ``after`` those whose ex date or pay date is after it (what a valuation or a
        price at ``after``'s close still has to account for). Read through the cache."""
        rows = await self._cache.read(_ACTIONS, self._read_actions)
        if after is None:
            return list(rows)
        return [
            r for r in rows if r.ex_date > after or (r.pay_date is not None and r.pay_date > after)
        ]

    async def _read_actions(self) -> tuple[SimActionRow, ...]:
        rows = await self._store.fetchall(
            "SELECT * FROM sim_corporate_actions ORDER BY ex_date, applied_at, action_id"
        )
        return tuple(_sim_action(r) for r in rows)

    async def owed(self, through: dt.date) -> list[SimActionRow]:
        """The dividends applied, not credited yet, whose pay date is ``<= through``."""
        rows = await self._store.fetchall(OWED_SQL, (through.isoformat(),))
        return [_sim_action(r) for r in rows]

    async def positions(self) -> list[SimPositionRow]:
        """Every position, by symbol."""
        rows = await self._cache.read(_POSITIONS, self._read_positions)
        return list(rows)

    async def _read_positions(self) -> tuple[SimPositionRow, ...]:
        rows = await self._store.fetchall(
            "SELECT symbol, qty, avg_entry_price, last_price FROM sim_positions ORDER BY symbol"
        )
        return tuple(_position(r) for r in rows)

    async def position(self, symbol: str) -> SimPositionRow | None:
        held = self._cache.get(_POSITIONS)
        if held is not None:
            return next((p for p in held if p.symbol == symbol), None)
        row = await self._store.fetchone(
            "SELECT symbol, qty, avg_entry_price, last_price FROM sim_positions WHERE symbol = ?",
            (symbol,),
        )
        return None if row is None else _position(row)
