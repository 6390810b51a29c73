"""Key-value system state and latched kill switches."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from daemon.store.core import Store


class SystemState:
    """The ``system_state`` table: small JSON values under string keys."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, key: str, default: Any = None) -> Any:
        row = await self._store.fetchone("SELECT value FROM system_state WHERE key = ?", (key,))
        return json.loads(row["value"]) if row else default

    async def set(self, key: str, value: Any, at: dt.datetime, *, durable: bool = False) -> None:
        await self._store.execute(
            "INSERT INTO system_state (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (key, json.dumps(value, sort_keys=True), at.isoformat()),
            durable=durable,
        )


@dataclass(frozen=True, slots=True)
class KillSwitchRecord:
    name: str
    active: bool
    reason: str
    since: dt.datetime
    source: str


class KillSwitchStore:
    """Persisted kill-switch state and its audit trail; writes are durable (FULL sync)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def set(
        self, name: str, *, active: bool, reason: str, source: str, at: dt.datetime
    ) -> None:
        async with self._store.transaction(durable=True) as conn:
            await conn.execute(
                "INSERT INTO kill_switches (name, active, reason, since, source)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET active = excluded.active,"
                " reason = excluded.reason, since = excluded.since, source = excluded.source",
                (name, int(active), reason, at.isoformat(), source),
            )
            await conn.execute(
                "INSERT INTO kill_switch_events (name, active, reason, source, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, int(active), reason, source, at.isoformat()),
            )

    async def all(self) -> list[KillSwitchRecord]:
        rows = await self._store.fetchall("SELECT * FROM kill_switches ORDER BY name")
        return [
            KillSwitchRecord(
                name=r["name"],
                active=bool(r["active"]),
                reason=r["reason"],
                since=dt.datetime.fromisoformat(r["since"]),
                source=r["source"],
            )
            for r in rows
        ]

    async def events(self) -> list[KillSwitchRecord]:
        """The audit trail: every trip and clear, in the order they happened."""
        rows = await self._store.fetchall("SELECT * FROM kill_switch_events ORDER BY id")
        return [
            KillSwitchRecord(
                name=r["name"],
                active=bool(r["active"]),
                reason=r["reason"],
                since=dt.datetime.fromisoformat(r["at"]),
                source=r["source"],
            )
            for r in rows
        ]

    async def active(self) -> list[KillSwitchRecord]:
        return [r for r in await self.all() if r.active]

    async def last_cleared(self, name: str) -> dt.datetime | None:
        """When switch ``name`` was last cleared (from the audit trail), or None."""
        row = await self._store.fetchone(
            "SELECT MAX(at) FROM kill_switch_events WHERE name = ? AND active = 0", (name,)
        )
        return None if row is None or row[0] is None else dt.datetime.fromisoformat(row[0])
