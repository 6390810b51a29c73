"""Pending signals: valid entries blocked only by heat or cash, re-evaluated for a few sessions."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from actors.messages import Signal, SignalAction
from daemon.store.core import Store

# A session's reads of the rows still pending; each reads the partial index over them
# (schema version 6), not every signal ever parked.
PENDING_KEYS_SQL = (
    "SELECT strategy_id, symbol, MIN(id) FROM pending_signals"
    " WHERE status = 'PENDING' GROUP BY strategy_id, symbol"
)
LIVE_SQL = (
    "SELECT p.*, s.name AS strategy FROM pending_signals p JOIN strategies s"
    " ON s.id = p.strategy_id WHERE p.status = 'PENDING' AND p.created_asof < ?"
    " AND p.expires_asof >= ? ORDER BY p.id"
)
EXPIRE_SQL = (
    "UPDATE pending_signals SET status = 'EXPIRED' WHERE status = 'PENDING' AND expires_asof < ?"
)


@dataclass(frozen=True, slots=True)
class PendingRow:
    id: int
    strategy: str
    symbol: str
    signal: Signal
    blocked_reason: str
    created_asof: dt.date
    expires_asof: dt.date
    retry_count: int


@dataclass(frozen=True, slots=True)
class Parked:
    """An entry to park: its strategy's id, the signal, why it was blocked."""

    strategy_id: int
    signal: Signal
    reason: str


def plan_parking(
    parked: Sequence[Parked], existing: Mapping[tuple[int, str], int]
) -> tuple[list[tuple[Parked, str, int]], list[tuple[int, str]]]:
    """What parking ``parked`` in order does, given the pending ids by (strategy, symbol).

    The new rows ``(first entry, last reason, retries)``: an entry parked again in
    the same batch retries its new row. And the retries of rows already pending,
    ``(pending id, reason)``, one per entry, in order.
    """
    new: dict[tuple[int, str], tuple[Parked, str, int]] = {}
    retries: list[tuple[int, str]] = []
    for p in parked:
        key = (p.strategy_id, p.signal.symbol)
        if key in existing:
            retries.append((existing[key], p.reason))
        elif key in new:
            first, _, count = new[key]
            new[key] = (first, p.reason, count + 1)
        else:
            new[key] = (p, p.reason, 0)
    return list(new.values()), retries


def _payload(signal: Signal) -> str:
    return json.dumps(
        {
            "strategy": signal.strategy,
            "symbol": signal.symbol,
            "action": str(signal.action),
            "confidence": signal.confidence,
            "price": signal.price,
            "atr": signal.atr,
            "shares": signal.shares,
            "reasoning": signal.reasoning,
        }
    )


class PendingStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def park(
        self,
        strategy_id: int,
        signal: Signal,
        reason: str,
        *,
        asof: dt.date,
        expires_asof: dt.date,
        at: dt.datetime,
    ) -> None:
        """Keep a blocked entry; one pending row per (strategy, symbol) at a time."""
        await self.park_many(
            [Parked(strategy_id, signal, reason)], asof=asof, expires_asof=expires_asof, at=at
        )

    async def park_many(
        self,
        parked: Sequence[Parked],
        *,
        asof: dt.date,
        expires_asof: dt.date,
        at: dt.datetime,
    ) -> None:
        """Keep a session's blocked entries, in order, in one transaction.

        As if each were parked alone: a (strategy, symbol) with a pending row
        (the oldest, should there be two) has it retried, any other gets a new row.
        """
        if not parked:
            return
        async with self._store.transaction() as conn:
            async with conn.execute(PENDING_KEYS_SQL) as cur:
                existing = {(int(r[0]), str(r[1])): int(r[2]) for r in await cur.fetchall()}
            new, retries = plan_parking(parked, existing)
            stamp = at.isoformat()
            await conn.executemany(
                "INSERT INTO pending_signals (strategy_id, symbol, signal_data_json,"
                " blocked_reason, created_at, created_asof, expires_asof, retry_count,"
                " last_retry_at) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        p.strategy_id,
                        p.signal.symbol,
                        _payload(p.signal),
                        reason,
                        stamp,
                        asof.isoformat(),
                        expires_asof.isoformat(),
                        count,
                        stamp if count else None,
                    )
                    for p, reason, count in new
                ],
            )
            await conn.executemany(
                "UPDATE pending_signals SET retry_count = retry_count + 1, last_retry_at = ?,"
                " blocked_reason = ? WHERE id = ?",
                [(stamp, reason, pending_id) for pending_id, reason in retries],
            )

    async def live(self, asof: dt.date) -> list[PendingRow]:
        """Pending rows still within their window on ``asof`` (created before it)."""
        rows = await self._store.fetchall(LIVE_SQL, (asof.isoformat(), asof.isoformat()))
        out = []
        for r in rows:
            data = json.loads(r["signal_data_json"])
            out.append(
                PendingRow(
                    id=int(r["id"]),
                    strategy=r["strategy"],
                    symbol=r["symbol"],
                    signal=Signal(
                        strategy=data["strategy"],
                        symbol=data["symbol"],
                        action=SignalAction(data["action"]),
                        confidence=float(data["confidence"]),
                        price=float(data["price"]),
                        atr=float(data["atr"]),
                        shares=int(data["shares"]),
                        reasoning=str(data["reasoning"]),
                    ),
                    blocked_reason=r["blocked_reason"],
                    created_asof=dt.date.fromisoformat(r["created_asof"]),
                    expires_asof=dt.date.fromisoformat(r["expires_asof"]),
                    retry_count=int(r["retry_count"]),
                )
            )
        return out

    async def expire(self, asof: dt.date) -> int:
        """Mark rows whose window ended before ``asof`` EXPIRED; returns how many."""
        async with self._store.transaction() as conn:
            cur = await conn.execute(EXPIRE_SQL, (asof.isoformat(),))
            return cur.rowcount

    async def resolve(self, pending_id: int, status: str, at: dt.datetime) -> None:
        """Close a pending row (EXECUTED when it finally went through)."""
        await self.resolve_many([pending_id], status, at)

    async def resolve_many(self, pending_ids: Sequence[int], status: str, at: dt.datetime) -> None:
        """Close pending rows, in one transaction (nothing to do for none)."""
        if not pending_ids:
            return
        await self._store.executemany(
            "UPDATE pending_signals SET status = ?, last_retry_at = ? WHERE id = ?",
            [(status, at.isoformat(), pending_id) for pending_id in pending_ids],
        )

    async def all(self) -> list[dict[str, object]]:
        rows = await self._store.fetchall(
            "SELECT p.id, s.name AS strategy, p.symbol, p.blocked_reason, p.created_asof,"
            " p.expires_asof, p.retry_count, p.status FROM pending_signals p JOIN strategies s"
            " ON s.id = p.strategy_id ORDER BY p.id"
        )
        return [dict(r) for r in rows]
