"""The control commands: one small handler each, registered in one table.

Each handler answers one ``tradectl`` command (``daemon.control`` carries the
request and reply); ``ControlCommands.register`` is the table of names, handlers,
help lines and time limits. Handlers ask the actor that owns the answer, or read
the store; none writes state of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from typing import TYPE_CHECKING, Any

import anyio

from actors.cycle import kill_switches
from actors.cycle.runner import PlanCycle, WaitCycle
from actors.market.calendar import ExchangeCalendar, trading_date
from actors.market.scheduler import default_run_id
from actors.messages import (
    AdoptBrokerState,
    ClearKillSwitch,
    CycleCompleted,
    CycleTrigger,
    Flatten,
    GetStatus,
    OrderResults,
    Reconcile,
    ReconciliationReport,
    StartCycle,
    TripKillSwitch,
)
from actors.notifier.digest import render_digest
from actors.notifier.digest_data import digest_data, find_cycle
from actors.store.cycles import CycleJournal
from actors.store.equity import EquityCloses
from actors.store.orders import OrderStore
from actors.store.pending import PendingStore
from actors.store.signals import SignalStore
from actors.strategies.registry import STRATEGY_CLASSES
from actors.system.backup import backup_command
from actors.system.replay import replay
from daemon import __version__
from daemon.control import CommandError, CommandTable
from daemon.errors import FatalError, Refusal, TradingdError
from daemon.supervisor import Supervisor

if TYPE_CHECKING:
    from actors.system.app import Daemon


class ControlCommands:
    """The handlers of every control command, over one running daemon's graph and store."""

    def __init__(self, daemon: Daemon, calendar: ExchangeCalendar) -> None:
        sup, store = daemon.supervisor, daemon.store
        assert sup is not None
        assert store is not None
        self._d = daemon
        self._calendar = calendar
        self._sup = sup
        self._store = store
        self._signals = SignalStore(store)
        self._journal = CycleJournal(store)
        self._orders = OrderStore(store)
        self._pending = PendingStore(store)
        self._board = sup.ref("kill_switches")
        self._risk = sup.ref("risk_supervisor")
        self._manager = sup.ref("order_manager")
        self._reconciler = sup.ref("reconciler")

    def table(self) -> CommandTable:
        """Every command, registered."""
        table = CommandTable(default_timeout_s=30)
        self.register(table)
        return table

    def register(self, table: CommandTable) -> None:
        """The table: name, handler, help line and time limit of each command."""
        table.register("report", self.report, "The digest of a session as text (args: date).")
        table.register(
            "replay",
            self.replay_cmd,
            "Re-run a past session; show where it differs from live (args: date).",
            timeout_s=1800,
        )
        table.register("positions", self.positions, "Open positions per strategy and open orders.")
        table.register(
            "why-no-trade", self.why_no_trade, "Why signals were not traded (args: strategy)."
        )
        table.register("reconcile", self.reconcile, "Reconcile with the broker now; show the diff.")
        table.register("adopt", self.adopt, "Take the broker's state as truth (args: reason).")
        table.register(
            "flatten",
            self.flatten,
            "Sell all positions, or args target=STRATEGY|SYMBOL.",
            timeout_s=600,
        )
        table.register(
            "plan", self.plan, "Dry run of today's cycle: the orders it would place.", timeout_s=600
        )
        table.register("orders", self.orders_cmd, "Order intents (args: asof=DATE).")
        table.register("pending", self.pending_cmd, "Pending signals waiting for heat or cash.")
        table.register("ping", self.ping, "Answer pong with the daemon's version.")
        table.register(
            "status", self.status, "Actors, last and next cycle, kill switches, versions."
        )
        table.register(
            "run-cycle",
            self.run_cycle,
            "Run a cycle now (args: asof=DATE, wait=true, force=true, allow_entries=true).",
            timeout_s=3600,
        )
        table.register("halt", self.halt, "Trip the trading_halted kill switch (args: reason).")
        table.register("resume", self.resume, "Clear trading_halted, or args switch=NAME.")
        table.register("pause-entries", self.pause_entries, "Stop new entries; exits still run.")
        table.register("resume-entries", self.resume_entries, "Allow new entries again.")
        table.register(
            "disable", self.disable, "Disable a strategy from the next cycle (args: strategy)."
        )
        table.register("enable", self.enable, "Enable a strategy again (args: strategy).")
        table.register("reload", self.reload, "Reload the configuration (as SIGHUP does).")
        table.register(
            "funnel", self.funnel, "Signal funnel of a run (args: run; default the last)."
        )
        table.register(
            "signals", self.signals_cmd, "Signals of a run (args: run; default the last)."
        )
        table.register(  # [backup]
            "backup",
            backup_command(self._store, lambda: self._d.settings, self._d.clock),
            "Back up the state database now; the file and its size.",
            timeout_s=600,
        )

    async def ping(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "version": __version__}

    async def status(self, _args: dict[str, Any]) -> dict[str, Any]:
        names = list(STRATEGY_CLASSES)
        answers = await asyncio.gather(
            *(_ask_or_error(self._sup, f"strategy.{n}") for n in names),
            _ask_or_error(self._sup, "risk_supervisor"),
            _ask_or_error(self._sup, "kill_switches"),
            _ask_or_error(self._sup, "data_feed"),
            _ask_or_error(self._sup, "notifier"),
        )
        strategies = dict(zip(names, answers[: len(names)], strict=True))
        cycle, kill_switches, data, notifications = answers[len(names) :]
        next_run = self._d.scheduler.next_run() if self._d.scheduler else None
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self._d.started_monotonic, 1),
            "now": self._d.clock.now().isoformat(),
            "next_cycle": next_run.isoformat() if next_run else None,
            "cycle": cycle,
            "kill_switches": kill_switches,
            "data": data,
            "notifications": notifications,
            "strategies": strategies,
            "actors": self._sup.status(),
            "metrics_port": self._d.metrics_port,
            "broker": self._d.settings.broker.kind,
            "provider": self._d.settings.data.provider,
            "broker_stops": self._d.settings.orders.broker_stops,
            "positions": await self._positions_with_stops(),
            "account": await self._account_view(),
            "open_orders": self._open_orders(await self._orders.open_intents()),
        }

    async def _account_view(self) -> dict[str, Any]:
        """Equity, the day's P&L against the last close, the drawdown from the peak, and each
        position marked to market, as the broker shows them now (an error when it cannot)."""
        broker = self._d.broker
        if broker is None:
            return {"error": "no broker"}
        try:
            with anyio.fail_after(10):
                account = await broker.account()
                held = await broker.positions()
        except (TradingdError, TimeoutError) as exc:
            return {"error": f"broker not read: {exc!r}"}
        peak = await EquityCloses(self._store).peak()
        high = max(peak or account.equity, account.equity)
        marks = []
        for p in held:
            mark = p.market_value / p.qty if p.market_value is not None and p.qty else None
            marks.append(
                {
                    "symbol": p.symbol,
                    "qty": p.qty,
                    "avg_price": round(p.avg_entry_price, 2),
                    "mark": None if mark is None else round(mark, 2),
                    "market_value": None if p.market_value is None else round(p.market_value, 2),
                    "unrealized_pnl": (
                        None if mark is None else round((mark - p.avg_entry_price) * p.qty, 2)
                    ),
                }
            )
        day = account.equity - account.last_equity
        return {
            "equity": round(account.equity, 2),
            "cash": round(account.cash, 2),
            "last_close_equity": round(account.last_equity, 2),
            "day_pnl": round(day, 2),
            "day_pnl_pct": round(day / account.last_equity, 4) if account.last_equity else None,
            "peak_equity": round(high, 2),
            "drawdown_from_peak": round(account.equity / high - 1.0, 4) if high else None,
            "positions": marks,
        }

    @staticmethod
    def _open_orders(rows: list[Any]) -> dict[str, Any]:
        """Our open orders (not the resting stops, which each position lists)."""
        working = [
            {
                "intent_id": r.intent_id,
                "strategy": r.strategy,
                "symbol": r.symbol,
                "side": r.side,
                "qty": r.target_qty,
                "filled": r.filled_qty,
                "status": str(r.status),
            }
            for r in rows
            if not r.resting
        ]
        return {"count": len(working), "orders": working}

    async def _positions_with_stops(self) -> list[dict[str, Any]]:
        """Each open position with its book stop and the stop resting at the broker (or None)."""
        resting = {
            (r.strategy, r.symbol): {
                "qty": r.remaining_qty,
                "stop_price": r.stop_price,
                "status": str(r.status),
                "intent_id": r.intent_id,
            }
            for r in await self._orders.resting_stops()
        }
        return [
            {
                "strategy": r["strategy"],
                "symbol": r["symbol"],
                "shares": r["shares"],
                "stop_price": r["stop_price"],
                "resting_stop": resting.get((r["strategy"], r["symbol"])),
            }
            for r in await self._orders.positions()
            if int(r["shares"] or 0) > 0
        ]

    async def run_cycle(self, args: dict[str, Any]) -> dict[str, Any]:
        day = _parse_date(args.get("asof")) or trading_date(self._d.clock.now(), self._calendar)
        if not self._calendar.is_session(day):
            raise CommandError(f"asof {day} is not a trading session", arg="asof")

        def flag(name: str) -> bool:
            value = args.get(name, False)
            if not isinstance(value, bool):
                raise CommandError(f"must be true or false, not {value!r}", arg=name)
            return value

        force, allow_entries = flag("force"), flag("allow_entries")
        if allow_entries and not force:
            raise CommandError(
                "needs force (--force): it only applies to a forced re-run",
                arg="allow_entries",
            )
        today = trading_date(self._d.clock.now(), self._calendar)
        if day != today and not force:
            # Another date's signals at today's prices stack risk (the client checks too;
            # this is the daemon's own word on it, for every client).
            raise CommandError(
                f"asof {day} is not the current trading date {today}: no orders placed;"
                " --force runs it anyway",
                arg="asof",
            )
        run_id = default_run_id(day, CycleTrigger.OPERATOR, self._d.clock.now())
        start = StartCycle(run_id, day, CycleTrigger.OPERATOR, force, allow_entries)
        try:
            await self._risk.ask(start)
        except Refusal as exc:  # a cycle is running, or the date is done
            raise CommandError(str(exc)) from exc
        if args.get("wait"):
            done: CycleCompleted = await self._risk.ask(WaitCycle(run_id), timeout=3600)
            return _cycle_dict(done)
        return {"run_id": run_id, "asof": str(day), "status": "started"}

    async def trip(self, switch: str, reason: str) -> dict[str, Any]:
        changed = await self._board.ask(TripKillSwitch(switch, reason, "operator"))
        return {"switch": switch, "active": True, "changed": bool(changed)}

    async def clear(self, switch: str, reason: str) -> dict[str, Any]:
        try:
            changed = await self._board.ask(ClearKillSwitch(switch, reason, "operator"))
        except Refusal as exc:  # a switch set by configuration
            raise CommandError(str(exc)) from exc
        return {"switch": switch, "active": False, "changed": bool(changed)}

    async def halt(self, args: dict[str, Any]) -> dict[str, Any]:
        reason = str(args.get("reason") or "").strip()
        if not reason:
            raise CommandError("halt needs a reason", arg="reason")
        return await self.trip(kill_switches.HALT, reason)

    async def resume(self, args: dict[str, Any]) -> dict[str, Any]:
        """Clear ``switch`` (default: trading_halted); the reply names every switch still active."""
        from actors.messages import GetKillSwitches

        switch = str(args.get("switch") or kill_switches.HALT)
        result = await self.clear(switch, str(args.get("reason") or "operator resume"))
        active: list[Any] = await self._board.ask(GetKillSwitches())
        result["still_active"] = [view.name for view in active]
        return result

    async def pause_entries(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.trip(
            kill_switches.ENTRIES_PAUSED, str(args.get("reason") or "operator pause")
        )

    async def resume_entries(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.clear(kill_switches.ENTRIES_PAUSED, str(args.get("reason") or "operator"))

    def strategy_arg(self, args: dict[str, Any]) -> str:
        name = str(args.get("strategy") or "")
        if name not in STRATEGY_CLASSES:
            known = ", ".join(STRATEGY_CLASSES)
            raise CommandError(f"unknown strategy {name!r}; known: {known}", arg="strategy")
        return name

    async def disable(self, args: dict[str, Any]) -> dict[str, Any]:
        name = self.strategy_arg(args)
        return await self.trip(
            kill_switches.strategy_switch(name), str(args.get("reason") or "operator")
        )

    async def enable(self, args: dict[str, Any]) -> dict[str, Any]:
        name = self.strategy_arg(args)
        return await self.clear(
            kill_switches.strategy_switch(name), str(args.get("reason") or "operator")
        )

    async def reload(self, _args: dict[str, Any]) -> dict[str, Any]:
        return await self._d.reload()

    async def funnel(self, args: dict[str, Any]) -> dict[str, Any]:
        run_id = args.get("run") or args.get("run_id")
        if not run_id:
            last = await self._journal.last()
            if last is None:
                return {"run_id": None, "funnel": []}
            run_id = last.run_id
        rows = await self._signals.funnel(str(run_id))
        return {"run_id": run_id, "funnel": [r.as_dict() for r in rows]}

    async def signals_cmd(self, args: dict[str, Any]) -> dict[str, Any]:
        run_id = args.get("run") or args.get("run_id")
        if not run_id:
            last = await self._journal.last()
            run_id = last.run_id if last else None
        rows = await self._signals.signals_for_run(str(run_id)) if run_id else []
        keep = (
            "strategy",
            "symbol",
            "signal_type",
            "confidence",
            "shares",
            "price",
            "reasoning",
        )
        return {"run_id": run_id, "signals": [{k: r[k] for k in keep} for r in rows]}

    async def positions(self, _args: dict[str, Any]) -> dict[str, Any]:
        rows = await self._orders.positions()
        keep = ("strategy", "symbol", "shares", "avg_price", "stop_price", "entry_date")
        open_orders = self._open_orders(await self._orders.open_intents())["orders"]
        stops = {(p["strategy"], p["symbol"]): p for p in await self._positions_with_stops()}
        return {
            "positions": [
                {
                    **{k: r.get(k) for k in keep},
                    "resting_stop": stops.get((r["strategy"], r["symbol"]), {}).get("resting_stop"),
                }
                for r in rows
            ],
            "open_orders": open_orders,
        }

    async def why_no_trade(self, args: dict[str, Any]) -> dict[str, Any]:
        """The last cycle: its rejections, what blocked its entries, each strategy's signals."""
        strategy = args.get("strategy") or None
        if strategy is not None:
            strategy = self.strategy_arg(args)
        rows = await self._signals.why_no_trade(strategy)
        counts: dict[str, int] = {}
        for row in rows:
            key = f"{row['stage']}:{row['reason']}"
            counts[key] = counts.get(key, 0) + 1
        answer: dict[str, Any] = {"strategy": strategy, "reasons": counts, "rejections": rows}
        last = await self._journal.last()
        if last is None:
            return {**answer, "cycle": None, "blocked_by": [], "strategies": {}}
        funnel = {f.strategy: f for f in await self._signals.funnel(last.run_id)}
        strategies: dict[str, dict[str, Any]] = {}
        for name in STRATEGY_CLASSES:
            if strategy not in (None, name):
                continue
            f = funnel.get(name)
            mine: dict[str, int] = {}
            for row in rows:
                if row["strategy"] == name:
                    key = f"{row['stage']}:{row['reason']}"
                    mine[key] = mine.get(key, 0) + 1
            if f is None:
                summary = "did not run in this cycle (disabled, or the cycle ended before it)"
            elif f.raw == 0:
                summary = "no signals"
            else:
                summary = f"{f.raw} signal{'s' if f.raw != 1 else ''}, {f.executed} executed"
                if mine:
                    summary += ": " + ", ".join(f"{k} x{n}" for k, n in mine.items())
            strategies[name] = {
                "raw": None if f is None else f.raw,
                "executed": None if f is None else f.executed,
                "reasons": mine,
                "summary": summary,
            }
        cycle = {"run_id": last.run_id, "asof": str(last.asof), "status": last.status}
        return {
            **answer,
            "cycle": {**cycle, "reason": last.reason},
            "blocked_by": await self._why_blocked(last.started_at, rows, strategy),
            "strategies": strategies,
        }

    async def _why_blocked(
        self, started_at: dt.datetime, rows: list[dict[str, Any]], strategy: str | None
    ) -> list[dict[str, str]]:
        """The switches and breakers that blocked a cycle's entries (why-no-trade's part).

        Those its kill-switch rejections name, then those active when it started (the
        audit trail; switches set by the configuration from the board).
        """
        from actors.messages import GetKillSwitches

        active: dict[str, str] = {}
        events = await self._store.fetchall(
            "SELECT name, active, reason, at FROM kill_switch_events ORDER BY id"
        )
        for event in events:
            if dt.datetime.fromisoformat(event["at"]) > started_at:
                continue
            if event["active"]:
                active[event["name"]] = event["reason"]
            else:
                active.pop(event["name"], None)
        for name in kill_switches.SELF_CLEARING:  # it blocked only if the rejections say so
            active.pop(name, None)
        views: list[Any] = await self._board.ask(GetKillSwitches())
        for view in views:
            if view.source == "config":
                active.setdefault(view.name, view.reason)
        reasons = {
            kill_switches.DAILY_LOSS_LIMIT: "the day's loss is beyond risk.daily_loss_limit",
            kill_switches.DAY_ALREADY_TRADED: "a forced re-run of a completed trading date",
            **active,
        }
        named = [
            str(name)
            for row in rows
            if row["stage"] == "KILL_SWITCH"
            for name in (row["details"] or {}).get("switches", [])
        ]
        own = None if strategy is None else kill_switches.strategy_switch(strategy)
        blocked = [
            name
            for name in dict.fromkeys([*named, *sorted(active)])
            if own is None or not name.startswith(kill_switches.STRATEGY_PREFIX) or name == own
        ]
        return [{"switch": name, "reason": reasons.get(name, "")} for name in blocked]

    async def reconcile(self, _args: dict[str, Any]) -> dict[str, Any]:
        report: ReconciliationReport = await self._reconciler.ask(Reconcile(None, "RECONCILIATION"))
        return _report_dict(report)

    async def adopt(self, args: dict[str, Any]) -> dict[str, Any]:
        reason = str(args.get("reason") or "").strip()
        if not reason:
            raise CommandError("adopt needs a reason (it is logged)", arg="reason")
        report: ReconciliationReport = await self._reconciler.ask(AdoptBrokerState(reason))
        return _report_dict(report)

    async def flatten(self, args: dict[str, Any]) -> dict[str, Any]:
        target = str(args.get("target") or "").strip() or None
        day = trading_date(self._d.clock.now(), self._calendar)
        run_id = default_run_id(day, CycleTrigger.OPERATOR, self._d.clock.now())
        try:
            result: OrderResults = await self._manager.ask(
                Flatten(run_id, day, target), timeout=600
            )
        except Refusal as exc:
            raise CommandError(str(exc), arg="target") from exc
        return {"orders": [_result_dict(r) for r in result.results]}

    async def plan(self, args: dict[str, Any]) -> dict[str, Any]:
        day = _parse_date(args.get("asof")) or trading_date(self._d.clock.now(), self._calendar)
        run_id = default_run_id(day, CycleTrigger.OPERATOR, self._d.clock.now())
        result: dict[str, Any] = await self._risk.ask(PlanCycle(run_id, day), timeout=600)
        return result

    async def orders_cmd(self, args: dict[str, Any]) -> dict[str, Any]:
        asof = _parse_date(args.get("asof"))
        rows = await self._orders.intents_for(asof=asof)
        return {
            "orders": [
                {
                    "intent_id": r.intent_id,
                    "strategy": r.strategy,
                    "symbol": r.symbol,
                    "side": r.side,
                    "qty": r.target_qty,
                    "filled": r.filled_qty,
                    "status": r.status,
                    "stop_price": r.stop_price,  # set: a protective stop resting at the broker
                    "error": r.error_message,
                }
                for r in rows
            ]
        }

    async def pending_cmd(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"pending": await self._pending.all()}

    async def report(self, args: dict[str, Any]) -> dict[str, Any]:
        day = _parse_date(args.get("date") or args.get("asof"))
        try:
            record = await find_cycle(self._store, asof=day)
        except Refusal as exc:
            raise CommandError(str(exc), arg="date") from exc
        message = render_digest(await digest_data(self._store, record, chart=False))
        return {"run_id": record.run_id, "subject": message.subject, "text": message.text}

    async def replay_cmd(self, args: dict[str, Any]) -> dict[str, Any]:
        day = _parse_date(args.get("date") or args.get("asof"))
        if day is None:
            raise CommandError("replay needs a date (YYYY-MM-DD)", arg="date")
        try:
            result: dict[str, Any] = await replay(self._d.settings, day)
        except Refusal as exc:
            raise CommandError(str(exc), arg="date") from exc
        return result


async def _ask_or_error(sup: Supervisor, name: str) -> Any:
    """An actor's part of ``status``, without waiting behind a long handler.

    An actor busy with a message (fetching data, fitting a model) is reported
    as busy from the supervisor's own bookkeeping instead of being asked: its
    mailbox would make ``status`` wait for the whole handler.
    """
    cell = sup.cell(name)
    if cell.current_message is not None:
        return {"busy_with": cell.current_message}
    try:
        return await sup.ref(name).ask(GetStatus(), timeout=2.0)
    except Exception as exc:  # status must answer even when one actor cannot
        return {"error": f"{type(exc).__name__}: {exc}"}


def _parse_date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise CommandError(f"asof {value!r} is not a date (YYYY-MM-DD)", arg="asof") from None


def _report_dict(report: ReconciliationReport) -> dict[str, Any]:
    return {
        "passed": report.passed,
        "at": report.at.isoformat(),
        "error": report.error,
        "local_cash": round(report.local_cash, 2),
        "broker_cash": round(report.broker_cash, 2),
        "broker_equity": round(report.broker_equity, 2),
        "discrepancies": [
            {"kind": x.kind, "symbol": x.symbol, "local": x.local, "broker": x.broker}
            for x in report.discrepancies
        ],
        "pending_corporate_actions": list(report.pending_corporate_actions),
        "manual_trades": list(report.manual_trades),
    }


def _result_dict(r: Any) -> dict[str, Any]:
    return {
        "intent_id": r.intent_id,
        "strategy": r.strategy,
        "symbol": r.symbol,
        "side": r.side,
        "qty": r.qty,
        "status": str(r.status),
        "filled": r.filled_qty,
        "error": r.error,
        "existing": r.existing,
    }


def _cycle_dict(done: CycleCompleted) -> dict[str, Any]:
    return {
        "run_id": done.run_id,
        "asof": str(done.asof),
        "status": str(done.status),
        "reason": done.reason,
        "raw_signals": done.raw_signals,
        "seconds": round(done.duration_s, 3),
    }


__all__ = ["Daemon", "FatalError"]
