"""``replay DATE``: did the live cycle do what the strategies say?

The live database is copied (online backup; the daemon may keep running),
the copy is rewound to the start of ``DATE`` (``actors.store.rewind``:
positions rebuilt from earlier trades), a simulated broker is set to exactly
those positions and the cash they imply, and the session is re-run through
the same actor graph as a dry run (``PlanCycle``) on a SimClock just after
the open. The replay's signals and orders are then compared with what the
live cycle recorded: missing (live had it, the replay does not), extra, and
different size.

Bars come from the configured provider; remote providers answer from the
bars cached in the copy, so a replay needs no network for days the daemon
already fetched. Kill switches are not replayed (they are cleared in the
copy): the question is what the strategies and the risk rules decide.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any

import anyio

from actors.cycle.runner import PlanCycle
from actors.data_feed.providers import make_provider
from actors.market.calendar import ExchangeCalendar
from actors.risk.fill_terms import ReferenceFillTerms
from actors.store import open_store
from actors.store.bars import BarCache
from actors.store.broker_state import BrokerStateStore
from actors.store.cycles import CycleJournal
from actors.store.orders import OrderStore
from actors.store.rewind import rewind_to
from actors.store.signals import SignalStore
from actors.system.config import Settings
from actors.system.graph import simulated_graph
from daemon.clock import SimClock
from daemon.errors import Refusal
from daemon.store import Store

Key = tuple[str, str, str]


async def replay(
    settings: Settings, day: dt.date, *, db_path: Path | None = None
) -> dict[str, Any]:
    """Re-run session ``day`` from the recorded state; the differences from live."""
    calendar = ExchangeCalendar(settings.schedule.calendar)
    await anyio.to_thread.run_sync(calendar.load)
    if not calendar.is_session(day):
        raise Refusal(f"{day} is not a trading session")
    live_path = db_path or settings.daemon.db_path
    if not await anyio.Path(live_path).exists():
        raise Refusal(f"no state database at {live_path}")
    workdir = Path(tempfile.mkdtemp(prefix="tradingd-replay-"))
    try:
        copy = workdir / "replay.db"
        live = await open_store(live_path, lock=False, readonly=True)
        try:
            runs = [r for r in await CycleJournal(live).for_asof(day) if r.status != "running"]
            if not runs:
                raise Refusal(f"no live cycle was recorded for {day}")
            run = runs[-1]
            live_signals = await _signals(live, run.run_id)
            live_orders = await OrderStore(live).intent_sizes(day)
            await live.backup_to(copy)
        finally:
            await live.close()
        plan = await _replay_on_copy(settings, calendar, copy, day)
    finally:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))
    replay_signals = {
        (s["strategy"], s["symbol"], s["action"]): int(s["shares"]) for s in plan["signals"]
    }
    replay_orders = {(o["strategy"], o["symbol"], o["side"]): int(o["qty"]) for o in plan["orders"]}
    signals = _diff(live_signals, replay_signals)
    orders = _diff(live_orders, replay_orders)
    return {
        "date": day.isoformat(),
        "live_run": run.run_id,
        "live_status": run.status,
        "replay_reason": plan["reason"],
        "signals": signals,
        "orders": orders,
        "matches": not any(signals.values()) and not any(orders.values()),
    }


async def _replay_on_copy(
    settings: Settings, calendar: ExchangeCalendar, copy: Path, day: dt.date
) -> dict[str, Any]:
    store = await open_store(copy, scratch=True)
    try:
        terms = ReferenceFillTerms(stop_atr_multiple=settings.risk.stop_atr_multiple)
        rebuilt = await rewind_to(store, day, terms=terms)
        cash = await BrokerStateStore(store).local_cash()
        secrets = settings.secrets

        def secret(value: Any) -> str | None:
            return None if value is None else str(value.get_secret_value())

        provider = make_provider(
            settings.data,
            alpaca_api_key=secret(secrets.alpaca_api_key),
            alpaca_secret_key=secret(secrets.alpaca_secret_key),
            alphavantage_api_key=secret(secrets.alphavantage_api_key),
            cache=BarCache(store),
            sessions_fn=calendar.sessions_between,
        )
        graph = await simulated_graph(
            settings,
            store=store,
            calendar=calendar,
            clock=SimClock(calendar.session_open(day) + dt.timedelta(minutes=1)),
            provider=provider,
            initial_cash=cash,
        )
        assert graph.sim is not None
        await graph.sim.reset(cash)
        by_symbol: dict[str, tuple[int, float]] = {}
        for p in rebuilt:
            qty, cost = by_symbol.get(p.symbol, (0, 0.0))
            by_symbol[p.symbol] = (qty + p.shares, cost + p.shares * p.avg_price)
        for symbol, (qty, cost) in by_symbol.items():
            await graph.sim.adjust_position(symbol, qty, cost / qty)
        async with graph.running():
            plan: dict[str, Any] = await graph.ref("risk_supervisor").ask(
                PlanCycle(f"replay-{day:%Y%m%d}", day), timeout=1800
            )
        return plan
    finally:
        await store.close()


async def _signals(store: Store, run_id: str) -> dict[Key, int]:
    rows = await SignalStore(store).signals_for_run(run_id)
    return {(r["strategy"], r["symbol"], r["signal_type"]): int(r["shares"] or 0) for r in rows}


def _diff(live: dict[Key, int], replayed: dict[Key, int]) -> dict[str, list[dict[str, Any]]]:
    def row(key: Key, **extra: Any) -> dict[str, Any]:
        return {"strategy": key[0], "symbol": key[1], "side": key[2], **extra}

    return {
        "missing": [row(k, live=live[k]) for k in sorted(set(live) - set(replayed))],
        "extra": [row(k, replay=replayed[k]) for k in sorted(set(replayed) - set(live))],
        "different_size": [
            row(k, live=live[k], replay=replayed[k])
            for k in sorted(set(live) & set(replayed))
            if live[k] != replayed[k]
        ],
    }


def render(result: dict[str, Any]) -> str:
    """The replay report for people."""
    lines = [
        f"replay {result['date']} (live run {result['live_run']}, {result['live_status']}):"
        f" {'identical' if result['matches'] else 'DIFFERS'}",
    ]
    for part in ("signals", "orders"):
        diff = result[part]
        for kind in ("missing", "extra", "different_size"):
            for item in diff[kind]:
                detail = ", ".join(f"{k} {item[k]}" for k in ("live", "replay") if k in item)
                lines.append(
                    f"  {part[:-1]} {kind.replace('_', ' ')}: {item['strategy']} {item['symbol']}"
                    f" {item['side']} ({detail})"
                )
    return "\n".join(lines)
