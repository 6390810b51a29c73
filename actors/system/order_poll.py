"""The daemon's poll of its orders during a session: fills booked, resting stops kept.

The daily cycle places its orders at the open; Alpaca fills a market order within
seconds, but the cycle ends before it hears of every fill, and a stop resting at
the broker can fill at any minute of any session. So, from each session's open to
a little after its close, every ``orders.poll_interval_s`` the order manager is
asked to settle (book new fills, a resting stop's fill as a stop-loss exit) and to
keep the resting stops (an entry filled since: its stop placed). Outside sessions
it sleeps until the next open; nothing is asked of the broker at night.

A failed poll is logged and the next one comes at the next interval: the poll is
a convenience, the cycle settles and syncs again itself.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from actors.market.calendar import ExchangeCalendar
from actors.messages import SettleOrders, SyncRestingStops
from actors.system.config import Settings
from daemon.actor import ActorRef
from daemon.clock import Clock
from daemon.errors import TradingdError

log = structlog.get_logger("tradingd.orders")

#: How long after a close the poll goes on (late fill reports, the closing auction).
AFTER_CLOSE = dt.timedelta(minutes=15)
RUN_ID = "poll"


def next_poll_window(
    now: dt.datetime, calendar: ExchangeCalendar
) -> tuple[dt.datetime, dt.datetime]:
    """The session window (open, close + ``AFTER_CLOSE``) that contains ``now`` or comes next."""
    session = calendar.session_on_or_before(now.astimezone(calendar.tz).date())
    if now >= calendar.session_close(session) + AFTER_CLOSE:
        session = calendar.next_session(session)
    return calendar.session_open(session), calendar.session_close(session) + AFTER_CLOSE


async def poll_once(order_manager: ActorRef, *, timeout_s: float, broker_stops: bool) -> bool:
    """One poll: settle, then sync the resting stops; False when it failed (logged)."""
    try:
        await order_manager.ask(SettleOrders(RUN_ID), timeout=timeout_s)
        if broker_stops:
            report = await order_manager.ask(SyncRestingStops(RUN_ID), timeout=timeout_s)
            for change in report.alerts:
                log.warning(
                    "resting_stop_needs_attention",
                    strategy=change.strategy,
                    symbol=change.symbol,
                    action=str(change.action),
                    detail=change.detail,
                )
    except (TradingdError, TimeoutError) as exc:
        log.warning("order_poll_failed", error=repr(exc))
        return False
    return True


async def poll_orders(
    order_manager: ActorRef,
    clock: Clock,
    calendar: ExchangeCalendar,
    *,
    interval_s: float,
    broker_stops: bool,
    timeout_s: float = 600.0,
) -> None:
    """Poll during every session until cancelled (the daemon's task; see the module)."""
    while True:
        now = clock.now()
        start, end = next_poll_window(now, calendar)
        if now < start:
            await clock.sleep_until(start)
            continue
        await poll_once(order_manager, timeout_s=timeout_s, broker_stops=broker_stops)
        await clock.sleep(min(interval_s, max(1.0, (end - clock.now()).total_seconds())))


def poll_task(
    order_manager: ActorRef, clock: Clock, calendar: ExchangeCalendar, *, settings: Settings
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The daemon's poll as ``[orders]`` configures it (read once: a change takes a restart)."""
    orders = settings.orders
    return functools.partial(
        poll_orders,
        order_manager,
        clock,
        calendar,
        interval_s=orders.poll_interval_s,
        broker_stops=orders.broker_stops,
    )
