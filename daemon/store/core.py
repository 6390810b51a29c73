"""The connection, the lock, migrations and transactions. All SQL lives in ``daemon.store``.

- WAL, foreign keys on, ``synchronous=NORMAL`` by default and ``FULL`` for the
  transactions that must survive power loss (order intents, kill switches):
  ``async with store.transaction(durable=True)``.
- One writer: every write goes through ``transaction()``, which holds an
  asyncio lock and opens ``BEGIN IMMEDIATE`` so a write never upgrades late.
- A second daemon on the same state directory is refused (an ``flock`` on a
  lock file beside the database). A file that is not a SQLite database, fails
  ``quick_check``, or was written by a newer version is refused, never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from daemon.errors import StoreCorruptError, StoreError, StoreLockedError, StoreVersionError
from daemon.store.schema import LATEST_VERSION, MIGRATIONS

SQLITE_HEADER = b"SQLite format 3\x00"
Row = sqlite3.Row


class StoreLock:
    """An exclusive ``flock`` on ``<db>.lock``; released by the kernel if we die."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError):
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise StoreLockedError(
                f"another tradingd{who} is using {self.path.parent}; "
                "stop it first or point this one at a different state directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Store:
    """The state database. Use ``await Store.open(path)``; ``await store.close()`` at exit."""

    def __init__(self, path: Path, conn: aiosqlite.Connection, lock: StoreLock | None) -> None:
        self.path = path
        self._conn = conn
        self._lock = lock
        self._write_lock = asyncio.Lock()
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, path: Path, *, lock: bool = True, readonly: bool = False) -> Store:
        """Open (creating and migrating if needed) the database at ``path``."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create state directory {path.parent}: {exc}") from exc
        file_lock: StoreLock | None = None
        if lock and not readonly:
            file_lock = StoreLock(path.with_name(path.name + ".lock"))
            try:
                file_lock.acquire()
            except OSError as exc:
                raise StoreError(f"cannot lock {path}: {exc}") from exc
        try:
            _check_header(path)
            uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
            conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        except StoreError:
            if file_lock:
                file_lock.release()
            raise
        except (OSError, sqlite3.Error) as exc:
            if file_lock:
                file_lock.release()
            raise StoreError(f"cannot open {path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        store = cls(path, conn, file_lock)
        try:
            await store._prepare(readonly=readonly)
        except BaseException:
            await store.close()
            raise
        return store

    async def _prepare(self, *, readonly: bool) -> None:
        try:
            await self._conn.execute("PRAGMA busy_timeout = 5000")
            row = await self._fetchone_raw("PRAGMA quick_check")
            if row is None or row[0] != "ok":
                raise StoreCorruptError(
                    f"{self.path} fails its integrity check ({row[0] if row else 'no answer'}); "
                    "restore it from a backup (`tradingd restore FILE`)"
                )
            version = await self.user_version()
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptError(f"{self.path} is not a usable SQLite database: {exc}") from exc
        if version > LATEST_VERSION:
            raise StoreVersionError(
                f"{self.path} has schema version {version}, newer than this tradingd knows "
                f"({LATEST_VERSION}); upgrade tradingd, do not downgrade the database"
            )
        if readonly:
            return
        try:
            await self._conn.execute("PRAGMA journal_mode = WAL")
            await self._conn.execute("PRAGMA foreign_keys = ON")
            await self._conn.execute("PRAGMA synchronous = NORMAL")
            for number in range(version + 1, LATEST_VERSION + 1):
                await self._migrate_to(number)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot prepare {self.path}: {exc}") from exc

    async def _migrate_to(self, number: int) -> None:
        statements = [s.strip() for s in MIGRATIONS[number - 1].split(";") if s.strip()]
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                await self._conn.execute(statement)
            await self._conn.execute(f"PRAGMA user_version = {number}")
            await self._conn.execute("COMMIT")
        except BaseException:
            await self._conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        """Checkpoint, close the connection (its thread) and release the lock."""
        if self._closed:
            return
        self._closed = True
        try:
            with contextlib.suppress(sqlite3.Error):
                await self._conn.execute("PRAGMA optimize")
            await self._conn.close()
        finally:
            if self._lock:
                self._lock.release()

    @property
    def closed(self) -> bool:
        return self._closed

    async def user_version(self) -> int:
        row = await self._fetchone_raw("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: 'ok' or the first problem found."""
        row = await self._fetchone_raw("PRAGMA integrity_check")
        return str(row[0]) if row else "no answer"

    # ------------------------------------------------------------ SQL helpers

    @contextlib.asynccontextmanager
    async def transaction(self, *, durable: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); ``durable`` syncs it to disk (FULL)."""
        async with self._write_lock:
            self._ensure_open()
            if durable:
                await self._conn.execute("PRAGMA synchronous = FULL")
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await self._conn.execute("ROLLBACK")
                raise
            else:
                await self._conn.execute("COMMIT")
            finally:
                if durable:
                    with contextlib.suppress(sqlite3.Error):
                        await self._conn.execute("PRAGMA synchronous = NORMAL")

    async def execute(self, sql: str, params: Sequence[Any] = (), *, durable: bool = False) -> int:
        """Run one write statement in its own transaction; returns lastrowid."""
        async with self.transaction(durable=durable) as conn:
            cur = await conn.execute(sql, params)
            return cur.lastrowid or 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._ensure_open()
        async with self._conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self._ensure_open()
        async with self._conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def _fetchone_raw(self, sql: str) -> Row | None:
        async with self._conn.execute(sql) as cur:
            return await cur.fetchone()

    async def backup_to(self, target: Path) -> None:
        """An online, consistent copy (``VACUUM INTO``); never a file copy of a live WAL DB."""
        self._ensure_open()
        if target.exists():
            raise StoreError(f"backup target {target} already exists")
        await self._conn.execute("VACUUM INTO ?", (str(target),))

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    if head and head != SQLITE_HEADER:
        raise StoreCorruptError(
            f"{path} is not a SQLite database (bad header); refusing to touch it"
        )
