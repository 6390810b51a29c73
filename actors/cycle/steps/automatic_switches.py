"""Step 10, automatic switches: the rules of ``actors.cycle.kill_switches`` on the day's
results, a broker that refused an order (``broker_blocked``), and the cycle's summary.
"""

from __future__ import annotations

import math

from actors.cycle import kill_switches
from actors.cycle.context import CycleContext, Outcome, went_through
from actors.messages import CycleStatus, IntentStatus

#: Where the count of failed cycles in a row is kept (``SystemState``).
FAILURE_STREAK_KEY = "consecutive_failures"


async def automatic_switches(cx: CycleContext) -> Outcome | None:
    """Trip what the day's results call for; a cycle whose every strategy failed fails."""
    st = cx.state
    out, results = st.outcome, st.results
    rejected = sum(1 for r in results if r.status is IntentStatus.REJECTED and not r.existing)
    order_errors = [r for r in results if r.status is IntentStatus.NEW and r.error]
    blocked = [r for r in results if r.error_code == "account_blocked"]
    if blocked:
        why = f"the broker refused an order: {blocked[0].error}"
        await cx.trip(kill_switches.BROKER_BLOCKED, why)
        out.notes.append(why)
    failed_cycle = bool(st.failures) and len(st.failures) == len(st.enabled) and bool(st.enabled)
    streak = await _failure_streak(cx, bool(st.failures) or bool(order_errors))
    day_loss = st.day.loss if st.day is not None and st.day.known else 0.0
    ctx = kill_switches.RiskContext(
        reconciliation_passed=st.recon.passed,
        daily_drawdown=day_loss,
        consecutive_failures=streak,
        rejected_orders=rejected,
        total_orders=len([r for r in results if not r.existing]),
        stale_data=False,
        bad_data_reason=None,
        drawdown_from_peak=st.drawdown if math.isfinite(st.drawdown) else 0.0,
        peak_equity=st.high_water.equity if st.high_water else 0.0,
    )
    for switch, reason in kill_switches.evaluate(ctx, cx.risk.kill_switches):
        if switch != kill_switches.RECONCILIATION_FAILED:
            await cx.trip(switch, reason)
    if failed_cycle:
        out.status = CycleStatus.FAILED
        out.reason = "every strategy failed: " + "; ".join(st.failures)
        return None
    out.reason = _summary(cx)
    return None


def _summary(cx: CycleContext) -> str:
    """The reason of a cycle that went through: orders placed, signals rejected, notes."""
    st = cx.state
    out, results = st.outcome, st.results
    placed = [r for r in results if not r.existing and went_through(r)]
    buys = sum(1 for r in placed if r.side == "buy")
    reason = (
        f"{len(placed)} orders placed ({buys} {_plural(buys, 'buy')},"
        f" {len(placed) - buys} {_plural(len(placed) - buys, 'sell')}),"
        f" {len(out.rejections)} signals rejected"
    )
    refused = sum(1 for r in results if not r.existing and not went_through(r))
    if refused:
        reason += f", {refused} refused"
    if st.failures:
        reason += "; strategies failed: " + "; ".join(st.failures)
    if out.notes:
        reason += "; " + "; ".join(out.notes)
    return reason


def _plural(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


async def _failure_streak(cx: CycleContext, failed: bool) -> int:
    """Failed cycles in a row, this one included (0 after a cycle without failures)."""
    state = cx.deps.state
    streak = int(await state.get(FAILURE_STREAK_KEY, 0))
    streak = streak + 1 if failed else 0
    await state.set(FAILURE_STREAK_KEY, streak, cx.deps.clock.now())
    return streak
