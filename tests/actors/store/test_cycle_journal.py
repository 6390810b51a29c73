"""The cycle journal: begin, step, finish and the queries a restart relies on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from actors.store import open_store
from actors.store.cycles import CycleJournal, CycleStep
from daemon.store import Store

UTC = dt.UTC
MON = dt.date(2024, 1, 8)
TUE = dt.date(2024, 1, 9)
T0 = dt.datetime(2024, 1, 8, 21, 0, tzinfo=UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def journal(store: Store) -> CycleJournal:
    return CycleJournal(store)


async def test_begin_records_a_running_cycle(journal: CycleJournal) -> None:
    """begin() stores a running cycle at step 'started' with its session, trigger and time."""
    await journal.begin("run-1", MON, "schedule", at(0))
    rec = await journal.get("run-1")
    assert rec is not None
    assert (rec.run_id, rec.asof, rec.trigger) == ("run-1", MON, "schedule")
    assert (rec.step, rec.status, rec.reason) == (CycleStep.STARTED, "running", None)
    assert rec.started_at == at(0)
    assert rec.updated_at == at(0)
    assert rec.finished_at is None


async def test_begin_again_keeps_the_original_start(journal: CycleJournal) -> None:
    """A second begin() for the same run id only touches updated_at."""
    await journal.begin("run-1", MON, "schedule", at(0))
    await journal.step("run-1", CycleStep.SIGNALS, at(1))
    await journal.begin("run-1", MON, "manual", at(5))
    rec = await journal.get("run-1")
    assert rec is not None
    assert (rec.trigger, rec.step, rec.started_at, rec.updated_at) == (
        "schedule",
        CycleStep.SIGNALS,
        at(0),
        at(5),
    )
    assert len(await journal.for_asof(MON)) == 1


async def test_step_advances_the_cycle(journal: CycleJournal) -> None:
    """step() records the step reached and when."""
    await journal.begin("run-1", MON, "schedule", at(0))
    await journal.step("run-1", CycleStep.INTENTS, at(3))
    rec = await journal.get("run-1")
    assert rec is not None
    assert (rec.step, rec.updated_at, rec.status) == (CycleStep.INTENTS, at(3), "running")


async def test_finish_completed_marks_step_completed(journal: CycleJournal) -> None:
    """finish('completed') sets the status, reason, finish time and the final step."""
    await journal.begin("run-1", MON, "schedule", at(0))
    await journal.step("run-1", CycleStep.SETTLED, at(4))
    await journal.finish("run-1", "completed", "all orders settled", at(6))
    rec = await journal.get("run-1")
    assert rec is not None
    assert (rec.status, rec.reason, rec.step) == (
        "completed",
        "all orders settled",
        CycleStep.COMPLETED,
    )
    assert rec.finished_at == at(6)
    assert rec.updated_at == at(6)


async def test_finish_failed_keeps_the_step_reached(journal: CycleJournal) -> None:
    """finish('failed') leaves the step where the cycle stopped."""
    await journal.begin("run-1", MON, "schedule", at(0))
    await journal.step("run-1", CycleStep.DATA, at(1))
    await journal.finish("run-1", "failed", "provider down", at(2))
    rec = await journal.get("run-1")
    assert rec is not None
    assert (rec.status, rec.step, rec.reason) == ("failed", CycleStep.DATA, "provider down")


async def test_get_unknown_run_is_none(journal: CycleJournal) -> None:
    """get() of a run id never begun returns None."""
    assert await journal.get("nope") is None


async def test_for_asof_lists_that_sessions_cycles_in_start_order(journal: CycleJournal) -> None:
    """for_asof() returns only the given session's cycles, oldest first."""
    await journal.begin("mon-b", MON, "manual", at(10))
    await journal.begin("tue-a", TUE, "schedule", at(5))
    await journal.begin("mon-a", MON, "schedule", at(0))
    assert [r.run_id for r in await journal.for_asof(MON)] == ["mon-a", "mon-b"]
    assert [r.run_id for r in await journal.for_asof(TUE)] == ["tue-a"]
    assert await journal.for_asof(dt.date(2024, 1, 10)) == []


@pytest.mark.parametrize(
    ("status", "counts"),
    [("completed", True), ("halted", True), ("failed", False), ("running", False)],
)
async def test_completed_for_counts_completed_and_halted_only(
    journal: CycleJournal, status: str, counts: bool
) -> None:
    """completed_for() is true for a completed or gate-halted cycle, not a failed or running one."""
    await journal.begin("run-1", MON, "schedule", at(0))
    if status != "running":
        await journal.finish("run-1", status, "because", at(1))
    assert await journal.completed_for(MON) is counts
    assert await journal.completed_for(TUE) is False


async def test_unfinished_lists_running_cycles(journal: CycleJournal) -> None:
    """unfinished() returns the cycles a crash interrupted, oldest first."""
    await journal.begin("done", MON, "schedule", at(0))
    await journal.finish("done", "completed", "ok", at(1))
    await journal.begin("crashed-2", TUE, "schedule", at(20))
    await journal.begin("crashed-1", MON, "manual", at(10))
    assert [r.run_id for r in await journal.unfinished()] == ["crashed-1", "crashed-2"]


async def test_last_returns_the_latest_cycle_optionally_by_status(journal: CycleJournal) -> None:
    """last() is the most recently started cycle; last(status=) filters first."""
    assert await journal.last() is None
    await journal.begin("a", MON, "schedule", at(0))
    await journal.finish("a", "completed", "ok", at(1))
    await journal.begin("b", TUE, "schedule", at(30))
    await journal.finish("b", "failed", "boom", at(31))
    latest = await journal.last()
    assert latest is not None
    assert latest.run_id == "b"
    completed = await journal.last(status="completed")
    assert completed is not None
    assert completed.run_id == "a"
    assert await journal.last(status="halted") is None


async def test_last_breaks_equal_start_times_by_insertion(journal: CycleJournal) -> None:
    """Two cycles started at the same instant: the one begun later is last."""
    await journal.begin("first", MON, "schedule", at(0))
    await journal.begin("second", MON, "manual", at(0))
    latest = await journal.last()
    assert latest is not None
    assert latest.run_id == "second"


async def test_journal_survives_reopen(tmp_path: Path) -> None:
    """An interrupted cycle is still unfinished after the store is closed and reopened."""
    path = tmp_path / "state" / "tradingd.db"
    s = await open_store(path)
    await CycleJournal(s).begin("run-1", MON, "schedule", at(0))
    await CycleJournal(s).step("run-1", CycleStep.SUBMITTED, at(2))
    await s.close()

    s = await open_store(path)
    try:
        [rec] = await CycleJournal(s).unfinished()
        assert (rec.run_id, rec.step) == ("run-1", CycleStep.SUBMITTED)
    finally:
        await s.close()
