"""Pending signals: valid entries blocked only by heat or cash, re-evaluated for a few sessions."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from actors.messages import Signal, SignalAction
from daemon.store.core import Store


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
        payload = json.dumps(
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
        async with self._store.transaction() as conn:
            async with conn.execute(
                "SELECT id FROM pending_signals WHERE strategy_id = ? AND symbol = ?"
                " AND status = 'PENDING'",
                (strategy_id, signal.symbol),
            ) as cur:
                existing = await cur.fetchone()
            if existing is not None:
                await conn.execute(
                    "UPDATE pending_signals SET retry_count = retry_count + 1, last_retry_at = ?,"
                    " blocked_reason = ? WHERE id = ?",
                    (at.isoformat(), reason, existing[0]),
                )
                return
            await conn.execute(
                "INSERT INTO pending_signals (strategy_id, symbol, signal_data_json,"
                " blocked_reason, created_at, created_asof, expires_asof) VALUES (?,?,?,?,?,?,?)",
                (
                    strategy_id,
                    signal.symbol,
                    payload,
                    reason,
                    at.isoformat(),
                    asof.isoformat(),
                    expires_asof.isoformat(),
                ),
            )

    async def live(self, asof: dt.date) -> list[PendingRow]:
        """Pending rows still within their window on ``asof`` (created before it)."""
        rows = await self._store.fetchall(
            "SELECT p.*, s.name AS strategy FROM pending_signals p JOIN strategies s"
            " ON s.id = p.strategy_id WHERE p.status = 'PENDING' AND p.created_asof < ?"
            " AND p.expires_asof >= ? ORDER BY p.id",
            (asof.isoformat(), asof.isoformat()),
        )
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
            cur = await conn.execute(
                "UPDATE pending_signals SET status = 'EXPIRED' WHERE status = 'PENDING'"
                " AND expires_asof < ?",
                (asof.isoformat(),),
            )
            return cur.rowcount

    async def resolve(self, pending_id: int, status: str, at: dt.datetime) -> None:
        """Close a pending row (EXECUTED when it finally went through)."""
        await self._store.execute(
            "UPDATE pending_signals SET status = ?, last_retry_at = ? WHERE id = ?",
            (status, at.isoformat(), pending_id),
        )

    async def all(self) -> list[dict[str, object]]:
        rows = await self._store.fetchall(
            "SELECT p.id, s.name AS strategy, p.symbol, p.blocked_reason, p.created_asof,"
            " p.expires_asof, p.retry_count, p.status FROM pending_signals p JOIN strategies s"
            " ON s.id = p.strategy_id ORDER BY p.id"
        )
        return [dict(r) for r in rows]
