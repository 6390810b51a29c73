"""The state database: schema, migrations, refusal of foreign files, the lock, transactions."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from actors.store import open_store
from actors.store.schema import LATEST_VERSION
from daemon.errors import StoreCorruptError, StoreError, StoreLockedError, StoreVersionError
from daemon.store import Store

REPO = Path(__file__).resolve().parents[2]

SCHEMA_TABLES = {
    # the reference system's ten
    "strategies",
    "signals",
    "trades",
    "positions",
    "broker_state",
    "system_state",
    "signal_funnel",
    "signal_rejections",
    "order_intents",
    "pending_signals",
    # the daemon's own
    "cycles",
    "kill_switches",
    "kill_switch_events",
    "bars",
    "models",
    "notifications",
}

# Holds the store until told to stop on stdin; says "locked" once it has it.
LOCK_HOLDER = """
import asyncio, sys
from pathlib import Path
from actors.store import open_store

async def main():
    store = await open_store(Path(sys.argv[1]))
    print("locked", flush=True)
    sys.stdin.readline()
    await store.close()

asyncio.run(main())
"""

V1 = "CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
V2 = """
ALTER TABLE widgets ADD COLUMN colour TEXT NOT NULL DEFAULT 'grey';
CREATE TABLE widget_log (widget_id INTEGER NOT NULL, note TEXT NOT NULL);
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tradingd.db"


async def table_names(store: Store) -> set[str]:
    rows = await store.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r["name"] for r in rows}


# ---------------------------------------------------------------- fresh database


async def test_fresh_database_has_every_table(store: Store) -> None:
    """A new database holds all sixteen tables of schema v1."""
    assert await table_names(store) >= SCHEMA_TABLES


async def test_fresh_database_is_at_latest_version(store: Store) -> None:
    """A new database is migrated to LATEST_VERSION."""
    assert await store.user_version() == LATEST_VERSION


async def test_fresh_database_uses_wal(store: Store) -> None:
    """The journal is in WAL mode."""
    row = await store.fetchone("PRAGMA journal_mode")
    assert row is not None
    assert row[0] == "wal"


async def test_synchronous_defaults_to_normal(store: Store) -> None:
    """Ordinary transactions run with synchronous=NORMAL (1)."""
    row = await store.fetchone("PRAGMA synchronous")
    assert row is not None
    assert row[0] == 1


async def test_foreign_keys_are_enforced(store: Store) -> None:
    """A row naming a strategy that does not exist is refused."""
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await store.execute(
            "INSERT INTO signals (run_id, strategy_id, symbol, signal_type, asof_date)"
            " VALUES ('r1', 999, 'AAPL', 'BUY', '2024-01-02')"
        )
    assert await store.fetchall("SELECT * FROM signals") == []


# ---------------------------------------------------------------- migrations


async def test_upgrade_keeps_data_and_bumps_version(tmp_path: Path) -> None:
    """Reopening with a new migration step upgrades in place and keeps the rows."""
    path = db_path(tmp_path)
    s1 = await Store.open(path, migrations=[V1])
    await s1.execute("INSERT INTO widgets (name) VALUES ('sprocket')")
    assert await s1.user_version() == 1
    await s1.close()

    s2 = await Store.open(path, migrations=[V1, V2])
    try:
        assert await s2.user_version() == 2
        rows = await s2.fetchall("SELECT name, colour FROM widgets")
        assert [tuple(r) for r in rows] == [("sprocket", "grey")]
        assert "widget_log" in await table_names(s2)
    finally:
        await s2.close()


async def test_failing_migration_rolls_back_entirely(tmp_path: Path) -> None:
    """A step that fails half-way leaves no new tables and the old version, and names it."""
    path = db_path(tmp_path)
    s1 = await Store.open(path, migrations=[V1])
    await s1.execute("INSERT INTO widgets (name) VALUES ('sprocket')")
    await s1.close()

    broken = "CREATE TABLE half_done (x INTEGER); CREATE TABLE widgets (again INTEGER);"
    with pytest.raises(StoreError, match="schema version 2") as info:
        await Store.open(path, migrations=[V1, broken])
    assert not isinstance(info.value, StoreVersionError | StoreCorruptError)

    s = await Store.open(path, migrations=[V1])
    try:
        assert await s.user_version() == 1
        assert "half_done" not in await table_names(s)
        assert [r["name"] for r in await s.fetchall("SELECT name FROM widgets")] == ["sprocket"]
    finally:
        await s.close()


async def test_migration_may_hold_a_trigger_body(tmp_path: Path) -> None:
    """Statements are split by SQLite, so a trigger's inner semicolons survive."""
    trigger = """
    CREATE TABLE audit (note TEXT NOT NULL);
    CREATE TRIGGER widgets_audit AFTER INSERT ON widgets BEGIN
        INSERT INTO audit (note) VALUES ('added; ' || NEW.name);
    END;
    """
    s = await Store.open(db_path(tmp_path), migrations=[V1, trigger])
    try:
        await s.execute("INSERT INTO widgets (name) VALUES ('cog')")
        assert [r["note"] for r in await s.fetchall("SELECT note FROM audit")] == ["added; cog"]
    finally:
        await s.close()


async def test_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    """A database from a newer tradingd raises StoreVersionError and keeps its bytes."""
    path = db_path(tmp_path)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE future_thing (x INTEGER)")
        raw.execute("INSERT INTO future_thing VALUES (42)")
        raw.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    raw.close()
    before = sha256(path)

    with pytest.raises(StoreVersionError, match=f"schema version {LATEST_VERSION + 1}"):
        await open_store(path)

    assert sha256(path) == before


# ---------------------------------------------------------------- foreign and corrupt files


async def test_non_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    """A file that is not a SQLite database raises StoreCorruptError and keeps its bytes."""
    path = db_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"# these are my notes, not a database\n" * 200)
    before = sha256(path)

    with pytest.raises(StoreCorruptError, match="not a SQLite database"):
        await open_store(path)

    assert sha256(path) == before


async def test_scribbled_database_is_refused_untouched(tmp_path: Path) -> None:
    """A database with garbage over its middle pages fails quick_check and is not rewritten."""
    path = db_path(tmp_path)
    s = await open_store(path)
    await s.executemany(
        "INSERT INTO notifications (channel, kind, subject, body, attempts, created_at)"
        " VALUES ('email', 'report', ?, ?, 1, '2024-01-02T00:00:00')",
        [(f"subject {i}", f"body {i} " + "x" * 300) for i in range(1000)],
    )
    await s.close()
    assert not path.with_name(path.name + "-wal").exists()  # all pages are in the main file
    size = path.stat().st_size
    assert size > 50 * 4096
    with path.open("r+b") as fh:
        fh.seek(size // 2)
        fh.write(b"\xde\xad\xbe\xef" * 4096)
    before = sha256(path)

    with pytest.raises(StoreCorruptError):
        await open_store(path)

    assert sha256(path) == before


# ---------------------------------------------------------------- the lock


async def test_second_open_in_same_process_is_refused(store: Store) -> None:
    """A second open names the state directory and the holder's pid."""
    with pytest.raises(StoreLockedError) as info:
        await open_store(store.path)
    message = str(info.value)
    assert str(store.path.parent) in message
    assert f"pid {os.getpid()}" in message


async def test_lock_of_a_killed_process_is_released(tmp_path: Path) -> None:
    """Another process holding the store refuses us; once SIGKILLed, the kernel frees the lock."""
    path = db_path(tmp_path)
    with subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line == "locked\n", child.stderr.read() if child.stderr else ""

            with pytest.raises(StoreLockedError, match=f"pid {child.pid}"):
                await open_store(path)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL

    s = await open_store(path)
    await s.close()


async def test_close_releases_the_lock(tmp_path: Path) -> None:
    """After close() the same path opens again."""
    s = await open_store(db_path(tmp_path))
    await s.close()
    again = await open_store(db_path(tmp_path))
    await again.close()


async def test_scratch_store_closes_into_one_self_contained_file(tmp_path: Path) -> None:
    """A scratch store (a backtest's output): after close() only the database file is
    left, out of WAL mode, with every committed row in it."""
    path = tmp_path / "out" / "backtest.db"
    s = await open_store(path, scratch=True)
    await s.execute("INSERT INTO system_state (key, value, updated_at) VALUES ('k', '1', 't')")
    assert {p.name for p in path.parent.iterdir()} >= {"backtest.db-wal", "backtest.db.lock"}
    await s.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["backtest.db"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("SELECT value FROM system_state WHERE key = 'k'").fetchone() == ("1",)
    assert sorted(p.name for p in path.parent.iterdir()) == ["backtest.db"]
    again = await open_store(path, scratch=True)  # and it opens again (in WAL) to be written
    await again.close()


async def test_daemon_store_stays_in_wal_mode_after_close(tmp_path: Path) -> None:
    """The daemon's store is not a scratch store: close() leaves its journal in WAL mode."""
    path = db_path(tmp_path)
    s = await open_store(path)
    await s.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_readonly_open_needs_no_lock(store: Store) -> None:
    """A read-only open (tradectl) works beside the writer and sees committed rows."""
    await store.execute("INSERT INTO system_state (key, value, updated_at) VALUES ('k', '1', 't')")
    reader = await open_store(store.path, readonly=True)
    try:
        rows = await reader.fetchall("SELECT key FROM system_state")
        assert [r["key"] for r in rows] == ["k"]
    finally:
        await reader.close()


# ---------------------------------------------------------------- unusable locations


async def test_state_dir_under_a_regular_file_is_a_store_error(tmp_path: Path) -> None:
    """A state directory that cannot be created raises StoreError and creates nothing."""
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("I am a file\n")
    before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(StoreError, match="cannot create state directory"):
        await open_store(blocker / "file.db")

    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert blocker.read_text() == "I am a file\n"


async def test_readonly_open_of_missing_database_creates_nothing(tmp_path: Path) -> None:
    """A read-only open of a missing database raises StoreError, leaving no file and no thread."""
    path = tmp_path / "absent.db"
    threads = set(threading.enumerate())
    with pytest.raises(StoreError, match="cannot open"):
        await open_store(path, readonly=True)
    assert list(tmp_path.iterdir()) == []
    assert set(threading.enumerate()) - threads == set()


async def test_write_through_readonly_store_is_a_store_error(store: Store) -> None:
    """A write on a read-only connection raises StoreError saying it is read-only."""
    reader = await open_store(store.path, readonly=True)
    try:
        with pytest.raises(StoreError, match="read-only"):
            await reader.execute(
                "INSERT INTO system_state (key, value, updated_at) VALUES ('k', '1', 't')"
            )
    finally:
        await reader.close()
    assert await store.fetchall("SELECT * FROM system_state") == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (we are root in the test container); skipped locally if mounting fails."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    try:
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            check=False,
        )
        failure = res.stderr.strip() if res.returncode else ""
    except FileNotFoundError as exc:
        failure = str(exc)
    if failure:
        reason = f"cannot mount a tmpfs to fill up: {failure}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def write_forever(fd: int) -> NoReturn:
    while True:
        os.write(fd, b"\0" * 4096)


def fill_disk(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left") as info:
            write_forever(fd)
    finally:
        os.close(fd)
    assert info.value.errno == errno.ENOSPC


async def test_full_disk_write_fails_cleanly(tiny_disk: Path) -> None:
    """On a full disk a write raises StoreError saying so; the database stays intact and usable."""
    path = tiny_disk / "state" / "tradingd.db"
    s = await open_store(path)
    try:
        await s.execute("INSERT INTO system_state (key, value, updated_at) VALUES ('a', '1', 't')")
        filler = tiny_disk / "filler"
        fill_disk(filler)

        with pytest.raises(StoreError, match="disk is full") as info:
            await s.execute(
                "INSERT INTO models VALUES ('s', 't', 'a', 'b', 1, '{}', ?)",
                (os.urandom(200_000),),
            )
        assert str(path) in str(info.value)
        assert await s.integrity_check() == "ok"

        filler.unlink()
        await s.execute("INSERT INTO system_state (key, value, updated_at) VALUES ('b', '1', 't')")
        keys = [r["key"] for r in await s.fetchall("SELECT key FROM system_state ORDER BY key")]
        assert keys == ["a", "b"]
        assert await s.fetchall("SELECT * FROM models") == []
    finally:
        await s.close()

    again = await open_store(path)
    try:
        assert await again.integrity_check() == "ok"
        row = await again.fetchone("SELECT count(*) FROM system_state")
        assert row is not None
        assert row[0] == 2
    finally:
        await again.close()


# ---------------------------------------------------------------- transactions


async def test_transaction_rolls_back_on_exception(store: Store) -> None:
    """An exception inside transaction() writes nothing and propagates unchanged."""

    class Boom(Exception):
        pass

    async def write_then_fail() -> None:
        async with store.transaction() as conn:
            await conn.execute(
                "INSERT INTO system_state (key, value, updated_at) VALUES ('k', '1', 't')"
            )
            raise Boom

    with pytest.raises(Boom):
        await write_then_fail()
    assert await store.fetchall("SELECT * FROM system_state") == []


async def test_durable_transaction_syncs_full_then_returns_to_normal(store: Store) -> None:
    """durable=True commits under synchronous=FULL (2) and restores NORMAL (1) after."""
    async with store.transaction(durable=True) as conn:
        async with conn.execute("PRAGMA synchronous") as cur:
            inside = await cur.fetchone()
        await conn.execute(
            "INSERT INTO system_state (key, value, updated_at) VALUES ('k', '1', 't')"
        )
    assert inside is not None
    assert inside[0] == 2
    after = await store.fetchone("PRAGMA synchronous")
    assert after is not None
    assert after[0] == 1
    assert len(await store.fetchall("SELECT * FROM system_state")) == 1


async def test_concurrent_writers_serialise(store: Store) -> None:
    """Fifty tasks doing read-modify-write transactions lose no update and never hit a lock."""
    await store.execute(
        "INSERT INTO system_state (key, value, updated_at) VALUES ('counter', '0', 't')"
    )

    async def bump(i: int) -> None:
        async with store.transaction(durable=i % 5 == 0) as conn:
            async with conn.execute("SELECT value FROM system_state WHERE key = 'counter'") as cur:
                row = await cur.fetchone()
            assert row is not None
            await conn.execute(
                "UPDATE system_state SET value = ? WHERE key = 'counter'", (str(int(row[0]) + 1),)
            )

    async with asyncio.TaskGroup() as tg:
        for i in range(50):
            tg.create_task(bump(i))

    row = await store.fetchone("SELECT value FROM system_state WHERE key = 'counter'")
    assert row is not None
    assert row[0] == "50"


async def test_other_tasks_do_not_read_uncommitted_rows(store: Store) -> None:
    """A read from another task waits for the transaction and never sees its rolled-back row."""
    reader_started = asyncio.Event()

    async def reader() -> list[str]:
        reader_started.set()
        return [r["key"] for r in await store.fetchall("SELECT key FROM system_state")]

    class Abort(Exception):
        pass

    async def write_then_abort() -> asyncio.Task[list[str]]:
        async with store.transaction() as conn:
            await conn.execute(
                "INSERT INTO system_state (key, value, updated_at) VALUES ('dirty', '1', 't')"
            )
            task = asyncio.create_task(reader())
            await reader_started.wait()
            # Queued behind the reader's query, if the reader got to send one.
            await conn.execute("SELECT 1")
            raise Abort(task)

    with pytest.raises(Abort) as info:
        await write_then_abort()
    [task] = info.value.args
    assert await task == []


async def test_own_uncommitted_rows_are_visible_inside_the_transaction(store: Store) -> None:
    """Inside its transaction a task reads its own rows through the store without deadlock."""
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT INTO system_state (key, value, updated_at) VALUES ('mine', '1', 't')"
        )
        row = await store.fetchone("SELECT value FROM system_state WHERE key = 'mine'")
    assert row is not None
    assert row[0] == "1"


async def test_nested_transaction_is_refused(store: Store) -> None:
    """A transaction opened inside another in the same task raises instead of deadlocking."""
    with pytest.raises(StoreError, match="do not nest"):
        async with store.transaction():
            await store.execute(
                "INSERT INTO system_state (key, value, updated_at) VALUES ('k', '1', 't')"
            )
    assert await store.fetchall("SELECT * FROM system_state") == []


async def test_cancelled_transaction_start_leaves_no_transaction_open(store: Store) -> None:
    """A task cancelled while BEGIN is queued does not leave the connection inside a transaction."""
    entered = asyncio.Event()

    async def writer() -> None:
        entered.set()
        async with store.transaction() as conn:
            await conn.execute(
                "INSERT INTO system_state (key, value, updated_at) VALUES ('never', '1', 't')"
            )

    task = asyncio.create_task(writer())
    await entered.wait()  # the writer now waits on its queued BEGIN
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await store.execute("INSERT INTO system_state (key, value, updated_at) VALUES ('k', '1', 't')")
    assert [r["key"] for r in await store.fetchall("SELECT key FROM system_state")] == ["k"]


# ---------------------------------------------------------------- backup and close


async def test_backup_is_a_consistent_copy(store: Store, tmp_path: Path) -> None:
    """backup_to writes a database that opens, passes integrity_check and holds the rows."""
    await store.executemany(
        "INSERT INTO system_state (key, value, updated_at) VALUES (?, ?, 't')",
        [(f"k{i}", str(i)) for i in range(100)],
    )
    target = tmp_path / "backups" / "copy.db"
    target.parent.mkdir()
    await store.backup_to(target)

    copy = await open_store(target)
    try:
        assert await copy.integrity_check() == "ok"
        assert await copy.user_version() == LATEST_VERSION
        row = await copy.fetchone("SELECT count(*) FROM system_state")
        assert row is not None
        assert row[0] == 100
    finally:
        await copy.close()


async def test_backup_refuses_an_existing_target(store: Store, tmp_path: Path) -> None:
    """backup_to will not overwrite a file that is already there."""
    target = tmp_path / "precious.db"
    target.write_bytes(b"keep me")
    with pytest.raises(StoreError, match="already exists"):
        await store.backup_to(target)
    assert target.read_bytes() == b"keep me"


async def test_close_joins_the_connection_thread(tmp_path: Path) -> None:
    """close() leaves no aiosqlite worker thread behind to keep the process alive."""
    before = set(threading.enumerate())
    s = await open_store(db_path(tmp_path))
    assert set(threading.enumerate()) - before, "expected a connection thread while open"
    await s.close()
    assert set(threading.enumerate()) - before == set()


async def test_closed_store_refuses_use(tmp_path: Path) -> None:
    """After close(), reads and writes raise StoreError and a second close() is harmless."""
    s = await open_store(db_path(tmp_path))
    await s.close()
    await s.close()
    assert s.closed
    with pytest.raises(StoreError, match="closed"):
        await s.fetchall("SELECT 1")
    with pytest.raises(StoreError, match="closed"):
        await s.execute("INSERT INTO system_state (key, value, updated_at) VALUES ('k', '1', 't')")


async def test_cancelled_close_still_stops_the_connection(tmp_path: Path) -> None:
    """close() cancelled while waiting for a transaction still closes store, thread and lock."""
    path = db_path(tmp_path)
    threads = set(threading.enumerate())
    s = await open_store(path)
    in_tx, resume, closing = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with s.transaction() as conn:
            await conn.execute(
                "INSERT INTO system_state (key, value, updated_at) VALUES ('early', '1', 't')"
            )
            in_tx.set()
            await resume.wait()
            await conn.execute(
                "INSERT INTO system_state (key, value, updated_at) VALUES ('late', '1', 't')"
            )

    async def closer() -> None:
        closing.set()
        await s.close()

    held = asyncio.create_task(holder())
    await in_tx.wait()
    closing_task = asyncio.create_task(closer())
    await closing.wait()  # close() now waits for the holder's transaction
    closing_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing_task
    assert s.closed

    resume.set()
    with pytest.raises(StoreError, match="closed during the transaction"):
        await held
    for thread in set(threading.enumerate()) - threads:
        thread.join(timeout=10)
    assert set(threading.enumerate()) - threads == set()

    again = await open_store(path)
    try:
        assert await again.fetchall("SELECT * FROM system_state") == []
    finally:
        await again.close()
