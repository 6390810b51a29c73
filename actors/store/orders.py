"""Order intents, trades and per-strategy positions: all the SQL of order handling.

- An intent is written with ``create_intent`` (a durable transaction) before it
  is sent anywhere; writing it again is a no-op that returns the stored row, so
  a re-run of the day finds what the first run did.
- ``book_fill`` is the only way shares move: one durable transaction inserts the
  trade (with its modelled costs), advances the intent's filled quantity and
  average price, and updates the strategy's position. A crash leaves all three
  or none, so polling the broker again books exactly the missing delta.
- The store records, it does not decide: a fill's modelled costs and the stop of
  the position it opens come from the ``FillTerms`` it is given (the composition
  root passes the reference cost model and the catastrophe-stop rule).
- Positions never go negative: a sell fill that would take a strategy below
  zero raises ``NegativePosition`` and nothing is written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

import aiosqlite

from actors.messages import IntentKind, IntentStatus
from daemon.store.core import Row, Store


class FillTerms(Protocol):
    """What the trading layers decide about a fill; the order store only records it."""

    def trade_costs(self, qty: int, price: float) -> tuple[float, float]:
        """``(slippage, commission)`` in dollars of ``qty`` shares filled at ``price``."""
        ...

    def stop_for(self, avg_price: float, atr: float | None, multiple: float | None) -> float | None:
        """The stop of a position bought at ``avg_price`` (``None`` without an ATR).

        ``multiple`` is the entry intent's own ATR multiple (``None`` on rows written
        before intents carried one: the rule's default applies).
        """
        ...


class ReadOnlyOrders(RuntimeError):
    """``book_fill`` on an ``OrderStore`` opened without ``FillTerms`` (a reader)."""


# Open (not terminal) intents by the status index: IN the open statuses, not NOT IN the
# terminal ones (which scans every intent ever written).
_OPEN = tuple(str(s) for s in IntentStatus if not s.terminal)
_OPEN_SQL = f"status IN ({', '.join('?' for _ in _OPEN)})"


class NegativePosition(ValueError):
    """A sell fill larger than the strategy's position (a bug or a foreign order)."""


class OverFill(ValueError):
    """A fill beyond the intent's target quantity (the broker reported more than we asked)."""


@dataclass(frozen=True, slots=True)
class IntentRow:
    """One ``order_intents`` row, typed."""

    intent_id: str
    run_id: str
    asof: dt.date
    strategy_id: int
    strategy: str
    signal_id: int | None
    symbol: str
    side: str
    target_qty: int
    filled_qty: int
    status: IntentStatus
    kind: IntentKind
    reference_price: float | None
    atr: float | None
    reason: str | None
    stop_atr_multiple: float | None
    avg_fill_price: float | None
    broker_order_id: str | None
    error_code: str | None
    error_message: str | None
    created_at: str | None
    submitted_at: str | None
    acked_at: str | None
    filled_at: str | None
    updated_at: str | None
    #: A resting protective stop sell's stop price (None for market orders).
    stop_price: float | None = None

    @property
    def resting(self) -> bool:
        """A protective stop sell resting at the broker (good till canceled)."""
        return self.stop_price is not None

    @property
    def remaining_qty(self) -> int:
        return max(0, self.target_qty - self.filled_qty)

    @classmethod
    def from_row(cls, r: Row) -> IntentRow:
        return cls(
            intent_id=r["intent_id"],
            run_id=r["run_id"],
            asof=dt.date.fromisoformat(r["asof_date"]),
            strategy_id=int(r["strategy_id"]),
            strategy=r["strategy"] or r["strategy_name"] or "",
            signal_id=None if r["signal_id"] is None else int(r["signal_id"]),
            symbol=r["symbol"],
            side=r["side"],
            target_qty=int(r["target_qty"]),
            filled_qty=int(r["filled_qty"]),
            status=IntentStatus(r["status"]),
            kind=IntentKind(r["intent_kind"]),
            reference_price=r["reference_price"],
            atr=r["atr"],
            reason=r["reason"],
            stop_atr_multiple=r["stop_atr_multiple"],
            avg_fill_price=r["avg_fill_price"],
            broker_order_id=r["broker_order_id"],
            error_code=r["error_code"],
            error_message=r["error_message"],
            created_at=r["created_at"],
            submitted_at=r["submitted_at"],
            acked_at=r["acked_at"],
            filled_at=r["filled_at"],
            updated_at=r["updated_at"],
            stop_price=r["stop_price"],
        )


_SELECT = (
    "SELECT i.*, s.name AS strategy_name FROM order_intents i"
    " JOIN strategies s ON s.id = i.strategy_id"
)


class OrderStore:
    """Reads and writes ``order_intents``, ``trades`` and ``positions``."""

    def __init__(
        self,
        store: Store,
        terms: FillTerms | None = None,
    ) -> None:
        """``terms`` is needed only to book fills; readers leave it out."""
        self._store = store
        self._terms = terms

    # ------------------------------------------------------------ strategies

    async def strategy_id(self, name: str) -> int:
        """The id of strategy ``name``, created bare if unknown (existing rows untouched)."""
        async with self._store.transaction() as conn:
            await conn.execute(
                "INSERT INTO strategies (name) VALUES (?) ON CONFLICT(name) DO NOTHING", (name,)
            )
            async with conn.execute("SELECT id FROM strategies WHERE name = ?", (name,)) as cur:
                row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    # ------------------------------------------------------------ intents

    async def create_intent(
        self,
        *,
        intent_id: str,
        run_id: str,
        asof: dt.date,
        strategy_id: int,
        strategy: str,
        symbol: str,
        side: str,
        qty: int,
        kind: IntentKind,
        reference_price: float,
        at: dt.datetime,
        atr: float = 0.0,
        signal_id: int | None = None,
        reason: str = "",
        stop_atr_multiple: float | None = None,
        stop_price: float | None = None,
    ) -> tuple[IntentRow, bool]:
        """Write a NEW intent (durable); ``(row, False)`` with the stored row if it exists.

        ``stop_price``: the intent is a protective stop sell resting at the broker.
        """
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        if qty <= 0:
            raise ValueError(f"intent qty must be positive, got {qty}")
        stamp = at.isoformat()
        async with self._store.transaction(durable=True) as conn:
            cur = await conn.execute(
                "INSERT INTO order_intents (intent_id, run_id, asof_date, strategy_id, signal_id,"
                " symbol, side, target_qty, filled_qty, status, created_at, strategy,"
                " intent_kind, reference_price, atr, reason, updated_at, stop_atr_multiple,"
                " stop_price) VALUES (?,?,?,?,?,?,?,?,0,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(intent_id) DO NOTHING",
                (
                    intent_id,
                    run_id,
                    asof.isoformat(),
                    strategy_id,
                    signal_id,
                    symbol,
                    side,
                    qty,
                    str(IntentStatus.NEW),
                    stamp,
                    strategy,
                    str(kind),
                    reference_price,
                    atr,
                    reason,
                    stamp,
                    stop_atr_multiple,
                    stop_price,
                ),
            )
            created = cur.rowcount == 1
            async with conn.execute(f"{_SELECT} WHERE i.intent_id = ?", (intent_id,)) as read:
                row = await read.fetchone()
        assert row is not None
        return IntentRow.from_row(row), created

    async def get(self, intent_id: str) -> IntentRow | None:
        row = await self._store.fetchone(f"{_SELECT} WHERE i.intent_id = ?", (intent_id,))
        return IntentRow.from_row(row) if row is not None else None

    async def open_intents(self) -> list[IntentRow]:
        """Every intent not in a terminal state, oldest first."""
        rows = await self._store.fetchall(f"{_SELECT} WHERE i.{_OPEN_SQL} ORDER BY i.rowid", _OPEN)
        return [IntentRow.from_row(r) for r in rows]

    async def resting_stops(self) -> list[IntentRow]:
        """Every open protective stop sell (resting, or on its way to the broker), oldest first."""
        rows = await self._store.fetchall(
            f"{_SELECT} WHERE i.stop_price IS NOT NULL AND i.{_OPEN_SQL} ORDER BY i.rowid",
            _OPEN,
        )
        return [IntentRow.from_row(r) for r in rows]

    async def last_resting_stop(self, strategy_id: int, symbol: str) -> IntentRow | None:
        """The lot's latest protective stop, in any state; None when it never had one."""
        row = await self._store.fetchone(
            f"{_SELECT} WHERE i.strategy_id = ? AND i.symbol = ?"
            " AND i.stop_price IS NOT NULL ORDER BY i.rowid DESC LIMIT 1",
            (strategy_id, symbol),
        )
        return None if row is None else IntentRow.from_row(row)

    async def resting_stop_count(self, asof: dt.date, strategy_id: int, symbol: str) -> int:
        """How many protective stops (any state) the strategy's lot got on ``asof``."""
        row = await self._store.fetchone(
            "SELECT COUNT(*) AS n FROM order_intents WHERE stop_price IS NOT NULL"
            " AND asof_date = ? AND strategy_id = ? AND symbol = ?",
            (asof.isoformat(), strategy_id, symbol),
        )
        return int(row["n"]) if row is not None else 0

    async def set_terms(
        self, intent_id: str, qty: int, stop_price: float | None, at: dt.datetime
    ) -> IntentRow:
        """Take the broker's quantity (and stop price) of an open order: a broker that
        adjusted a resting stop for a split, or a sell cut to what is still held."""
        if qty <= 0:
            raise ValueError(f"intent qty must be positive, got {qty}")
        async with self._store.transaction(durable=True) as conn:
            cur = await conn.execute(
                "UPDATE order_intents SET target_qty = ?,"
                " stop_price = COALESCE(?, stop_price), updated_at = ?"
                " WHERE intent_id = ? AND filled_qty <= ?",
                (qty, stop_price, at.isoformat(), intent_id, qty),
            )
            if cur.rowcount != 1:
                raise KeyError(f"no order intent {intent_id!r} with at most {qty} filled")
            async with conn.execute(f"{_SELECT} WHERE i.intent_id = ?", (intent_id,)) as read:
                row = await read.fetchone()
        assert row is not None
        return IntentRow.from_row(row)

    async def intents_for(
        self, asof: dt.date | None = None, run_id: str | None = None
    ) -> list[IntentRow]:
        """Intents of a trading date and/or a run (all when neither is given), oldest first."""
        where: list[str] = []
        params: list[Any] = []
        if asof is not None:
            where.append("i.asof_date = ?")
            params.append(asof.isoformat())
        if run_id is not None:
            where.append("i.run_id = ?")
            params.append(run_id)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._store.fetchall(f"{_SELECT}{clause} ORDER BY i.rowid", params)
        return [IntentRow.from_row(r) for r in rows]

    async def status_counts(self) -> dict[str, int]:
        rows = await self._store.fetchall(
            "SELECT status, COUNT(*) AS n FROM order_intents GROUP BY status ORDER BY status"
        )
        return {r["status"]: int(r["n"]) for r in rows}

    async def update_status(
        self,
        intent_id: str,
        status: IntentStatus,
        *,
        at: dt.datetime,
        broker_order_id: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> IntentRow:
        """Move an intent to ``status`` (durable); the error fields are replaced (None clears).

        ``submitted_at`` is stamped on SUBMITTED, ``acked_at`` the first time the
        broker acknowledges the order, ``filled_at`` on FILLED; a broker order id
        once known is kept.
        """
        stamp = at.isoformat()
        acked = status in (
            IntentStatus.ACCEPTED,
            IntentStatus.PARTIALLY_FILLED,
            IntentStatus.FILLED,
        )
        async with self._store.transaction(durable=True) as conn:
            cur = await conn.execute(
                "UPDATE order_intents SET status = ?, error_code = ?, error_message = ?,"
                " broker_order_id = COALESCE(?, broker_order_id),"
                " submitted_at = CASE WHEN ? THEN ? ELSE submitted_at END,"
                " acked_at = CASE WHEN ? THEN COALESCE(acked_at, ?) ELSE acked_at END,"
                " filled_at = CASE WHEN ? THEN COALESCE(filled_at, ?) ELSE filled_at END,"
                " updated_at = ? WHERE intent_id = ?",
                (
                    str(status),
                    error_code,
                    error_message,
                    broker_order_id,
                    status is IntentStatus.SUBMITTED,
                    stamp,
                    acked,
                    stamp,
                    status is IntentStatus.FILLED,
                    stamp,
                    stamp,
                    intent_id,
                ),
            )
            if cur.rowcount != 1:
                raise KeyError(f"no order intent {intent_id!r}")
            async with conn.execute(f"{_SELECT} WHERE i.intent_id = ?", (intent_id,)) as read:
                row = await read.fetchone()
        assert row is not None
        return IntentRow.from_row(row)

    # ------------------------------------------------------------ fills

    async def book_fill(
        self,
        intent_id: str,
        delta_qty: int,
        delta_avg_price: float,
        *,
        status: IntentStatus,
        at: dt.datetime,
        broker_order_id: str | None = None,
    ) -> IntentRow:
        """Book ``delta_qty`` newly filled shares at ``delta_avg_price`` in one durable transaction.

        Inserts the trade row (requested price = the intent's reference price;
        slippage and commission from ``FillTerms.trade_costs``),
        advances the intent (filled qty, volume-weighted average fill price,
        ``status``), and moves the strategy's position: a buy adds shares at a
        weighted average price (a new position gets the intent's date as entry
        date, its ATR as ``atr_at_entry`` and the stop ``FillTerms.stop_for`` gives, with
        the intent's ``stop_atr_multiple``); a
        sell removes shares and deletes the row at zero.
        """
        if self._terms is None:
            raise ReadOnlyOrders(f"{intent_id}: this OrderStore has no FillTerms to book a fill")
        if delta_qty <= 0:
            raise ValueError(f"a fill must be a positive number of shares, got {delta_qty}")
        if not delta_avg_price > 0:
            raise ValueError(f"a fill price must be positive, got {delta_avg_price}")
        stamp = at.isoformat()
        async with self._store.transaction(durable=True) as conn:
            async with conn.execute(f"{_SELECT} WHERE i.intent_id = ?", (intent_id,)) as read:
                raw = await read.fetchone()
            if raw is None:
                raise KeyError(f"no order intent {intent_id!r}")
            intent = IntentRow.from_row(raw)
            filled = intent.filled_qty + delta_qty
            if filled > intent.target_qty:
                raise OverFill(
                    f"{intent_id}: {filled} shares filled of {intent.target_qty} ordered"
                )
            await self._insert_trade(
                conn,
                intent,
                delta_qty,
                delta_avg_price,
                broker_order_id=broker_order_id,
                stamp=stamp,
            )
            await self._advance_intent(
                conn,
                intent,
                delta_qty,
                delta_avg_price,
                status=status,
                broker_order_id=broker_order_id,
                stamp=stamp,
            )
            await self._move_position(conn, intent, delta_qty, delta_avg_price, stamp)
            async with conn.execute(f"{_SELECT} WHERE i.intent_id = ?", (intent_id,)) as read:
                raw = await read.fetchone()
        assert raw is not None
        return IntentRow.from_row(raw)

    async def _insert_trade(
        self,
        conn: aiosqlite.Connection,
        intent: IntentRow,
        qty: int,
        price: float,
        *,
        broker_order_id: str | None,
        stamp: str,
    ) -> None:
        """Insert the trade row of ``qty`` shares filled at ``price``, with its modelled costs."""
        assert self._terms is not None  # book_fill checked
        notional = qty * price
        slippage, commission = self._terms.trade_costs(qty, price)
        await conn.execute(
            "INSERT INTO trades (run_id, strategy_id, signal_id, intent_id, symbol, action,"
            " shares, requested_price, exec_price, slippage_cost, commission_cost,"
            " total_cost, notional, order_id, executed_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                intent.run_id,
                intent.strategy_id,
                intent.signal_id,
                intent.intent_id,
                intent.symbol,
                intent.side.upper(),
                qty,
                intent.reference_price,
                price,
                slippage,
                commission,
                slippage + commission,
                notional,
                broker_order_id or intent.broker_order_id,
                stamp,
            ),
        )

    @staticmethod
    async def _advance_intent(
        conn: aiosqlite.Connection,
        intent: IntentRow,
        qty: int,
        price: float,
        *,
        status: IntentStatus,
        broker_order_id: str | None,
        stamp: str,
    ) -> None:
        """Add ``qty`` shares at ``price`` to the intent: filled quantity, average price, status."""
        filled = intent.filled_qty + qty
        notional = qty * price
        avg = (
            (intent.filled_qty * (intent.avg_fill_price or 0.0) + notional) / filled
            if filled
            else None
        )
        await conn.execute(
            "UPDATE order_intents SET filled_qty = ?, avg_fill_price = ?, status = ?,"
            " broker_order_id = COALESCE(?, broker_order_id),"
            " acked_at = COALESCE(acked_at, ?),"
            " filled_at = CASE WHEN ? THEN COALESCE(filled_at, ?) ELSE filled_at END,"
            " error_code = NULL, error_message = NULL, updated_at = ? WHERE intent_id = ?",
            (
                filled,
                avg,
                str(status),
                broker_order_id,
                stamp,
                status is IntentStatus.FILLED,
                stamp,
                stamp,
                intent.intent_id,
            ),
        )

    async def _move_position(
        self, conn: aiosqlite.Connection, intent: IntentRow, qty: int, price: float, stamp: str
    ) -> None:
        async with conn.execute(
            "SELECT shares, avg_price, entry_date, atr_at_entry FROM positions"
            " WHERE strategy_id = ? AND symbol = ?",
            (intent.strategy_id, intent.symbol),
        ) as cur:
            pos = await cur.fetchone()
        held = int(pos["shares"]) if pos is not None else 0
        if intent.side == "sell":
            left = held - qty
            if left < 0:
                raise NegativePosition(
                    f"{intent.intent_id}: selling {qty} {intent.symbol} but strategy "
                    f"{intent.strategy} holds {held}"
                )
            if left == 0:
                await conn.execute(
                    "DELETE FROM positions WHERE strategy_id = ? AND symbol = ?",
                    (intent.strategy_id, intent.symbol),
                )
                return
            avg_price = float(pos["avg_price"] or 0.0) if pos is not None else 0.0
            await conn.execute(
                "UPDATE positions SET shares = ?, current_price = ?, market_value = ?,"
                " unrealized_pnl = ?, updated_at = ? WHERE strategy_id = ? AND symbol = ?",
                (
                    left,
                    price,
                    left * price,
                    (price - avg_price) * left,
                    stamp,
                    intent.strategy_id,
                    intent.symbol,
                ),
            )
            return
        shares = held + qty
        if pos is not None and held > 0:
            avg_price = (held * float(pos["avg_price"] or 0.0) + qty * price) / shares
            entry_date = pos["entry_date"] or intent.asof.isoformat()
            atr = pos["atr_at_entry"] if pos["atr_at_entry"] else intent.atr
        else:
            avg_price = price
            entry_date = intent.asof.isoformat()
            atr = intent.atr
        assert self._terms is not None  # book_fill checked
        stop = self._terms.stop_for(avg_price, atr, intent.stop_atr_multiple)
        await conn.execute(
            "INSERT INTO positions (strategy_id, symbol, shares, avg_price, current_price,"
            " market_value, unrealized_pnl, entry_date, stop_price, atr_at_entry, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(strategy_id, symbol) DO UPDATE SET shares = excluded.shares,"
            " avg_price = excluded.avg_price, current_price = excluded.current_price,"
            " market_value = excluded.market_value, unrealized_pnl = excluded.unrealized_pnl,"
            " entry_date = excluded.entry_date, stop_price = excluded.stop_price,"
            " atr_at_entry = excluded.atr_at_entry, updated_at = excluded.updated_at",
            (
                intent.strategy_id,
                intent.symbol,
                shares,
                avg_price,
                price,
                shares * price,
                (price - avg_price) * shares,
                entry_date,
                stop,
                atr,
                stamp,
            ),
        )

    # ------------------------------------------------------------ positions and cash

    async def unprotected(self) -> list[dict[str, Any]]:
        """Open positions without a stop (adopted from the broker, or bought without an
        ATR): strategy_id, strategy, symbol, shares, avg_price."""
        rows = await self._store.fetchall(
            "SELECT p.strategy_id, s.name AS strategy, p.symbol, p.shares, p.avg_price"
            " FROM positions p JOIN strategies s ON s.id = p.strategy_id"
            " WHERE p.shares > 0 AND p.stop_price IS NULL ORDER BY s.name, p.symbol"
        )
        return [dict(r) for r in rows]

    async def set_stop(
        self, strategy_id: int, symbol: str, stop: float, atr: float, at: dt.datetime
    ) -> bool:
        """Give a position without a stop ``stop`` (and its ATR); False if it had one."""
        async with self._store.transaction(durable=True) as conn:
            cur = await conn.execute(
                "UPDATE positions SET stop_price = ?, atr_at_entry = COALESCE(atr_at_entry, ?),"
                " updated_at = ? WHERE strategy_id = ? AND symbol = ? AND stop_price IS NULL",
                (stop, atr, at.isoformat(), strategy_id, symbol),
            )
            return cur.rowcount == 1

    async def held(self, strategy_id: int, symbol: str) -> int:
        """Shares of ``symbol`` the strategy holds (0 when none)."""
        row = await self._store.fetchone(
            "SELECT shares FROM positions WHERE strategy_id = ? AND symbol = ?",
            (strategy_id, symbol),
        )
        return int(row["shares"]) if row is not None else 0

    async def positions(self) -> list[dict[str, Any]]:
        """Every position row with its strategy's name, by strategy then symbol."""
        rows = await self._store.fetchall(
            "SELECT p.*, s.name AS strategy FROM positions p JOIN strategies s"
            " ON s.id = p.strategy_id ORDER BY s.name, p.symbol"
        )
        return [dict(r) for r in rows]

    async def local_cash(self, baseline: float) -> float:
        """``baseline`` plus the trades' cash deltas and corporate actions' credited cash.

        A buy spends notional + commission, a sell receives notional − commission.
        """
        row = await self._store.fetchone(
            "SELECT COALESCE(SUM(CASE WHEN action = 'BUY'"
            " THEN -(notional + commission_cost) ELSE notional - commission_cost END), 0.0)"
            " + (SELECT TOTAL(cash) FROM corporate_action_effects WHERE credited = 1) FROM trades"
        )
        return baseline + (float(row[0]) if row is not None else 0.0)

    async def cash_flows_by_strategy(self) -> dict[str, float]:
        """Each strategy's net cash: sells' proceeds less buys' cost, plus its credited
        corporate-action cash (dividends, cash in lieu).

        A strategy's own money is its allocation plus this: its realised P&L less what
        its open positions cost (``actors.risk.cash``).
        """
        rows = await self._store.fetchall(
            "SELECT s.name AS strategy, COALESCE(SUM(CASE WHEN t.action = 'BUY'"
            " THEN -(t.notional + t.commission_cost) ELSE t.notional - t.commission_cost END),"
            " 0.0) AS flow FROM trades t JOIN strategies s ON s.id = t.strategy_id"
            " GROUP BY s.name ORDER BY s.name"
        )
        flows = {r["strategy"]: float(r["flow"]) for r in rows}
        for strategy, cash in (await self.corporate_cash_by_strategy()).items():
            flows[strategy] = flows.get(strategy, 0.0) + cash
        return flows

    async def corporate_cash_by_strategy(self) -> dict[str, float]:
        """Each strategy's credited corporate-action cash (dividends, cash in lieu)."""
        rows = await self._store.fetchall(
            "SELECT s.name AS strategy, TOTAL(e.cash) AS cash FROM corporate_action_effects e"
            " JOIN strategies s ON s.id = e.strategy_id WHERE e.credited = 1 GROUP BY s.name"
            " ORDER BY s.name"
        )
        return {r["strategy"]: float(r["cash"]) for r in rows}

    async def fills(self) -> list[dict[str, Any]]:
        """Every trade as a fill for the performance report (``executed`` is the date)."""
        rows = await self._store.fetchall(
            "SELECT s.name AS strategy, t.symbol, t.action, t.shares, t.exec_price,"
            " t.commission_cost, t.slippage_cost, substr(t.executed_at, 1, 10) AS executed"
            " FROM trades t JOIN strategies s ON s.id = t.strategy_id ORDER BY t.id"
        )
        return [dict(r) for r in rows]

    async def trade_ledger(self) -> list[dict[str, Any]]:
        """Every trade with its date, strategy name and intent (the backtest's trades.csv)."""
        rows = await self._store.fetchall(
            "SELECT t.run_id, substr(t.executed_at, 1, 10) AS date, s.name AS strategy,"
            " t.symbol, t.action, t.shares, t.requested_price, t.exec_price, t.slippage_cost,"
            " t.commission_cost, t.total_cost, t.notional, t.intent_id"
            " FROM trades t JOIN strategies s ON s.id = t.strategy_id ORDER BY t.id"
        )
        return [dict(r) for r in rows]

    async def intent_sizes(self, asof: dt.date) -> dict[tuple[str, str, str], int]:
        """(strategy, symbol, side) -> qty of the cycle's own intents on ``asof`` (not flatten,
        not the protective stops resting at the broker)."""
        rows = await self._store.fetchall(
            "SELECT strategy, symbol, side, target_qty FROM order_intents"
            " WHERE asof_date = ? AND intent_kind IN ('ENTRY', 'EXIT', 'STOP')"
            " AND stop_price IS NULL",
            (asof.isoformat(),),
        )
        return {(r["strategy"], r["symbol"], r["side"]): int(r["target_qty"]) for r in rows}

    async def trades_for(self, run_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT t.*, s.name AS strategy FROM trades t JOIN strategies s"
            " ON s.id = t.strategy_id WHERE t.run_id = ? ORDER BY t.id",
            (run_id,),
        )
        return [dict(r) for r in rows]

    async def resting_stop_fills(self, after_trade: int = 0) -> list[dict[str, Any]]:
        """Fills of protective stops resting at the broker (stop-loss exits), trade id
        above ``after_trade``: id, strategy, symbol, shares, exec_price, stop_price,
        executed_at, intent_id; oldest first."""
        rows = await self._store.fetchall(
            "SELECT t.id, s.name AS strategy, t.symbol, t.shares, t.exec_price,"
            " i.stop_price, t.executed_at, t.intent_id FROM trades t"
            " JOIN order_intents i ON i.intent_id = t.intent_id"
            " JOIN strategies s ON s.id = t.strategy_id"
            " WHERE i.stop_price IS NOT NULL AND t.id > ? ORDER BY t.id",
            (after_trade,),
        )
        return [dict(r) for r in rows]

    async def trades_for_intent(self, intent_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT * FROM trades WHERE intent_id = ? ORDER BY id", (intent_id,)
        )
        return [dict(r) for r in rows]
