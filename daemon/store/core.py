"""The connection, the lock, migrations and transactions. All SQL lives in ``daemon.store``.

- WAL, foreign keys on, ``synchronous=NORMAL`` by default and ``FULL`` for the
  transactions that must survive power loss (order intents, kill switches):
  ``async with store.transaction(durable=True)``.
- One connection, one writer: every write goes through ``transaction()``, which
  holds an asyncio lock and opens ``BEGIN IMMEDIATE`` so a write never upgrades
  late. Reads from other tasks wait for that lock too: on a shared connection
  they would otherwise see another task's uncommitted (perhaps rolled-back) rows.
- A second daemon on the same state directory is refused (an ``flock`` on a
  lock file beside the database). A file that is not a SQLite database, fails
  ``quick_check``, or was written by a newer version is refused, never touched.
- A full disk, an I/O error or a read-only file surfaces as ``StoreError``
  naming the database and the cause, never as a bare ``sqlite3`` error.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import aiosqlite

from daemon.errors import StoreCorruptError, StoreError, StoreLockedError, StoreVersionError
from daemon.store.direct import DirectConnection

SQLITE_HEADER = b"SQLite format 3\x00"
Row = sqlite3.Row

# Primary result codes that mean "the disk or the file is the problem", not the SQL.
_DISK_ERRORS = {
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_IOERR: "a disk I/O error",
    sqlite3.SQLITE_READONLY: "the database is read-only",
    sqlite3.SQLITE_CANTOPEN: "a database file cannot be opened",
}
_CORRUPT_ERRORS = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


class StoreLock:
    """An exclusive ``flock`` on ``<db>.lock``; released by the kernel if we die."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``StoreLockedError`` naming the directory and holder pid."""
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
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


class Store:
    """The state database: ``await Store.open(path, migrations=...)``, ``await store.close()``."""

    def __init__(self, path: Path, conn: aiosqlite.Connection, lock: StoreLock | None) -> None:
        self.path = path
        self._conn = conn
        self._lock = lock
        self._write_lock = asyncio.Lock()
        self._tx_owner: asyncio.Task[Any] | None = None
        self._closed = False
        self._prepared = False
        self._scratch = False
        # A scratch store closes into one file: WAL checkpointed, journal_mode DELETE,
        # no -wal, -shm or .lock beside it (a backtest's output is copied and shared).
        self._self_contained = False
        self.latest_version = 0
        """The schema version this program knows (the number of migrations it opened with)."""

    # ------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        lock: bool = True,
        readonly: bool = False,
        migrations: Sequence[str],
        scratch: bool = False,
    ) -> Store:
        """Open (creating and migrating if needed) the database at ``path``.

        ``scratch=True`` is for disposable databases (a backtest's output): no
        fsync at all (``synchronous=OFF``, ``durable`` writes included), and
        ``close()`` leaves the database as one self-contained file (the WAL
        checkpointed into it, ``journal_mode=DELETE``, the lock file removed).
        Never for the daemon's state, which stays in WAL mode.

        ``migrations`` is the application's schema (the runtime has none of its
        own); step *n* (1-based) brings the database to ``user_version`` *n*.
        """
        path = Path(path)
        steps = tuple(migrations)
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
            uri = path.absolute().as_uri() + ("?mode=ro" if readonly else "")
            # A scratch store runs its SQL on the calling thread (daemon/store/direct.py).
            conn = (
                cast(aiosqlite.Connection, DirectConnection(uri))
                if scratch
                else await _connect(uri)
            )
        except StoreError:
            if file_lock:
                file_lock.release()
            raise
        except (OSError, sqlite3.Error) as exc:
            if file_lock:
                file_lock.release()
            raise StoreError(f"cannot open {path}: {exc}") from exc
        except BaseException:
            if file_lock:
                file_lock.release()
            raise
        conn.row_factory = sqlite3.Row
        store = cls(path, conn, file_lock)
        store._scratch = scratch
        store._self_contained = scratch and not readonly
        store.latest_version = len(steps)
        try:
            await store._prepare(readonly=readonly, migrations=steps)
            if scratch:
                await store._conn.execute("PRAGMA synchronous = OFF")
        except BaseException:
            await store.close()
            raise
        return store

    async def _prepare(self, *, readonly: bool, migrations: tuple[str, ...]) -> None:
        latest = len(migrations)
        try:
            await self._conn.execute("PRAGMA busy_timeout = 5000")
            row = await self._fetchone_raw("PRAGMA quick_check")
            if row is None or row[0] != "ok":
                raise StoreCorruptError(
                    f"{self.path} fails its integrity check ({row[0] if row else 'no answer'}); "
                    "restore it from a backup (`tradingd restore FILE`)"
                )
            row = await self._fetchone_raw("PRAGMA user_version")
            version = int(row[0]) if row else 0
        except sqlite3.Error as exc:
            raise self._translate(exc, "open") or StoreCorruptError(
                f"{self.path} is not a usable SQLite database: {exc}"
            ) from exc
        if version > latest:
            raise StoreVersionError(
                f"{self.path} has schema version {version}, newer than this tradingd knows "
                f"({latest}); upgrade tradingd, do not downgrade the database"
            )
        if readonly:
            self._prepared = True
            return
        try:
            row = await self._fetchone_raw("PRAGMA journal_mode = WAL")
            if row is None or str(row[0]).lower() != "wal":
                raise StoreError(
                    f"{self.path}: the filesystem refused WAL mode "
                    f"(journal_mode is {row[0] if row else 'unknown'}); use a local disk"
                )
            await self._conn.execute("PRAGMA foreign_keys = ON")
            await self._conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise self._translate(exc, "prepare") or StoreError(
                f"cannot prepare {self.path}: {exc}"
            ) from exc
        for number in range(version + 1, latest + 1):
            await self._migrate_to(number, migrations[number - 1])
        self._prepared = True

    async def _migrate_to(self, number: int, sql: str) -> None:
        # One script, one transaction: SQLite DDL is transactional, so a failing
        # step leaves neither tables nor a bumped user_version behind.
        # executescript splits statements properly (triggers, literals with ';').
        script = f"BEGIN IMMEDIATE;\n{sql}\n;\nPRAGMA user_version = {number};\nCOMMIT;"
        try:
            await self._conn.executescript(script)
        except BaseException as exc:
            await self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(
                    f"migration of {self.path} to schema version {number} failed ({exc}); "
                    f"the database is left at version {number - 1}"
                ) from exc
            raise

    async def close(self) -> None:
        """Wait for a running transaction, close the connection, join its thread, unlock.

        Cancelled while waiting (a shutdown deadline passed), it still stops the
        connection's worker thread, which would otherwise keep the process alive.
        """
        if self._closed:
            return
        try:
            async with self._exclusive():
                await self._shutdown()
        finally:
            if not self._closed:
                self._closed = True
                # Queued behind whatever is running; SQLite rolls back an open
                # transaction when the connection closes.
                self._conn.stop()
                if self._lock:
                    self._lock.release()
            self._remove_lock_file()

    def _remove_lock_file(self) -> None:
        """A self-contained store's lock file goes once the lock is released: nobody
        else writes a scratch database, so no second process can be waiting on it."""
        if self._self_contained and self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.path.unlink(missing_ok=True)

    async def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._prepared:
                # Never on a refused (newer, corrupt) file: optimize may write.
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await self._conn.execute("PRAGMA optimize")
                if self._self_contained:
                    await self._fold_wal()
        finally:
            try:
                await self._conn.close()
            finally:
                if not self._scratch:  # a scratch store's connection has no worker thread
                    _join_worker(self._conn)
                if self._lock:
                    self._lock.release()

    async def _fold_wal(self) -> None:
        """Checkpoint the WAL into the database and leave WAL mode: the -wal and -shm
        files go when the connection closes."""
        try:
            await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await self._conn.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.Error as exc:
            raise self._translate(exc, "close") or StoreError(
                f"cannot checkpoint {self.path}: {exc}"
            ) from exc

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._closed

    async def user_version(self) -> int:
        """``PRAGMA user_version``: the schema version the database is at."""
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: 'ok' or the first problem found."""
        row = await self.fetchone("PRAGMA integrity_check")
        return str(row[0]) if row else "no answer"

    # ------------------------------------------------------------ SQL helpers

    @contextlib.asynccontextmanager
    async def transaction(self, *, durable: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); ``durable`` syncs it to disk (FULL).

        A scratch store ignores ``durable``: nothing in it must survive a crash.

        Not re-entrant: opening a transaction inside one in the same task raises
        ``StoreError`` (it would otherwise wait for itself forever).
        """
        self._ensure_open()
        durable = durable and not self._scratch
        me = asyncio.current_task()
        if me is not None and me is self._tx_owner:
            raise StoreError("a transaction is already open in this task; they do not nest")
        async with self._write_lock:
            self._ensure_open()
            self._tx_owner = me
            try:
                # BEGIN is inside the try: a cancellation while it is queued must
                # still be followed by ROLLBACK, or the next BEGIN would fail.
                if durable:
                    await self._conn.execute("PRAGMA synchronous = FULL")
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                await self._conn.execute("COMMIT")
            except BaseException as exc:
                # Also after a failed COMMIT (disk full): SQLite may keep the
                # transaction open, and the next BEGIN would fail.
                await self._rollback()
                if self._closed and isinstance(exc, ValueError):
                    raise StoreError(
                        f"{self.path} was closed during the transaction; nothing was committed"
                    ) from exc
                if isinstance(exc, sqlite3.Error):
                    wrapped = self._translate(exc, "write to")
                    if wrapped is not None:
                        raise wrapped from exc
                raise
            finally:
                self._tx_owner = None
                if durable:
                    with contextlib.suppress(sqlite3.Error, ValueError):
                        await self._conn.execute("PRAGMA synchronous = NORMAL")

    async def execute(self, sql: str, params: Sequence[Any] = (), *, durable: bool = False) -> int:
        """Run one write statement in its own transaction; returns lastrowid."""
        async with self.transaction(durable=durable) as conn:
            cur = await conn.execute(sql, params)
            return cur.lastrowid or 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one write statement for each of ``rows`` in a single transaction."""
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query (committed data, or the calling task's own transaction)."""
        async with self._exclusive():
            self._ensure_open()
            try:
                async with self._conn.execute(sql, params) as cur:
                    return list(await cur.fetchall())
            except sqlite3.Error as exc:
                wrapped = self._translate(exc, "read")
                if wrapped is not None:
                    raise wrapped from exc
                raise

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        async with self._exclusive():
            self._ensure_open()
            try:
                async with self._conn.execute(sql, params) as cur:
                    return await cur.fetchone()
            except sqlite3.Error as exc:
                wrapped = self._translate(exc, "read")
                if wrapped is not None:
                    raise wrapped from exc
                raise

    async def backup_to(self, target: Path) -> None:
        """An online, consistent copy (``VACUUM INTO``); never a file copy of a live WAL DB."""
        target = Path(target)
        async with self._exclusive():
            self._ensure_open()
            if target.exists():
                raise StoreError(f"backup target {target} already exists")
            try:
                await self._conn.execute("VACUUM INTO ?", (str(target),))
            except sqlite3.Error as exc:
                # It did not exist before: whatever is there now is a partial copy.
                with contextlib.suppress(OSError):
                    target.unlink()
                raise StoreError(f"cannot back up {self.path} to {target}: {exc}") from exc

    # ------------------------------------------------------------ internals

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """Hold the write lock, unless this task already holds it (inside a transaction)."""
        me = asyncio.current_task()
        if me is not None and me is self._tx_owner:
            yield
            return
        async with self._write_lock:
            yield

    async def _fetchone_raw(self, sql: str) -> Row | None:
        async with self._conn.execute(sql) as cur:
            return await cur.fetchone()

    async def _rollback(self) -> None:
        # "no transaction is active" (SQLite already rolled back) and a connection
        # closed underneath us both leave nothing to undo.
        with contextlib.suppress(sqlite3.Error, ValueError):
            await self._conn.execute("ROLLBACK")

    def _translate(self, exc: sqlite3.Error, doing: str) -> StoreError | None:
        """A ``StoreError`` for disk/file failures; None for SQL errors (constraints, syntax)."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return None
        name = getattr(exc, "sqlite_errorname", str(code))
        primary = code & 0xFF
        if primary in _CORRUPT_ERRORS:
            return StoreCorruptError(
                f"cannot {doing} {self.path}: it is corrupt ({exc}, {name}); "
                "restore it from a backup (`tradingd restore FILE`)"
            )
        cause = _DISK_ERRORS.get(primary)
        if cause is None:
            return None
        return StoreError(
            f"cannot {doing} {self.path}: {cause} ({exc}, {name}); "
            f"check the filesystem holding {self.path.parent}"
        )

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")


async def _connect(uri: str) -> aiosqlite.Connection:
    conn = aiosqlite.connect(uri, uri=True, isolation_level=None)
    try:
        return await conn
    except BaseException:
        # aiosqlite stops the worker of a failed connect but does not wait for
        # it; left running, it can outlive the event loop and die there.
        _join_worker(conn)
        raise


def _join_worker(conn: aiosqlite.Connection) -> None:
    # aiosqlite >= 0.22 runs a non-daemon worker thread per connection and does
    # not join it on close(); it has finished its last item by now, so this join
    # is immediate, and afterwards no thread of ours can keep the process alive.
    thread = getattr(conn, "_thread", None)
    if (
        isinstance(thread, threading.Thread)
        and thread.is_alive()
        and thread is not threading.current_thread()
    ):
        thread.join(timeout=5)


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
