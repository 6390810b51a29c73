"""The account's equity at each session's close (``equity_closes``).

One row per session; a later reading of the same session replaces an earlier
one (the broker's own ``last_equity`` the next morning supersedes an
after-hours reading). ``source`` says where the figure came from:
``last_equity`` (the broker's equity at the previous close), ``after_close``
(the equity read while the market was closed, i.e. at the last close),
``broker_history`` (the broker's portfolio history) or ``session_close`` (a
backtest's mark after the session closed).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

from daemon.store.core import Store

SOURCES = ("last_equity", "after_close", "broker_history", "session_close")


class EquityCloses:
    """Reads and writes ``equity_closes``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, session: dt.date, equity: float, source: str, at: dt.datetime) -> None:
        """Store ``equity`` as the close of ``session`` (unless it is not finite and positive)."""
        if source not in SOURCES:
            raise ValueError(f"unknown equity source {source!r}; known: {', '.join(SOURCES)}")
        if not (math.isfinite(equity) and equity > 0):
            return
        await self._store.execute(
            "INSERT INTO equity_closes (session, equity, source, recorded_at) VALUES (?,?,?,?)"
            " ON CONFLICT(session) DO UPDATE SET equity = excluded.equity,"
            " source = excluded.source, recorded_at = excluded.recorded_at",
            (session.isoformat(), float(equity), source, at.isoformat()),
        )

    async def get_many(self, sessions: Iterable[dt.date]) -> dict[dt.date, float]:
        """The recorded close of each of ``sessions`` that has one."""
        wanted = [d.isoformat() for d in sessions]
        if not wanted:
            return {}
        marks = ", ".join("?" for _ in wanted)
        rows = await self._store.fetchall(
            f"SELECT session, equity FROM equity_closes WHERE session IN ({marks})",  # noqa: S608
            wanted,
        )
        return {dt.date.fromisoformat(r["session"]): float(r["equity"]) for r in rows}

    async def peak(self, since: dt.date | None = None) -> float | None:
        """The highest recorded close (of sessions on or after ``since``), or None."""
        row = await self._store.fetchone(
            "SELECT MAX(equity) FROM equity_closes WHERE session >= ?",
            ((since or dt.date.min).isoformat(),),
        )
        return None if row is None or row[0] is None else float(row[0])

    async def all(self) -> list[tuple[dt.date, float, str]]:
        """Every recorded close, oldest first."""
        rows = await self._store.fetchall(
            "SELECT session, equity, source FROM equity_closes ORDER BY session"
        )
        return [
            (dt.date.fromisoformat(r["session"]), float(r["equity"]), r["source"]) for r in rows
        ]
