"""Backups: a verified copy of a live store, pruning by name, the daily loop, restore."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest
from structlog.testing import capture_logs

from actors.store import open_store
from actors.store.schema import MIGRATIONS
from daemon.clock import SimClock
from daemon.errors import StoreCorruptError, StoreError, StoreLockedError
from daemon.logging import EventLog
from daemon.store import Store
from daemon.store.backup import (
    Outcome,
    backup_loop,
    backup_name,
    backup_now,
    next_backup_at,
    prune_backups,
    restore,
)

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
AT = dt.datetime(2024, 3, 8, 22, 0, tzinfo=UTC)  # Friday 17:00 New York
PROBE = "CREATE TABLE probe (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL)"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(path: Path, sql: str = "SELECT batch FROM probe ORDER BY id") -> list[tuple[int, ...]]:
    """Rows of a closed database, read through a plain read-only connection."""
    conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


async def until(predicate: Callable[[], bool], limit: int = 10_000) -> None:
    """Yield to the event loop (no wall-clock sleep) until ``predicate`` holds."""
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


@pytest.fixture
async def store(store: Store) -> Store:
    """The shared store with the probe table the backup tests write to."""
    await store.execute(PROBE)
    return store


async def make_db(db: Path, batches: list[int]) -> None:
    """A closed state database whose probe table holds one row per batch number."""
    s = await open_store(db)
    try:
        await s.execute(PROBE)
        await s.executemany("INSERT INTO probe (batch) VALUES (?)", [(b,) for b in batches])
    finally:
        await s.close()


# --- backup_now ------------------------------------------------------------------------------


async def test_backup_during_writes_holds_whole_transactions(store: Store, tmp_path: Path) -> None:
    """A backup asked for inside another task's open transaction waits for it, copies whole ones."""
    await store.executemany("INSERT INTO probe (batch) VALUES (?)", [(0,)] * 50)
    in_transaction = asyncio.Event()

    async def writer() -> None:
        for batch in range(1, 11):
            async with store.transaction() as conn:
                for _ in range(50):
                    await conn.execute("INSERT INTO probe (batch) VALUES (?)", (batch,))
                in_transaction.set()

    task = asyncio.create_task(writer())
    await in_transaction.wait()
    path = await backup_now(store, tmp_path / "backups", AT)
    await task

    assert path == tmp_path / "backups" / "tradingd-20240308-220000.db"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    batches = [b for (b,) in rows(path)]
    assert len(batches) >= 100  # the transaction open when asked is in it
    assert len(batches) % 50 == 0
    assert all(batches.count(b) == 50 for b in set(batches))
    copy = await open_store(path, readonly=True, lock=False)
    try:
        assert await copy.integrity_check() == "ok"
    finally:
        await copy.close()
    assert len(await store.fetchall("SELECT id FROM probe")) == 550


async def test_second_backup_in_the_same_second_is_refused(store: Store, tmp_path: Path) -> None:
    """A backup whose name exists already raises StoreError and leaves the first one alone."""
    first = await backup_now(store, tmp_path / "backups", AT)
    before = sha256(first)
    await store.execute("INSERT INTO probe (batch) VALUES (1)")
    with pytest.raises(StoreError, match="already exists"):
        await backup_now(store, tmp_path / "backups", AT)
    assert sha256(first) == before
    assert [p.name for p in first.parent.iterdir()] == [first.name]


async def test_copy_failing_verification_is_removed(state_db: Path, tmp_path: Path) -> None:
    """A copy this tradingd could not restore (a newer schema) is deleted and StoreError raised.

    The copy is checked against the schema the store was opened with; a store on
    a newer file than that cannot be opened, so the test lowers what it knows.
    """
    newer = await Store.open(state_db, migrations=[*MIGRATIONS, PROBE])
    newer.latest_version = len(MIGRATIONS)
    try:
        with pytest.raises(StoreError, match="newer than this tradingd"):
            await backup_now(newer, tmp_path / "backups", AT)
    finally:
        await newer.close()
    assert list((tmp_path / "backups").iterdir()) == []


async def test_backup_into_a_file_path_raises_store_error(store: Store, tmp_path: Path) -> None:
    """A backup directory that is a regular file gives StoreError, not an OSError."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="backup directory"):
        await backup_now(store, blocker, AT)


def test_backup_name_is_utc() -> None:
    """Backup names carry the UTC time, whatever zone the time is given in."""
    assert backup_name(AT.astimezone(NY)) == "tradingd-20240308-220000.db"
    with pytest.raises(ValueError, match="timezone-aware"):
        backup_name(dt.datetime(2024, 3, 8, 17))


# --- prune_backups ---------------------------------------------------------------------------


def test_prune_keeps_recent_and_foreign_files(tmp_path: Path) -> None:
    """Only our backups named older than the retention go; others and foreign files stay."""
    now = AT
    old = [now - dt.timedelta(days=91), now - dt.timedelta(days=400)]
    recent = [now - dt.timedelta(days=89), now]
    for when in old + recent:
        (tmp_path / backup_name(when)).write_bytes(b"x")
    leftover = tmp_path / (backup_name(old[0]) + ".partial")
    leftover.write_bytes(b"x")
    foreign = [
        "notes.txt",
        "tradingd-latest.db",
        "tradingd-20200101-000000.db.bak",
        "tradingd-20201301-000000.db",  # month 13: not one of our names
        "tradingd.db",
    ]
    for name in foreign:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "tradingd-20200102-000000.db").mkdir()
    old_mtime = (now - dt.timedelta(days=1000)).timestamp()
    os.utime(tmp_path / "notes.txt", (old_mtime, old_mtime))

    removed = prune_backups(tmp_path, 90, now)

    assert sorted(p.name for p in removed) == sorted(
        [backup_name(w) for w in old] + [leftover.name]
    )
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [backup_name(w) for w in recent] + foreign + ["tradingd-20200102-000000.db"]
    )


def test_prune_of_a_missing_directory_removes_nothing(tmp_path: Path) -> None:
    """Pruning a directory that does not exist (no backup yet) returns an empty list."""
    assert prune_backups(tmp_path / "none", 90, AT) == []


# --- the daily loop --------------------------------------------------------------------------


def test_next_backup_follows_new_york_time_across_dst() -> None:
    """17:00 New York is 22:00 UTC in winter, 21:00 UTC in summer; a passed instant is tomorrow."""
    assert next_backup_at(AT - dt.timedelta(hours=1), dt.time(17), "America/New_York") == AT
    assert next_backup_at(AT, dt.time(17), "America/New_York") == dt.datetime(
        2024, 3, 9, 22, tzinfo=UTC
    )
    assert next_backup_at(
        dt.datetime(2024, 3, 9, 23, tzinfo=UTC), dt.time(17), "America/New_York"
    ) == dt.datetime(2024, 3, 10, 21, tzinfo=UTC)


async def test_loop_backs_up_daily_at_the_time_and_prunes(store: Store, tmp_path: Path) -> None:
    """On a SimClock the loop backs up at 17:00 New York each day and prunes backups and events."""
    clock = SimClock(dt.datetime(2024, 3, 8, 15, tzinfo=NY))
    backups = tmp_path / "backups"
    backups.mkdir()
    stale = backups / backup_name(AT - dt.timedelta(days=100))
    kept = backups / backup_name(AT - dt.timedelta(days=10))
    foreign = backups / "keep-me.db"
    for path in (stale, kept, foreign):
        path.write_bytes(b"x")
    events = EventLog(tmp_path / "events")
    old_events = events.path_for("old")
    new_events = events.path_for("new")
    for path, age in ((old_events, 100), (new_events, 1)):
        path.write_text("{}\n")
        stamp = (AT - dt.timedelta(days=age)).timestamp()
        os.utime(path, (stamp, stamp))
    outcomes: list[Outcome] = []
    ran = asyncio.Event()

    def on_outcome(outcome: Outcome) -> None:
        outcomes.append(outcome)
        ran.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: backup_loop(
                store,
                clock=clock,
                directory=backups,
                at=dt.time(17),
                timezone="America/New_York",
                retention_days=90,
                events=events,
                on_outcome=on_outcome,
            )
        )
        expected = [
            AT,
            dt.datetime(2024, 3, 9, 22, tzinfo=UTC),  # a Saturday: every day, not sessions
            dt.datetime(2024, 3, 10, 21, tzinfo=UTC),  # daylight saving time began
        ]
        for day, instant in enumerate(expected, start=1):
            await until(lambda: clock.pending == 1)
            assert clock.next_deadline() == instant
            assert outcomes == ["ok"] * (day - 1)
            await store.execute("INSERT INTO probe (batch) VALUES (?)", (day,))
            clock.set_time(instant)
            await ran.wait()
            ran.clear()
            assert [b for (b,) in rows(backups / backup_name(instant))] == list(range(1, day + 1))
        tg.cancel_scope.cancel()

    assert outcomes == ["ok", "ok", "ok"]
    assert not stale.exists()
    assert kept.exists()
    assert foreign.exists()
    assert not old_events.exists()
    assert new_events.exists()


async def test_failed_backup_is_logged_and_the_loop_goes_on(store: Store, tmp_path: Path) -> None:
    """A failing backup is logged as backup_failed, reported 'failed', and tomorrow is scheduled."""
    clock = SimClock(AT - dt.timedelta(minutes=1))
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    outcomes: list[Outcome] = []
    ran = asyncio.Event()

    def on_outcome(outcome: Outcome) -> None:
        outcomes.append(outcome)
        ran.set()

    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: backup_loop(
                    store,
                    clock=clock,
                    directory=blocker,
                    at=dt.time(17),
                    timezone="America/New_York",
                    retention_days=90,
                    on_outcome=on_outcome,
                )
            )
            await until(lambda: clock.pending == 1)
            clock.set_time(AT)
            await ran.wait()
            await until(lambda: clock.pending == 1)
            assert clock.next_deadline() == AT + dt.timedelta(days=1)
            tg.cancel_scope.cancel()

    assert outcomes == ["failed"]
    failed = [e for e in logs if e["event"] == "backup_failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "error"
    assert "backup directory" in failed[0]["error"]


# --- restore ---------------------------------------------------------------------------------


async def test_restore_refuses_while_a_store_holds_the_lock(store: Store, state_db: Path) -> None:
    """With the database open (a daemon running), restore raises StoreLockedError; no change."""
    await store.execute("INSERT INTO probe (batch) VALUES (1)")
    backup = await backup_now(store, state_db.parent.parent / "backups", AT)
    before = sorted(p.name for p in state_db.parent.iterdir())
    with pytest.raises(StoreLockedError, match=rf"pid {os.getpid()}\) is running.*stop it first"):
        await restore(backup, state_db, migrations=MIGRATIONS)
    assert sorted(p.name for p in state_db.parent.iterdir()) == before
    await store.execute("INSERT INTO probe (batch) VALUES (2)")  # still ours and working


async def test_restore_puts_backup_in_place_and_keeps_the_old_db(
    state_db: Path, tmp_path: Path
) -> None:
    """With no daemon, restore copies the backup in and moves the old database aside."""
    s = await open_store(state_db)
    await s.execute(PROBE)
    await s.execute("INSERT INTO probe (batch) VALUES (1)")
    backup = await backup_now(s, tmp_path / "backups", AT)
    await s.execute("INSERT INTO probe (batch) VALUES (2)")
    await s.close()
    backup_hash = sha256(backup)

    aside = await restore(backup, state_db, migrations=MIGRATIONS)

    assert aside is not None
    assert aside.parent == state_db.parent
    assert aside.name.startswith("tradingd.db.before-restore-")
    assert rows(aside) == [(1,), (2,)]
    assert rows(state_db) == [(1,)]
    assert sha256(backup) == backup_hash
    reopened = await open_store(state_db)  # the lock is free again and the copy is a state db
    try:
        assert await reopened.integrity_check() == "ok"
        row = await reopened.fetchone("PRAGMA journal_mode")
        assert row is not None
        assert row[0] == "wal"
    finally:
        await reopened.close()


async def test_restore_onto_a_fresh_state_directory(tmp_path: Path) -> None:
    """Restoring where no database exists yet creates it and reports nothing moved aside."""
    source = tmp_path / "old" / "tradingd.db"
    await make_db(source, [7])
    s = await open_store(source)
    backup = await backup_now(s, tmp_path / "backups", AT)
    await s.close()
    target = tmp_path / "new" / "tradingd.db"
    assert await restore(backup, target, migrations=MIGRATIONS) is None
    assert rows(target) == [(7,)]


async def test_restore_of_a_corrupt_backup_is_refused(state_db: Path, tmp_path: Path) -> None:
    """A backup failing its integrity check is refused and the current database is untouched."""
    await make_db(state_db, [1] * 500)
    s = await open_store(state_db)
    backup = await backup_now(s, tmp_path / "backups", AT)
    await s.close()
    root = rows(backup, "SELECT rootpage FROM sqlite_master WHERE name = 'probe'")[0][0]
    page_size = rows(backup, "PRAGMA page_size")[0][0]
    data = bytearray(backup.read_bytes())
    offset = (root - 1) * page_size
    data[offset + 8 : offset + 200] = b"\xa5" * 192
    backup.write_bytes(bytes(data))
    before = {p.name: sha256(p) for p in state_db.parent.iterdir()}

    with pytest.raises(StoreCorruptError, match="fails its integrity check") as refused:
        await restore(backup, state_db, migrations=MIGRATIONS)
    assert "\n" not in str(refused.value)

    assert {p.name: sha256(p) for p in state_db.parent.iterdir()} == before
    reopened = await open_store(state_db)  # and the lock was released
    await reopened.close()


async def test_restore_refuses_a_live_database_file(state_db: Path) -> None:
    """A file with a -wal beside it is a live database, not a backup: refused."""
    await make_db(state_db, [1])
    live = state_db.with_name("copy.db")
    live.write_bytes(state_db.read_bytes())
    Path(f"{live}-wal").write_bytes(b"")
    with pytest.raises(StoreError, match="-wal file beside it"):
        await restore(live, state_db, migrations=MIGRATIONS)
    with pytest.raises(StoreError, match="the database itself"):
        await restore(state_db, state_db, migrations=MIGRATIONS)
    assert rows(state_db) == [(1,)]
