"""The ``notifications`` table: messages a channel finally failed to deliver."""

from __future__ import annotations

import datetime as dt
from typing import Any

from daemon.store.core import Store


class NotificationStore:
    """Records undeliverable notifications so ``tradectl status`` can show them."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record_failure(  # noqa: PLR0917 - one positional per column, in table order
        self,
        channel: str,
        message_kind: str,
        subject: str,
        body: str,
        attempts: int,
        last_error: str | None,
        at: dt.datetime,
    ) -> int:
        """Store one message that ``channel`` gave up on; returns its row id."""
        return await self._store.execute(
            "INSERT INTO notifications"
            " (channel, kind, subject, body, attempts, last_error, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (channel, message_kind, subject, body, attempts, last_error, at.isoformat()),
        )

    async def failures(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent failures first."""
        rows = await self._store.fetchall(
            "SELECT id, channel, kind, subject, body, attempts, last_error, created_at"
            " FROM notifications ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]
