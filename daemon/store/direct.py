"""aiosqlite's connection API over a plain ``sqlite3`` connection, on the calling thread.

Only for *scratch* stores (a backtest's output database): every statement runs
on the event loop's thread, which saves a thread round trip per statement (the
largest cost of a backtest session) at the price of blocking the loop for the
few microseconds a small statement takes. Never for the daemon's state, whose
loop must stay free for the control socket and the watchdog.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any


class DirectCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _Statement:
    """Awaitable (gives the cursor) and an async context manager (closes it), like aiosqlite."""

    def __init__(self, run: Callable[[], sqlite3.Cursor]) -> None:
        self._run = run
        self._cursor: DirectCursor | None = None

    def __await__(self) -> Generator[Any, None, DirectCursor]:
        return self._result().__await__()

    async def _result(self) -> DirectCursor:
        return DirectCursor(self._run())

    async def __aenter__(self) -> DirectCursor:
        self._cursor = DirectCursor(self._run())
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class DirectConnection:
    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, uri=True, isolation_level=None, check_same_thread=False)

    @property
    def row_factory(self) -> Any:
        return self._conn.row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self._conn.row_factory = factory

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Statement:
        return _Statement(lambda: self._conn.execute(sql, params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> _Statement:
        return _Statement(lambda: self._conn.executemany(sql, rows))

    async def executescript(self, script: str) -> None:
        self._conn.executescript(script)

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        """aiosqlite's stop(): nothing runs in the background here."""
