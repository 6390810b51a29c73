"""Step 2, market data: a market-wide data failure halts the cycle (``bad_data``).

``bad_data`` clears itself on the next good data. A symbol with bad data is
dropped from today's trading (the feed's rejections are logged here), but its
open position is still checked against its stop.
"""

from __future__ import annotations

from actors.cycle import kill_switches
from actors.cycle.context import CycleContext, Outcome
from actors.events import EventType
from actors.messages import ClearKillSwitch, CycleStatus, DataUnavailable, FetchSnapshot
from actors.risk import pipeline
from actors.store.cycles import CycleStep


async def market_data(cx: CycleContext) -> Outcome | None:
    """Ask the data feed for today's snapshot; halt on none, clear ``bad_data`` on one."""
    msg, d, st = cx.msg, cx.deps, cx.state
    answer = await d.data_feed.ask(FetchSnapshot(msg.run_id, msg.asof), timeout=d.data_timeout_s)
    if answer.rejected and not cx.plan:
        await d.signals.log_rejections(
            msg.run_id,
            pipeline.Stage.DATA,
            [(r.symbol, r.reason_code, {"details": r.details}) for r in answer.rejected],
        )
    if isinstance(answer, DataUnavailable):
        await cx.trip(kill_switches.BAD_DATA, answer.reason)
        return Outcome(CycleStatus.HALTED, f"no trading on bad data: {answer.reason}")
    st.snap = answer
    await _clear_bad_data(cx)
    st.notes.extend(answer.notes)
    if not cx.plan:
        await d.journal.step(msg.run_id, CycleStep.DATA, d.clock.now())
    return None


async def _clear_bad_data(cx: CycleContext) -> None:
    """Good data again: ``bad_data`` (a condition, not an operator latch) clears itself."""
    st = cx.state
    stale = [s for s in st.switches if s.name in kill_switches.SELF_CLEARING and s.source == "risk"]
    if not stale:
        return
    st.blocking = [s for s in st.blocking if s not in stale]
    if cx.plan:
        return
    for switch in stale:
        reason = f"market data good again for {cx.msg.asof}"
        cleared = await cx.deps.kill_switches.ask(ClearKillSwitch(switch.name, reason, "risk"))
        if cleared:
            await cx.event(EventType.KILL_SWITCH_CLEARED, switch=switch.name, reason=reason)
