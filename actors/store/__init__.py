"""The trading tables and all their SQL (the runtime's ``daemon.store`` holds the connection).

``open_store`` opens the state database with the trading schema (``schema.MIGRATIONS``).
"""

from __future__ import annotations

from pathlib import Path

from actors.store.cycles import CycleJournal, CycleRecord, CycleStep
from actors.store.schema import LATEST_VERSION, MIGRATIONS
from actors.store.state import KillSwitchRecord, KillSwitchStore, SystemState
from daemon.store import Store


async def open_store(
    path: Path, *, lock: bool = True, readonly: bool = False, scratch: bool = False
) -> Store:
    """``Store.open`` with the trading schema: created and migrated to ``LATEST_VERSION``."""
    return await Store.open(
        path, lock=lock, readonly=readonly, scratch=scratch, migrations=MIGRATIONS
    )


__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "CycleJournal",
    "CycleRecord",
    "CycleStep",
    "KillSwitchRecord",
    "KillSwitchStore",
    "SystemState",
    "open_store",
]
