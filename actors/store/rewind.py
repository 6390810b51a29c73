"""Rewind a *copy* of the state database to the start of a session (for replays).

Everything recorded on or after ``day`` is removed (cycles, signals, funnel,
rejections, intents and their trades, pending signals parked that day or
later, start-of-day values), and positions are rebuilt from the trades that
remain, each with the stop the live order store would have given it (the
same ``FillTerms``, the entry intent's own ATR multiple). Never run on the
live database: ``replay`` works on a backup copy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from actors.store.orders import FillTerms
from actors.store.sim_broker import forget_cached_book
from daemon.store.core import Store


@dataclass(slots=True)
class _Lot:
    held: float = 0.0
    cost: float = 0.0
    entry: str | None = None
    atr: float | None = None
    multiple: float | None = None


@dataclass(frozen=True, slots=True)
class RebuiltPosition:
    strategy_id: int
    symbol: str
    shares: int
    avg_price: float
    entry_date: str | None
    atr: float | None


async def rewind_to(store: Store, day: dt.date, *, terms: FillTerms) -> list[RebuiltPosition]:
    """Remove what happened on or after ``day``; rebuild ``positions`` from earlier trades.

    ``terms`` places each rebuilt position's stop, as ``OrderStore.book_fill`` did.
    """
    d = day.isoformat()
    async with store.transaction() as conn:
        await conn.execute(
            "DELETE FROM trades WHERE intent_id IN"
            " (SELECT intent_id FROM order_intents WHERE asof_date >= ?)"
            " OR substr(executed_at, 1, 10) >= ?",
            (d, d),
        )
        await conn.execute(
            "DELETE FROM signal_rejections WHERE run_id IN"
            " (SELECT run_id FROM cycles WHERE asof_date >= ?)",
            (d,),
        )
        await conn.execute(
            "DELETE FROM signal_funnel WHERE run_id IN"
            " (SELECT run_id FROM cycles WHERE asof_date >= ?)",
            (d,),
        )
        await conn.execute("DELETE FROM order_intents WHERE asof_date >= ?", (d,))
        await conn.execute("DELETE FROM signals WHERE asof_date >= ?", (d,))
        await conn.execute("DELETE FROM cycles WHERE asof_date >= ?", (d,))
        await conn.execute("DELETE FROM pending_signals WHERE created_asof >= ?", (d,))
        await conn.execute(
            "UPDATE pending_signals SET status = 'PENDING' WHERE status != 'PENDING'"
            " AND expires_asof >= ?",
            (d,),
        )
        await conn.execute(
            "DELETE FROM system_state WHERE key LIKE 'start_of_day_equity:%'"
            " AND substr(key, 22) >= ?",
            (d,),
        )
        await conn.execute("DELETE FROM system_state WHERE key = 'consecutive_failures'")
        await conn.execute("DELETE FROM kill_switches")
        async with conn.execute(
            "SELECT t.strategy_id, t.symbol, t.action, t.shares, t.exec_price, i.asof_date, i.atr,"
            " i.stop_atr_multiple"
            " FROM trades t LEFT JOIN order_intents i ON i.intent_id = t.intent_id ORDER BY t.id"
        ) as cur:
            trades = await cur.fetchall()
        book: dict[tuple[int, str], _Lot] = {}
        for strategy_id, symbol, action, shares, price, asof, atr, multiple in trades:
            lot = book.setdefault((int(strategy_id), str(symbol)), _Lot())
            if str(action).upper() == "BUY":
                if lot.held <= 0:
                    lot.entry, lot.atr = asof, float(atr) if atr is not None else None
                    lot.multiple = float(multiple) if multiple is not None else None
                lot.held += float(shares)
                lot.cost += float(shares) * float(price)
            else:
                avg = lot.cost / lot.held if lot.held > 0 else 0.0
                lot.held = max(0.0, lot.held - float(shares))
                lot.cost = avg * lot.held
        await conn.execute("DELETE FROM positions")
        rebuilt = []
        for (strategy_id, symbol), lot in sorted(book.items()):
            if lot.held <= 0:
                continue
            avg = lot.cost / lot.held
            stop = terms.stop_for(avg, lot.atr, lot.multiple)
            await conn.execute(
                "INSERT INTO positions (strategy_id, symbol, shares, avg_price, entry_date,"
                " stop_price, atr_at_entry) VALUES (?,?,?,?,?,?,?)",
                (strategy_id, symbol, lot.held, avg, lot.entry, stop, lot.atr),
            )
            rebuilt.append(
                RebuiltPosition(strategy_id, symbol, int(lot.held), avg, lot.entry, lot.atr)
            )
        await conn.execute("DELETE FROM sim_orders")
        await conn.execute("DELETE FROM sim_positions")
        await conn.execute("DELETE FROM sim_corporate_actions")
        await conn.execute("DELETE FROM sim_account")
    forget_cached_book(store)
    return rebuilt
