"""The state database: SQLite (WAL), the single source of truth. All SQL lives here."""

from daemon.store.core import Store, StoreLock
from daemon.store.cycles import CycleJournal, CycleRecord, CycleStep
from daemon.store.state import KillSwitchRecord, KillSwitchStore, SystemState

__all__ = [
    "CycleJournal",
    "CycleRecord",
    "CycleStep",
    "KillSwitchRecord",
    "KillSwitchStore",
    "Store",
    "StoreLock",
    "SystemState",
]
