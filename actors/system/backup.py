"""The daemon's backups as the configuration asks for them: the daily task and ``tradectl backup``.

The mechanics (copy, verify, prune, restore) are the runtime's (``daemon.store.backup``);
this module only reads ``[backup]`` and ``[schedule]`` and wires them in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from actors.system.config import Settings
from daemon.clock import Clock
from daemon.control import CommandError, Handler
from daemon.errors import StoreError
from daemon.logging import EventLog
from daemon.store import Store
from daemon.store.backup import Outcome, backup_loop, backup_now

log = structlog.get_logger("tradingd.backup")


async def daily_backups(
    store: Store,
    settings: Settings,
    clock: Clock,
    *,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> None:
    """``backup_loop`` as ``[backup]`` configures it, at ``schedule.timezone``; the daemon's task.

    The settings are read once: a changed ``[backup]`` section takes a restart.
    """
    cfg = settings.backup
    await backup_loop(
        store,
        clock=clock,
        directory=cfg.dir,
        at=cfg.at,
        timezone=settings.schedule.timezone,
        retention_days=cfg.retention_days,
        events=EventLog(settings.daemon.events_dir),
        on_outcome=on_outcome,
    )


def backup_command(store: Store, settings: Callable[[], Settings], clock: Clock) -> Handler:
    """The control command ``backup``: back up now into ``backup.dir``; the file and its size."""

    async def backup(_args: dict[str, Any]) -> dict[str, Any]:
        directory = settings().backup.dir
        try:
            path = await backup_now(store, directory, clock.now())
        except StoreError as exc:
            # As the cycle's refusals do: the operator reads why, not "internal error".
            log.error("backup_failed", directory=str(directory), error=str(exc), by="operator")
            raise CommandError(str(exc)) from exc
        log.info("backup_completed", path=str(path), bytes=path.stat().st_size, by="operator")
        return {"path": str(path), "bytes": path.stat().st_size}

    return backup
