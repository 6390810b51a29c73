"""CycleRunner: a trading date whose cycle completed is done, whatever the time of day.

The real actor graph (``actors.system.graph.simulated_graph``) on the synthetic market and the
simulated broker, with a SimClock; the journal is what decides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from actors.cycle.runner import CycleAlreadyCompleted, CycleStarted, PlanCycle, WaitCycle
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from actors.messages import CycleCompleted, CycleTrigger, StartCycle
from actors.store.cycles import CycleJournal
from actors.store.signals import SignalStore
from actors.system.config import load_settings
from actors.system.graph import simulated_graph
from daemon.clock import SimClock
from daemon.store import Store
from daemon.supervisor import Supervisor

NY = ZoneInfo("America/New_York")
ASOF = dt.date(2026, 11, 23)  # a Monday session
CALENDAR = ExchangeCalendar("XNYS")
FIRST_DONE = dt.datetime(2026, 11, 23, 9, 48, 2, tzinfo=NY)


@dataclass
class Graph:
    sup: Supervisor
    store: Store
    clock: SimClock

    async def start(self, run_id: str, **flags: bool) -> CycleStarted:
        msg = StartCycle(run_id, ASOF, CycleTrigger.OPERATOR, **flags)
        started: CycleStarted = await self.sup.ref("risk_supervisor").ask(msg)
        return started

    async def wait(self, run_id: str) -> CycleCompleted:
        done: CycleCompleted = await self.sup.ref("risk_supervisor").ask(
            WaitCycle(run_id), timeout=300
        )
        return done

    async def journal(self, run_id: str, status: str, finished: dt.datetime) -> None:
        """Record a finished cycle for ASOF, as a run before this process did."""
        journal = CycleJournal(self.store)
        await journal.begin(run_id, ASOF, "operator", finished - dt.timedelta(seconds=2))
        await journal.finish(run_id, status, "recorded by the test", finished)

    async def kill_switch_rejections(self, run_id: str) -> list[list[str]]:
        """The switch lists of the run's entries refused at the KILL_SWITCH stage."""
        rows = await SignalStore(self.store).rejections(run_id)
        return [r["details"].get("switches", []) for r in rows if r["stage"] == "KILL_SWITCH"]

    async def buy_intents(self, run_id: str) -> int:
        row = await self.store.fetchone(
            "SELECT COUNT(*) FROM order_intents WHERE run_id = ? AND side = 'buy'", (run_id,)
        )
        return int(row[0]) if row else 0


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[Graph]:
    """The graph at 09:47 New York time on ASOF (orders fill at its open), for the block."""
    # The embedded default universe: it trades on its first day.
    settings = load_settings(None, {"TRADINGD_DAEMON__STATE_DIR": str(tmp_path / "state")})
    graph = await simulated_graph(
        settings,
        store=settings.daemon.db_path,
        calendar=CALENDAR,
        clock=SimClock(dt.datetime(2026, 11, 23, 9, 47, tzinfo=NY)),
        provider=SyntheticProvider(settings.data.synthetic),
    )
    try:
        async with graph.running():
            yield Graph(graph.supervisor, graph.store, graph.clock)
    finally:
        await graph.close()


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(dt.datetime(2026, 11, 23, 10, 15, tzinfo=NY), id="during-the-session"),
        pytest.param(dt.datetime(2026, 11, 23, 17, 0, tzinfo=NY), id="after-the-close"),
        pytest.param(dt.datetime(2026, 11, 28, 12, 0, tzinfo=NY), id="days-later"),
    ],
)
async def test_a_completed_date_is_refused_at_any_time(tmp_path: Path, now: dt.datetime) -> None:
    """Without force, a date with a completed cycle is refused, naming the run and when."""
    async with running(tmp_path) as graph:
        await graph.journal("first", "completed", FIRST_DONE)
        graph.clock.set_time(now)
        with pytest.raises(CycleAlreadyCompleted) as refused:
            await graph.start("second")
        message = str(refused.value)
        assert "trading date 2026-11-23 is done" in message
        assert "cycle first completed at 2026-11-23 09:48:02 EST" in message
        assert "--force runs exits and stop checks again" in message
        assert (refused.value.run_id, refused.value.finished_at) == ("first", FIRST_DONE)
        assert await CycleJournal(graph.store).get("second") is None


@pytest.mark.parametrize("status", ["failed", "halted"])
async def test_a_failed_or_halted_cycle_does_not_make_the_date_done(
    tmp_path: Path, status: str
) -> None:
    """A cycle that placed no entry (failed, halted) leaves the date open: a new one runs."""
    async with running(tmp_path) as graph:
        await graph.journal("first", status, FIRST_DONE)
        started = await graph.start("second")
        assert started.run_id == "second"
        await graph.wait("second")
        assert await graph.kill_switch_rejections("second") == []
        assert await graph.buy_intents("second") > 0


async def test_forced_rerun_blocks_entries_naming_the_completed_run(tmp_path: Path) -> None:
    """With force only, every entry is refused as day_already_traded; no buy intent."""
    async with running(tmp_path) as graph:
        await graph.journal("first", "completed", FIRST_DONE)
        with capture_logs() as logs:
            await graph.start("forced", force=True)
            done = await graph.wait("forced")
        assert done.status == "completed"
        blocked = await graph.kill_switch_rejections("forced")
        assert blocked
        assert all("day_already_traded" in switches for switches in blocked)
        assert await graph.buy_intents("forced") == 0
        (forced,) = [e for e in logs if e["event"] == "cycle_forced"]
        assert (forced["completed_run"], forced["entries"]) == ("first", "blocked")


async def test_forced_rerun_with_allow_entries_may_enter(tmp_path: Path) -> None:
    """With force and allow_entries, the cycle runs normally and can place entries."""
    async with running(tmp_path) as graph:
        await graph.journal("first", "completed", FIRST_DONE)
        await graph.start("forced", force=True, allow_entries=True)
        await graph.wait("forced")
        assert await graph.kill_switch_rejections("forced") == []
        assert await graph.buy_intents("forced") > 0


async def test_allow_entries_without_force_is_still_refused(tmp_path: Path) -> None:
    """allow_entries alone does not open a completed date."""
    async with running(tmp_path) as graph:
        await graph.journal("first", "completed", FIRST_DONE)
        with pytest.raises(CycleAlreadyCompleted):
            await graph.start("second", allow_entries=True)


async def test_plan_of_a_completed_date_shows_the_block(tmp_path: Path) -> None:
    """A plan is never refused; on a done date it shows entries blocked, naming the run."""
    async with running(tmp_path) as graph:
        await graph.journal("first", "completed", FIRST_DONE)
        plan = await graph.sup.ref("risk_supervisor").ask(PlanCycle("plan", ASOF), timeout=300)
        assert "already traded by cycle first" in plan["entries_blocked"]
        assert plan["orders"] == []
        entries = [r for r in plan["rejections"] if r["stage"] == "KILL_SWITCH"]
        assert entries
        assert all(r["details"]["switches"] == ["day_already_traded"] for r in entries)


async def test_plan_of_an_open_date_is_unblocked(tmp_path: Path) -> None:
    """Before any cycle completed the date, a plan has no entries block."""
    async with running(tmp_path) as graph:
        plan = await graph.sup.ref("risk_supervisor").ask(PlanCycle("plan", ASOF), timeout=300)
        assert plan["entries_blocked"] is None
