"""Backups of the state database: take one now, every day, prune old ones, restore one.

- **Taking one.** ``backup_now`` writes ``tradingd-YYYYMMDD-HHMMSS.db`` (UTC) with
  ``Store.backup_to`` (``VACUUM INTO``: an online, consistent copy, never a file copy
  of the live WAL database) under a ``.partial`` name, opens the copy read-only,
  runs ``PRAGMA integrity_check`` and only then renames it to its final name. A
  file with the final name is therefore always a verified backup; a failure
  removes the partial file and raises ``StoreError``. ``VACUUM INTO`` waits for
  the running write transaction and holds the store's write lock while it copies,
  so a backup never holds half a transaction (and writers wait for it).
- **Every day.** ``backup_loop`` sleeps on the injected clock until ``at`` in
  ``timezone`` (17:00 New York by default: after the close, before tomorrow's
  cycle), every calendar day: weekends and holidays too, which costs one small
  file a day and needs no exchange calendar. It backs up, then removes backups
  and per-run event files older than the retention. A failure is logged and
  reported to ``on_outcome``; it never ends the loop or the daemon. A day
  missed while the daemon was down is not caught up: the next backup is the
  next ``at``.
- **Pruning.** ``prune_backups`` goes by the timestamp in the file name, and only
  touches names it wrote itself: anything else in the directory is left alone.
- **Restoring.** ``restore`` refuses while a daemon holds the state directory's
  lock, or when the backup fails its integrity check; otherwise it moves the
  current database (with its ``-wal``/``-shm``, so the old state stays openable)
  aside to ``<db>.before-restore-<ts>``, copies the backup in place and opens it
  with ``Store.open``, which migrates it to the current schema. If that open
  fails, the copy is moved aside as ``<db>.failed-restore-<ts>`` and the old
  database is put back. Nothing is ever deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo

import anyio
import anyio.to_thread
import structlog

from daemon.clock import Clock
from daemon.errors import StoreCorruptError, StoreError, StoreLockedError, StoreVersionError
from daemon.logging import EventLog
from daemon.store import Store
from daemon.store.core import StoreLock

__all__ = [
    "BACKUP_SUFFIX",
    "Outcome",
    "backup_loop",
    "backup_name",
    "backup_now",
    "next_backup_at",
    "prune_backups",
    "restore",
]

log = structlog.get_logger(__name__)

UTC = dt.UTC
BACKUP_SUFFIX: Final = ".db"
_PARTIAL: Final = ".partial"
_STAMP: Final = "%Y%m%d-%H%M%S"
# Our own files only: a finished backup, or a partial one a crash left behind.
_NAME: Final = re.compile(r"tradingd-(\d{8}-\d{6})\.db(\.partial)?")
_SIDE_FILES: Final = ("-wal", "-shm")

Outcome = Literal["ok", "failed"]
"""What ``backup_loop`` reports to its ``on_outcome`` hook after each daily run."""


def backup_name(at: dt.datetime) -> str:
    """``tradingd-YYYYMMDD-HHMMSS.db`` for the aware time ``at``, in UTC."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"backup time must be timezone-aware, got {at!r}")
    return f"tradingd-{at.astimezone(UTC).strftime(_STAMP)}{BACKUP_SUFFIX}"


def _stamp_of(name: str) -> dt.datetime | None:
    """The UTC time in one of our backup names, or None for anybody else's file."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return dt.datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)
    except ValueError:  # digits that are not a date, e.g. month 13
        return None


async def backup_now(store: Store, directory: Path, at: dt.datetime) -> Path:
    """Back ``store`` up to ``directory/tradingd-<at>.db`` and verify the copy; its path.

    Raises ``StoreError`` when the copy cannot be made or fails its check (the
    partial file is removed), or when a backup with that name already exists.
    """
    final = directory / backup_name(at)
    partial = final.with_name(final.name + _PARTIAL)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create backup directory {directory}: {exc}") from exc
    if final.exists():
        raise StoreError(f"backup {final} already exists; try again in a second")
    await store.backup_to(partial)
    try:
        partial.chmod(0o600)
        await _verify(partial, store.latest_version)
        # No other writer uses our names; `final` was checked above and a
        # second backup in the same second fails at `partial` inside backup_to.
        partial.rename(final)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(exc, OSError):
            raise StoreError(f"cannot finish backup {final}: {exc}") from exc
        raise
    return final


async def _verify(path: Path, latest_version: int) -> None:
    """Open ``path`` read-only and run ``PRAGMA integrity_check``; ``StoreError`` unless ok."""
    await anyio.to_thread.run_sync(_check_copy, path, latest_version)


def _check_copy(path: Path, latest_version: int) -> None:
    try:
        conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
        try:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()
            version = conn.execute("PRAGMA user_version").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreCorruptError(f"backup {path} is not a usable SQLite database ({exc})") from exc
    if verdict is None or verdict[0] != "ok":
        # SQLite lists every damaged cell, one per line: name the first, count the rest.
        lines = [ln for ln in str(verdict[0] if verdict else "no answer").splitlines() if ln]
        lines = [ln for ln in lines if not ln.startswith("***")] or lines
        more = f" and {len(lines) - 1} more problems" if len(lines) > 1 else ""
        raise StoreCorruptError(f"backup {path} fails its integrity check ({lines[0]}{more})")
    if version is not None and int(version[0]) > latest_version:
        raise StoreVersionError(
            f"backup {path} has schema version {version[0]}, newer than this tradingd knows "
            f"({latest_version})"
        )


def prune_backups(directory: Path, keep_days: int, now: dt.datetime) -> list[Path]:
    """Delete our backups named more than ``keep_days`` days before ``now``; the deleted paths.

    Only names ``tradingd-YYYYMMDD-HHMMSS.db`` (and their ``.partial`` leftovers)
    count; a missing directory has nothing to prune.
    """
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1, got {keep_days}")
    cutoff = now - dt.timedelta(days=keep_days)
    removed: list[Path] = []
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        stamp = _stamp_of(entry.name)
        if stamp is None or stamp >= cutoff or not entry.is_file() or entry.is_symlink():
            continue
        try:
            entry.unlink()
        except FileNotFoundError:  # removed concurrently
            continue
        removed.append(entry)
    return removed


def next_backup_at(now: dt.datetime, at: dt.time, timezone: str) -> dt.datetime:
    """The first ``at`` in ``timezone`` strictly after ``now``, as UTC (DST-correct)."""
    tz = ZoneInfo(timezone)
    day = now.astimezone(tz).date()
    instant = dt.datetime.combine(day, at, tzinfo=tz)
    if instant <= now:
        instant = dt.datetime.combine(day + dt.timedelta(days=1), at, tzinfo=tz)
    return instant.astimezone(UTC)


async def backup_loop(
    store: Store,
    *,
    clock: Clock,
    directory: Path,
    at: dt.time,
    timezone: str,
    retention_days: int,
    events: EventLog | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> None:
    """Back up every day at ``at`` (``timezone``), then prune; runs until cancelled.

    Each run logs ``backup_completed`` or ``backup_failed`` and calls
    ``on_outcome("ok" | "failed")`` (a metric, say). Errors never end the loop.
    """
    ZoneInfo(timezone)  # an unknown zone is a programming error: fail at start
    while True:
        await clock.sleep_until(next_backup_at(clock.now(), at, timezone))
        outcome = await _daily(store, clock.now(), directory, retention_days, events)
        if on_outcome is not None:
            try:
                on_outcome(outcome)
            except Exception:  # a broken metric hook must not stop the backups
                log.exception("backup_hook_failed")


async def _daily(
    store: Store,
    now: dt.datetime,
    directory: Path,
    retention_days: int,
    events: EventLog | None,
) -> Outcome:
    outcome: Outcome = "ok"
    try:
        path = await backup_now(store, directory, now)
        log.info("backup_completed", path=str(path), bytes=path.stat().st_size)
    except Exception as exc:  # logged and counted; the daemon goes on trading
        outcome = "failed"
        log.error("backup_failed", directory=str(directory), error=str(exc), exc_info=True)
    # Prune even after a failed backup: the retention is about age, and the
    # older backups that remain are still within it.
    cutoff = now - dt.timedelta(days=retention_days)
    try:
        removed = await anyio.to_thread.run_sync(prune_backups, directory, retention_days, now)
        pruned_events = 0
        if events is not None:
            pruned_events = await anyio.to_thread.run_sync(events.prune, cutoff)
        log.info(
            "backups_pruned",
            removed=[p.name for p in removed],
            event_files_removed=pruned_events,
            older_than=cutoff.isoformat(),
        )
    except Exception as exc:
        outcome = "failed"
        log.error("backup_prune_failed", directory=str(directory), error=str(exc), exc_info=True)
    return outcome


async def restore(backup: Path, db_path: Path, *, migrations: Sequence[str]) -> Path | None:
    """Put ``backup`` in place of ``db_path``; where the old database went (None: there was none).

    Refuses with ``StoreError`` (``StoreLockedError`` while a daemon runs) without
    touching anything; see the module docstring for the steps.
    """
    backup, db_path = Path(backup), Path(db_path)
    if not backup.is_file():
        raise StoreError(f"backup {backup} does not exist or is not a file")
    if backup.resolve() == db_path.resolve():
        raise StoreError(f"{backup} is the database itself, not a backup of it")
    if Path(f"{backup}-wal").exists():
        # Its newest commits may be in that file, which a copy of the main file misses.
        raise StoreError(
            f"{backup} has a -wal file beside it: it is a live database, not a backup; "
            "make one with `tradectl backup`"
        )
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create state directory {db_path.parent}: {exc}") from exc
    lock = StoreLock(db_path.with_name(db_path.name + ".lock"))
    try:
        lock.acquire()
    except StoreLockedError:
        holder = ""
        with contextlib.suppress(OSError, UnicodeDecodeError):
            holder = lock.path.read_text().strip()
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise StoreLockedError(
            f"tradingd{who} is running on {db_path.parent}; stop it first "
            "(systemctl stop tradingd), then restore; nothing was changed"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot lock {db_path}: {exc}") from exc
    try:
        _give_to_owner(lock.path, db_path.parent)
        await _verify(backup, len(migrations))
        stamp = dt.datetime.now(UTC).strftime(_STAMP)
        aside = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
        failed = db_path.with_name(f"{db_path.name}.failed-restore-{stamp}")
        moved = await anyio.to_thread.run_sync(_move_with_side_files, db_path, aside)
        try:
            await anyio.to_thread.run_sync(_copy_into_place, backup, db_path)
            # We hold the lock ourselves: a second flock in this process would fail.
            restored = await Store.open(db_path, lock=False, migrations=migrations)
            await restored.close()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_roll_back, db_path, failed, aside, moved)
            raise
        _give_to_owner(db_path, db_path.parent)
    finally:
        lock.release()
    log.info(
        "database_restored",
        backup=str(backup),
        database=str(db_path),
        previous=str(aside) if moved else None,
    )
    return aside if moved else None


def _move_with_side_files(db_path: Path, target: Path) -> bool:
    """Rename ``db_path`` and its ``-wal``/``-shm`` to ``target``(+suffix); False if none."""
    if not db_path.exists():
        return False
    for suffix in ("", *_SIDE_FILES):
        destination = Path(f"{target}{suffix}")
        if destination.exists():
            raise StoreError(f"{destination} already exists; try again in a second")
    try:
        for suffix in (*_SIDE_FILES, ""):  # the database last: its WAL must travel with it
            source = Path(f"{db_path}{suffix}")
            if source.exists():
                source.rename(f"{target}{suffix}")
    except OSError as exc:
        raise StoreError(f"cannot move {db_path} aside to {target}: {exc}") from exc
    return True


def _copy_into_place(backup: Path, db_path: Path) -> None:
    """Copy ``backup`` to ``db_path`` via a synced temporary file and an atomic rename."""
    temporary = db_path.with_name(db_path.name + ".restoring")
    try:
        shutil.copyfile(backup, temporary)
        temporary.chmod(0o600)
        with temporary.open("rb+") as fh:
            os.fsync(fh.fileno())
        temporary.replace(db_path)
        directory = os.open(db_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise StoreError(f"cannot copy {backup} to {db_path}: {exc}") from exc


def _roll_back(db_path: Path, failed: Path, aside: Path, moved: bool) -> None:
    """Keep a failed restore's copy as ``failed`` and put the old database back."""
    try:
        _move_with_side_files(db_path, failed)
    except StoreError:
        # Putting the old database back now would overwrite the copy: leave both.
        log.exception("restore_rollback_failed", database=str(db_path), previous=str(aside))
        return
    if moved:
        for suffix in ("", *_SIDE_FILES):
            source = Path(f"{aside}{suffix}")
            if source.exists():
                with contextlib.suppress(OSError):
                    source.rename(f"{db_path}{suffix}")


def _give_to_owner(path: Path, directory: Path) -> None:
    """Run as root for a daemon that runs as its own user: hand ``path`` to that user."""
    if os.geteuid() != 0:
        return
    owner = directory.stat()
    mine = path.stat()
    if (mine.st_uid, mine.st_gid) != (owner.st_uid, owner.st_gid):
        os.chown(path, owner.st_uid, owner.st_gid)
