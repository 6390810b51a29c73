"""Step 5, loss limits: the day's loss against the recorded closes, and the drawdown.

A day's loss beyond -2 % blocks entries today (``daily_loss_limit``); 5 % trips
the ``daily_drawdown`` kill switch (step 10). The drawdown from the high-water
mark feeds ``max_drawdown``. See ``actors.risk.drawdown``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import structlog

from actors.cycle import kill_switches
from actors.cycle.context import CycleContext, Outcome
from actors.events import EventType
from actors.market.calendar import ExchangeCalendar
from actors.messages import GetClosingEquity, ReconciliationReport, SwitchView
from actors.risk.drawdown import (
    DayLoss,
    HighWater,
    drawdown_from_peak,
    measure_day_loss,
    update_high_water,
)
from daemon.errors import ActorStopped, AskTimeout

log = structlog.get_logger()

#: Where the high-water mark of the equity is kept (``SystemState``).
HIGH_WATER_KEY = "equity_high_water"


async def loss_limits(cx: CycleContext) -> Outcome | None:
    """Measure the day's loss and the drawdown; block entries past the daily loss limit."""
    st = cx.state
    report = st.recon
    if report.error is not None or not report.broker_equity > 0:
        st.notes.append("daily loss and drawdown not measured: the broker was not read")
        return None
    st.day = await _day_loss(cx, report)
    limit = cx.risk.loss.daily_loss_limit
    if st.day.breached(limit):
        reason = f"daily loss {st.day.loss:.2%} beyond -{limit:.0%} ({st.day.describe()})"
        st.blocking.append(SwitchView(kill_switches.DAILY_LOSS_LIMIT, reason, "risk"))
        st.notes.append(reason)
        await cx.event(EventType.RISK_LIMIT_HIT, limit="daily_loss", pnl=st.day.pnl)
    elif not st.day.known:
        st.notes.append(f"daily loss unknown: {st.day.describe()}")
    await _high_water(cx, report.broker_equity)
    metrics = cx.deps.metrics
    if metrics is not None and math.isfinite(st.day.pnl):
        metrics.daily_pnl_ratio.set(st.day.pnl)
    return None


async def _day_loss(cx: CycleContext, report: ReconciliationReport) -> DayLoss:
    """Record what the broker says about closes, fill gaps from its history, measure."""
    d = cx.deps
    now = d.clock.now()
    cal = d.calendar
    today = now.astimezone(cal.tz).date()
    in_session = cal.is_session(today) and cal.session_open(today) <= now < cal.session_close(today)
    latest = _last_closed_session(cal, now)
    previous = cal.previous_session(latest)
    if not cx.plan:
        reference = cal.previous_session(today)  # the broker's "previous trading day"
        if report.broker_last_equity is not None:
            await d.equity.record(reference, report.broker_last_equity, "last_equity", now)
        if not in_session:
            await d.equity.record(latest, report.broker_equity, "after_close", now)
    closes = await d.equity.get_many((latest, previous))
    missing = [s for s in (latest, previous) if s not in closes]
    if missing:
        known = await _broker_closes(cx, missing)
        closes.update(known)
        for session, equity in known.items():
            if not cx.plan:
                await d.equity.record(session, equity, "broker_history", now)
    if not in_session and latest not in closes:
        closes[latest] = report.broker_equity
    return measure_day_loss(
        closes,
        session=latest,
        previous=previous,
        equity=report.broker_equity,
        in_session=in_session,
    )


async def _broker_closes(cx: CycleContext, sessions: Sequence[dt.date]) -> dict[dt.date, float]:
    """The broker's closing equity of ``sessions``; empty when it cannot be asked."""
    try:
        answer: dict[dt.date, float] = await cx.deps.reconciler.ask(
            GetClosingEquity(tuple(sessions)), timeout=cx.deps.order_timeout_s
        )
    except (AskTimeout, ActorStopped) as exc:
        log.warning("closing_equity_unavailable", error=str(exc))
        return {}
    return answer


async def _high_water(cx: CycleContext, equity: float) -> None:
    """Move the high-water mark (reset by a cleared ``max_drawdown``) and measure from it."""
    d, st = cx.deps, cx.state
    cleared = await d.switch_records.last_cleared(kill_switches.MAX_DRAWDOWN)
    stored = HighWater.from_dict(await d.state.get(HIGH_WATER_KEY))
    if stored is None:  # a first run after an upgrade: start from the recorded closes
        peak = await d.equity.peak()
        stored = HighWater(peak) if peak is not None else None
    st.high_water = update_high_water(stored, equity, cleared_at=cleared)
    st.drawdown = drawdown_from_peak(st.high_water.equity, equity)
    if not cx.plan and st.high_water != stored:
        await d.state.set(HIGH_WATER_KEY, st.high_water.as_dict(), d.clock.now())


def _last_closed_session(cal: ExchangeCalendar, now: dt.datetime) -> dt.date:
    """The most recent session whose close is at or before ``now``."""
    today = now.astimezone(cal.tz).date()
    if cal.is_session(today) and now >= cal.session_close(today):
        return today
    return cal.previous_session(today)
