"""The cycle journal: each cycle's progress is persisted so a restart resumes, never repeats."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from daemon.store.core import Row, Store


class CycleStep(StrEnum):
    """Steps in the order a cycle passes them (the reference system's daily flow)."""

    STARTED = "started"
    DATA = "data"
    SIGNALS = "signals"
    INTENTS = "intents"
    SUBMITTED = "submitted"
    SETTLED = "settled"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class CycleRecord:
    run_id: str
    asof: dt.date
    trigger: str
    step: str
    status: str
    reason: str | None
    started_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: Row) -> CycleRecord:
        return cls(
            run_id=row["run_id"],
            asof=dt.date.fromisoformat(row["asof_date"]),
            trigger=row["trigger"],
            step=row["step"],
            status=row["status"],
            reason=row["reason"],
            started_at=dt.datetime.fromisoformat(row["started_at"]),
            updated_at=dt.datetime.fromisoformat(row["updated_at"]),
            finished_at=dt.datetime.fromisoformat(row["finished_at"])
            if row["finished_at"]
            else None,
        )


class CycleJournal:
    """Reads and writes the ``cycles`` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def begin(self, run_id: str, asof: dt.date, trigger: str, at: dt.datetime) -> None:
        """Record that a cycle started (idempotent for the same run id)."""
        await self._store.execute(
            "INSERT INTO cycles (run_id, asof_date, trigger, step, status, started_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'running', ?, ?)"
            " ON CONFLICT(run_id) DO UPDATE SET updated_at = excluded.updated_at",
            (run_id, asof.isoformat(), trigger, CycleStep.STARTED, at.isoformat(), at.isoformat()),
            durable=True,
        )

    async def step(self, run_id: str, step: CycleStep, at: dt.datetime) -> None:
        await self._store.execute(
            "UPDATE cycles SET step = ?, updated_at = ? WHERE run_id = ?",
            (step, at.isoformat(), run_id),
            durable=True,
        )

    async def finish(self, run_id: str, status: str, reason: str, at: dt.datetime) -> None:
        """Close a cycle with its outcome (completed, halted, failed)."""
        step = CycleStep.COMPLETED if status == "completed" else None
        await self._store.execute(
            "UPDATE cycles SET status = ?, reason = ?, finished_at = ?, updated_at = ?,"
            " step = COALESCE(?, step) WHERE run_id = ?",
            (status, reason, at.isoformat(), at.isoformat(), step, run_id),
            durable=True,
        )

    async def get(self, run_id: str) -> CycleRecord | None:
        row = await self._store.fetchone("SELECT * FROM cycles WHERE run_id = ?", (run_id,))
        return CycleRecord.from_row(row) if row else None

    async def for_asof(self, asof: dt.date) -> list[CycleRecord]:
        rows = await self._store.fetchall(
            "SELECT * FROM cycles WHERE asof_date = ? ORDER BY started_at", (asof.isoformat(),)
        )
        return [CycleRecord.from_row(r) for r in rows]

    async def completed_for(self, asof: dt.date) -> bool:
        """True when a cycle for session ``asof`` finished (completed or halted by a gate)."""
        row = await self._store.fetchone(
            "SELECT 1 FROM cycles WHERE asof_date = ? AND status IN ('completed', 'halted')",
            (asof.isoformat(),),
        )
        return row is not None

    async def last_finished_per_day(self) -> dict[dt.date, str]:
        """Session -> run id of its last finished (not running) cycle."""
        rows = await self._store.fetchall(
            "SELECT run_id, asof_date FROM cycles WHERE status != 'running' ORDER BY started_at"
        )
        return {dt.date.fromisoformat(r["asof_date"]): r["run_id"] for r in rows}

    async def unfinished(self) -> list[CycleRecord]:
        """Cycles a crash interrupted (status still 'running')."""
        rows = await self._store.fetchall(
            "SELECT * FROM cycles WHERE status = 'running' ORDER BY started_at"
        )
        return [CycleRecord.from_row(r) for r in rows]

    async def last(self, *, status: str | None = None) -> CycleRecord | None:
        if status is None:
            row = await self._store.fetchone(
                "SELECT * FROM cycles ORDER BY started_at DESC, rowid DESC LIMIT 1"
            )
        else:
            row = await self._store.fetchone(
                "SELECT * FROM cycles WHERE status = ? ORDER BY started_at DESC, rowid DESC"
                " LIMIT 1",
                (status,),
            )
        return CycleRecord.from_row(row) if row else None
