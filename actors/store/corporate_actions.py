"""Corporate actions in the daemon's own book: recorded once, applied once, credited once.

- ``record`` keeps each reported action (``action_id`` is stable over re-reads and
  sources: the first report wins); a re-read changes nothing.
- ``apply`` changes the book for one action in one durable transaction, and only
  once (``applied_at``): a split or stock dividend rescales every strategy's row of
  the symbol (shares, average price, stop, ATR, last price; the fraction paid as
  cash in lieu), a cash dividend records each holder's entitlement at the ex date,
  a rename moves the rows to the new symbol.
- ``refresh_bars`` forgets the cached bars of a split or rename symbol once, when the
  ex-date bar enters the cycle's window (the session before the trading date): the
  next fetch brings the whole history adjusted for it. Not earlier: a cycle run the
  evening before the ex date (or before the provider adjusts) would cache the
  history unadjusted again, and the next day's bar would then look like a jump.
- ``credit_due`` books the cash of dividends whose pay date has come.

Credited cash (``corporate_action_effects.credited = 1``) counts in the local cash
(``actors.store.broker_state``) and in the strategy's own money
(``OrderStore.cash_flows_by_strategy``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import aiosqlite

from actors.market.corporate_actions import (
    ActionKind,
    CorporateAction,
    dividend_cash,
    rescale,
)
from daemon.store.core import Row, Store

#: Ids per ``IN (...)`` query, well under SQLite's limit on bound parameters.
_IDS_PER_QUERY = 500

# The reads of every cycle. Each searches an index of schema version 7 over the few
# actions still waiting for that step (or the latest ex dates), so a session's cost
# follows the actions due then, not every action ever recorded.
UNAPPLIED_SQL = (
    "SELECT * FROM corporate_actions WHERE applied_at IS NULL AND ex_date <= ?"
    " ORDER BY ex_date, action_id"
)
BARS_DUE_SQL = (
    "SELECT action_id, symbol, new_symbol FROM corporate_actions"
    " WHERE bars_refreshed_at IS NULL AND ex_date <= ? AND kind != 'cash_dividend'"
    " ORDER BY ex_date, action_id"
)
CREDIT_DUE_SQL = (
    "SELECT * FROM corporate_actions WHERE credited_at IS NULL AND kind = 'cash_dividend'"
    " AND applied_at IS NOT NULL AND COALESCE(pay_date, ex_date) <= ?"
    " ORDER BY ex_date, action_id"
)
UNADJUSTED_SQL = (
    "SELECT * FROM corporate_actions WHERE applied_at IS NOT NULL AND ex_date > ?"
    " AND kind IN ('forward_split', 'reverse_split', 'stock_dividend')"
    " ORDER BY ex_date, action_id"
)


@dataclass(frozen=True, slots=True)
class Effect:
    """What one action did to one strategy's holding."""

    action_id: str
    strategy: str
    symbol: str
    shares_before: int
    shares_after: int
    cash: float
    credited: bool


@dataclass(frozen=True, slots=True)
class RecordedAction:
    action: CorporateAction
    applied_at: dt.datetime | None
    credited_at: dt.datetime | None


def _action(row: Row) -> RecordedAction:
    def day(v: object) -> dt.date | None:
        return dt.date.fromisoformat(str(v)) if v else None

    def moment(v: object) -> dt.datetime | None:
        return dt.datetime.fromisoformat(str(v)) if v else None

    ex = day(row["ex_date"])
    assert ex is not None
    action = CorporateAction(
        kind=ActionKind(row["kind"]),
        symbol=str(row["symbol"]),
        ex_date=ex,
        source=str(row["source"]),
        ratio=float(row["ratio"]),
        cash_per_share=float(row["cash_per_share"]),
        pay_date=day(row["pay_date"]),
        new_symbol=row["new_symbol"],
        source_id=row["source_id"],
    )
    return RecordedAction(action, moment(row["applied_at"]), moment(row["credited_at"]))


class CorporateActionStore:
    """Reads and writes ``corporate_actions`` and ``corporate_action_effects``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, actions: Iterable[CorporateAction], at: dt.datetime) -> list[str]:
        """Keep the actions not seen before (durable); the ids of those that were new.

        The ids already recorded are read first, so a re-read of known actions (every
        session's lookback) writes nothing.
        """
        fresh: dict[str, CorporateAction] = {}
        for a in actions:
            fresh.setdefault(a.action_id, a)
        for known in await self._known(list(fresh)):
            del fresh[known]
        new: list[str] = []
        if not fresh:
            return new
        async with self._store.transaction(durable=True) as conn:
            for action_id, a in fresh.items():
                cur = await conn.execute(
                    "INSERT INTO corporate_actions (action_id, kind, symbol, ex_date, pay_date,"
                    " ratio, cash_per_share, new_symbol, source, source_id, recorded_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(action_id) DO NOTHING",
                    (
                        action_id,
                        str(a.kind),
                        a.symbol,
                        a.ex_date.isoformat(),
                        a.pay_date.isoformat() if a.pay_date else None,
                        a.ratio,
                        a.cash_per_share,
                        a.new_symbol,
                        a.source,
                        a.source_id,
                        at.isoformat(),
                    ),
                )
                if cur.rowcount == 1:
                    new.append(action_id)
        return new

    async def _known(self, action_ids: list[str]) -> set[str]:
        """Which of ``action_ids`` are recorded already."""
        known: set[str] = set()
        for i in range(0, len(action_ids), _IDS_PER_QUERY):
            chunk = action_ids[i : i + _IDS_PER_QUERY]
            rows = await self._store.fetchall(
                "SELECT action_id FROM corporate_actions WHERE action_id IN"  # noqa: S608 -- placeholders only
                f" ({','.join('?' * len(chunk))})",
                chunk,
            )
            known.update(str(r["action_id"]) for r in rows)
        return known

    async def unapplied(self, through: dt.date) -> list[CorporateAction]:
        """Recorded actions with ``ex_date <= through`` not applied yet, oldest first."""
        rows = await self._store.fetchall(UNAPPLIED_SQL, (through.isoformat(),))
        return [_action(r).action for r in rows]

    async def recorded(self, symbols: Iterable[str] | None = None) -> list[RecordedAction]:
        """Every recorded action (of ``symbols`` when given), by ex date."""
        rows = await self._store.fetchall(
            "SELECT * FROM corporate_actions ORDER BY ex_date, action_id"
        )
        wanted = set(symbols) if symbols is not None else None
        found = [_action(r) for r in rows]
        return [r for r in found if wanted is None or r.action.symbol in wanted]

    async def effects(self, action_id: str | None = None) -> list[Effect]:
        sql = (
            "SELECT e.*, s.name AS strategy FROM corporate_action_effects e"
            " JOIN strategies s ON s.id = e.strategy_id"
        )
        rows = await self._store.fetchall(
            sql + (" WHERE e.action_id = ?" if action_id else "") + " ORDER BY e.action_id, s.name",
            (action_id,) if action_id else (),
        )
        return [
            Effect(
                str(r["action_id"]),
                str(r["strategy"]),
                str(r["symbol"]),
                int(r["shares_before"]),
                int(r["shares_after"]),
                float(r["cash"]),
                bool(r["credited"]),
            )
            for r in rows
        ]

    async def apply(
        self,
        action: CorporateAction,
        at: dt.datetime,
        *,
        last_close: float | None = None,
    ) -> list[Effect]:
        """Change the book for ``action`` once (see the module docstring); its effects.

        ``last_close`` (the unadjusted close before the ex date) prices cash in lieu; by
        default the last cached close before the ex date (read before the cache is
        forgotten), else the new average price.
        An action already applied, or not recorded, changes nothing and returns [].
        """
        stamp = at.isoformat()
        async with self._store.transaction(durable=True) as conn:
            cur = await conn.execute(
                "UPDATE corporate_actions SET applied_at = ? WHERE action_id = ?"
                " AND applied_at IS NULL",
                (stamp, action.action_id),
            )
            if cur.rowcount != 1:
                return []
            rows = await _holdings(conn, action.symbol)
            if last_close is None:
                last_close = await _cached_close(conn, action)
            if action.kind.rescales:
                await _rescale(conn, action, rows, last_close, stamp)
            elif action.kind is ActionKind.CASH_DIVIDEND:
                await _entitle(conn, action, rows)
            else:
                await _rename(conn, action, rows, stamp)
        return await self.effects(action.action_id)

    async def refresh_bars(self, through: dt.date, at: dt.datetime) -> list[str]:
        """Forget the cached bars of splits and renames with ``ex_date <= through``, once.

        ``through`` is the last session of the cycle's window; returns the symbols.
        """
        rows = await self._store.fetchall(BARS_DUE_SQL, (through.isoformat(),))
        symbols: list[str] = []
        if not rows:
            return symbols
        async with self._store.transaction() as conn:
            for r in rows:
                for symbol in {str(r["symbol"]), str(r["new_symbol"] or r["symbol"])}:
                    await conn.execute("DELETE FROM bars WHERE symbol = ?", (symbol,))
                    symbols.append(symbol)
                await conn.execute(
                    "UPDATE corporate_actions SET bars_refreshed_at = ? WHERE action_id = ?",
                    (at.isoformat(), r["action_id"]),
                )
        return sorted(set(symbols))

    async def credit_due(self, through: dt.date, at: dt.datetime) -> list[CorporateAction]:
        """Book the cash of applied dividends whose pay date is ``<= through``; which ones."""
        rows = await self._store.fetchall(CREDIT_DUE_SQL, (through.isoformat(),))
        due = [_action(r).action for r in rows]
        if not due:
            return []
        async with self._store.transaction(durable=True) as conn:
            for a in due:
                await conn.execute(
                    "UPDATE corporate_action_effects SET credited = 1 WHERE action_id = ?",
                    (a.action_id,),
                )
                await conn.execute(
                    "UPDATE corporate_actions SET credited_at = ? WHERE action_id = ?",
                    (at.isoformat(), a.action_id),
                )
        return due

    async def unadjusted(self, window_end: dt.date) -> dict[str, CorporateAction]:
        """Symbol -> an applied split whose ex date is after ``window_end`` (the last
        session of the cycle's history): the book has the new scale, the bars the old."""
        rows = await self._store.fetchall(UNADJUSTED_SQL, (window_end.isoformat(),))
        return {str(r["symbol"]): _action(r).action for r in rows}

    async def renamed_away(self, through: dt.date) -> dict[str, tuple[str, dt.date]]:
        """Old symbol -> (new symbol, ex date), for the renames recorded with ex date by
        ``through``: from then on the old ticker no longer trades (the broker refuses it).
        """
        rows = await self._store.fetchall(
            "SELECT symbol, new_symbol, ex_date FROM corporate_actions"
            " WHERE kind = 'rename' AND ex_date <= ? ORDER BY ex_date, action_id",
            (through.isoformat(),),
        )
        return {
            str(r["symbol"]): (str(r["new_symbol"]), dt.date.fromisoformat(str(r["ex_date"])))
            for r in rows
        }

    async def pending_at_broker(self, on_or_after: dt.date) -> Mapping[str, tuple[int, int]]:
        """Symbol -> (shares before, shares after) of splits applied here from ``on_or_after``.

        What the reconciliation accepts while the broker has not applied them yet.
        """
        rows = await self._store.fetchall(
            "SELECT e.symbol, TOTAL(e.shares_before) AS before, TOTAL(e.shares_after) AS after"
            " FROM corporate_action_effects e JOIN corporate_actions a"
            " ON a.action_id = e.action_id WHERE a.ex_date >= ?"
            " AND a.kind IN ('forward_split', 'reverse_split', 'stock_dividend')"
            " GROUP BY e.symbol",
            (on_or_after.isoformat(),),
        )
        return {str(r["symbol"]): (round(r["before"]), round(r["after"])) for r in rows}


async def _cached_close(conn: aiosqlite.Connection, action: CorporateAction) -> float | None:
    async with conn.execute(
        "SELECT close FROM bars WHERE symbol = ? AND date < ? ORDER BY date DESC LIMIT 1",
        (action.symbol, action.ex_date.isoformat()),
    ) as cur:
        row = await cur.fetchone()
    return float(row[0]) if row is not None else None


async def _holdings(conn: aiosqlite.Connection, symbol: str) -> list[aiosqlite.Row]:
    async with conn.execute(
        "SELECT strategy_id, shares, avg_price, stop_price, atr_at_entry, current_price"
        " FROM positions WHERE symbol = ? AND shares > 0 ORDER BY strategy_id",
        (symbol,),
    ) as cur:
        return list(await cur.fetchall())


async def _effect(
    conn: aiosqlite.Connection,
    action: CorporateAction,
    strategy_id: int,
    *,
    before: int,
    after: int,
    cash: float,
    credited: bool,
) -> None:
    await conn.execute(
        "INSERT INTO corporate_action_effects (action_id, strategy_id, symbol, shares_before,"
        " shares_after, cash, credited) VALUES (?,?,?,?,?,?,?)",
        (action.action_id, strategy_id, action.symbol, before, after, cash, int(credited)),
    )


async def _rescale(
    conn: aiosqlite.Connection,
    action: CorporateAction,
    rows: list[aiosqlite.Row],
    last_close: float | None,
    stamp: str,
) -> None:
    """Shares x ratio (fraction in cash), per-share values / ratio, for every holder."""
    for r in rows:
        before = round(r["shares"])
        new = rescale(
            before,
            float(r["avg_price"] or 0.0),
            r["stop_price"],
            r["atr_at_entry"],
            action.ratio,
            last_close=last_close,
        )
        price = r["current_price"] / action.ratio if r["current_price"] else None
        if new.shares > 0:
            await conn.execute(
                "UPDATE positions SET shares = ?, avg_price = ?, stop_price = ?,"
                " atr_at_entry = ?, current_price = ?, market_value = ?, updated_at = ?"
                " WHERE strategy_id = ? AND symbol = ?",
                (
                    new.shares,
                    new.avg_price,
                    new.stop,
                    new.atr,
                    price,
                    new.shares * price if price else None,
                    stamp,
                    r["strategy_id"],
                    action.symbol,
                ),
            )
        else:
            await conn.execute(
                "DELETE FROM positions WHERE strategy_id = ? AND symbol = ?",
                (r["strategy_id"], action.symbol),
            )
        await _effect(
            conn,
            action,
            r["strategy_id"],
            before=before,
            after=new.shares,
            cash=new.cash_in_lieu,
            credited=True,
        )


async def _entitle(
    conn: aiosqlite.Connection, action: CorporateAction, rows: list[aiosqlite.Row]
) -> None:
    """Each holder at the ex date is owed its dividend; the cash counts from the pay date."""
    for r in rows:
        shares = round(r["shares"])
        cash = dividend_cash(shares, action)
        await _effect(
            conn, action, r["strategy_id"], before=shares, after=shares, cash=cash, credited=False
        )


async def _rename(
    conn: aiosqlite.Connection, action: CorporateAction, rows: list[aiosqlite.Row], stamp: str
) -> None:
    """The rows, their stops and history move to the new symbol."""
    assert action.new_symbol is not None
    for r in rows:
        shares = round(r["shares"])
        await conn.execute(
            "UPDATE positions SET symbol = ?, updated_at = ? WHERE strategy_id = ? AND symbol = ?",
            (action.new_symbol, stamp, r["strategy_id"], action.symbol),
        )
        await _effect(
            conn, action, r["strategy_id"], before=shares, after=shares, cash=0.0, credited=True
        )
