"""The daily digest's data, read from the store (for the notifier, ``report`` and ``tradectl``).

Everything comes from what the cycle persisted, so the digest of any past
session can be rebuilt: its funnel, rejections, trades, the portfolio facts
the cycle recorded (``cycle_details:<run_id>``), the reconciliation, and the
performance of the equity curve (broker equity at the end of every cycle)
with its chart (from the second point of the curve on: one point draws nothing).

Open orders are our open order intents, not the protective stops resting at
the broker (``stop_price IS NOT NULL``), which the positions table lists.

Positions are marked to market at the latest close known: the last close the cycle
saw (``cycle_details``' ``marks``) or the latest daily close in the ``bars`` table
(the data feed's cache) on or before the cycle's session: not the broker
snapshots, which carry equity, cash and share counts but no prices, and never
``positions.current_price``, which nothing updates. Unrealised P&L is
``(close - avg_price) x shares``; a symbol with no cached close (the synthetic
and csv providers are never cached) has no mark and shows "—".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import anyio
import pandas as pd

from actors.notifier.digest import DigestData
from actors.reports import numbers
from actors.reports.charts import equity_chart_png
from actors.reports.performance import FillRecord, closed_trades_from_fills, summarize
from actors.store.broker_state import BrokerSnapshot, BrokerStateStore
from actors.store.cycles import CycleJournal, CycleRecord
from actors.store.orders import IntentRow, OrderStore
from actors.store.signals import SignalStore
from actors.store.state import KillSwitchStore, SystemState
from daemon.errors import Refusal
from daemon.store import Store


async def find_cycle(
    store: Store, *, run_id: str | None = None, asof: dt.date | None = None
) -> CycleRecord:
    """The cycle a digest is about: by run id, the last of a session, or the last one."""
    journal = CycleJournal(store)
    record: CycleRecord | None
    if run_id is not None:
        record = await journal.get(run_id)
    elif asof is not None:
        done = [r for r in await journal.for_asof(asof) if r.status != "running"]
        record = done[-1] if done else None
    else:
        record = await journal.last()
    if record is None:
        what = run_id or (asof.isoformat() if asof else "any session")
        raise Refusal(f"no cycle recorded for {what}")
    return record


PERFORMANCE_KEYS = (
    "total_return",
    "annualized_return",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "calmar_ratio",
    "win_rate",
    "profit_factor",
    "average_win",
    "average_loss",
    "average_holding_sessions",
    "trade_count",
)


async def digest_data(store: Store, record: CycleRecord, *, chart: bool = True) -> DigestData:
    """Everything the digest shows for ``record``'s cycle."""
    signals = SignalStore(store)
    orders = OrderStore(store)
    details: dict[str, Any] = await SystemState(store).get(f"cycle_details:{record.run_id}", {})
    funnel = [row.as_dict() for row in await signals.funnel(record.run_id)]
    why = await signals.rejections(record.run_id)
    resting_ids = {r.intent_id for r in await orders.resting_stops()}
    stop_fills = details.get("resting_stop_fills", [])
    trades = [
        _trade_row(t)
        for t in await orders.trades_for(record.run_id)
        if t["intent_id"] not in resting_ids and not _is_stop_fill(t, stop_fills)
    ] + [_stop_fill_row(f) for f in stop_fills]
    resting = {
        (r.strategy, r.symbol): (
            f"{numbers.quantity(r.remaining_qty)} @ {numbers.money(r.stop_price)} ({r.status})"
        )
        for r in await orders.resting_stops()
        if r.stop_price is not None
    }
    positions = [p for p in await orders.positions() if float(p["shares"] or 0) > 0]
    marks = await latest_closes(store, [str(p["symbol"]) for p in positions], record.asof)
    # The cycle's own last closes (every provider has them; the cache only some), unless
    # the cache knows a later one (a digest rebuilt after the session's close).
    for symbol, (session, close) in (details.get("marks") or {}).items():
        seen = (dt.date.fromisoformat(str(session)), float(close))
        cached = marks.get(str(symbol))
        if cached is None or cached[0] < seen[0]:
            marks[str(symbol)] = seen
    open_orders = [_open_order_row(r) for r in await orders.open_intents() if not r.resting]
    switches = [
        {"switch": s.name, "reason": s.reason, "since": s.since.isoformat()}
        for s in await KillSwitchStore(store).active()
    ]
    states = BrokerStateStore(store)
    recon = await states.latest("RECONCILIATION")
    curve = [(d, e) for d, e in await states.equity_curve() if d <= record.asof]
    all_fills = await orders.fills()
    equity = pd.Series(
        [e for _, e in curve], index=pd.to_datetime([d for d, _ in curve]), dtype=float
    )
    performance, png = await anyio.to_thread.run_sync(_performance, equity, all_fills, chart)
    return DigestData(
        run_id=record.run_id,
        asof=record.asof,
        status=record.status,
        reason=record.reason or "",
        funnel=funnel,
        why_no_trade=why,
        trades=trades,
        positions=[_position_row(p, resting, marks.get(str(p["symbol"]))) for p in positions],
        open_orders=open_orders,
        portfolio_value=details.get("portfolio_value"),
        daily_pnl=details.get("daily_pnl"),
        heat=details.get("heat"),
        heat_limit=details.get("heat_limit"),
        regime=details.get("regime"),
        kill_switches=switches,
        reconciliation=_reconciliation(recon),
        performance={k: performance.get(k) for k in PERFORMANCE_KEYS},
        equity_png=png,
        equity_points=len(curve),
    )


def _performance(
    equity: pd.Series, fills: list[dict[str, Any]], chart: bool
) -> tuple[dict[str, Any], bytes | None]:
    """Performance of the equity curve and its closed trades, and the chart (CPU work)."""
    closed = closed_trades_from_fills([FillRecord.from_mapping(r) for r in fills])
    perf = summarize(equity, closed).as_dict()
    drawn = chart and len(equity) >= 2
    png = equity_chart_png(equity, title="Equity (end of each cycle)") if drawn else None
    return perf, png


def _trade_row(t: dict[str, Any]) -> dict[str, Any]:
    """The digest's columns of one trade."""
    return {
        "strategy": t["strategy"],
        "symbol": t["symbol"],
        "action": t["action"],
        "shares": t["shares"],
        "exec_price": t["exec_price"],
        "slippage_cost": t["slippage_cost"],
        "commission_cost": t["commission_cost"],
        "total_cost": t["total_cost"],
    }


def _is_stop_fill(t: dict[str, Any], fills: list[dict[str, Any]]) -> bool:
    """Whether trade ``t`` is one of the resting stop fills listed apart."""
    return any(
        f["symbol"] == t["symbol"] and f.get("executed_at") == t["executed_at"] for f in fills
    )


def _stop_fill_row(f: dict[str, Any]) -> dict[str, Any]:
    """A fill of a stop resting at the broker, in the trades' columns (costs as booked)."""
    return {
        "strategy": f["strategy"],
        "symbol": f["symbol"],
        "action": f"SELL (stop {numbers.money(f['stop_price'])} at the broker)",
        "shares": f["shares"],
        "exec_price": f["exec_price"],
        "slippage_cost": None,
        "commission_cost": None,
        "total_cost": None,
    }


# Every provider's bars: the digest does not know which one is configured; on a date
# two providers both have, the first by name wins (so the mark is deterministic).
_LATEST_CLOSES = (
    "SELECT b.symbol, b.date, b.close FROM bars b JOIN (SELECT symbol, MAX(date) AS date"
    " FROM bars WHERE date <= ? AND symbol IN ({marks}) GROUP BY symbol) m"
    " ON m.symbol = b.symbol AND m.date = b.date ORDER BY b.symbol, b.provider"
)


async def latest_closes(
    store: Store, symbols: Sequence[str], asof: dt.date
) -> dict[str, tuple[dt.date, float]]:
    """(date, close) of each symbol's latest cached daily bar on or before ``asof``."""
    wanted = list(dict.fromkeys(symbols))
    out: dict[str, tuple[dt.date, float]] = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        sql = _LATEST_CLOSES.format(marks=",".join("?" * len(chunk)))
        for row in await store.fetchall(sql, (asof.isoformat(), *chunk)):
            out.setdefault(str(row[0]), (dt.date.fromisoformat(row[1]), float(row[2])))
    return out


def _open_order_row(r: IntentRow) -> dict[str, Any]:
    """The digest's columns of one of our open orders."""
    return {
        "strategy": r.strategy,
        "symbol": r.symbol,
        "side": r.side,
        "qty": r.target_qty,
        "filled": r.filled_qty,
        "status": str(r.status),
    }


def _position_row(
    p: dict[str, Any],
    resting: dict[tuple[str, str], str],
    mark: tuple[dt.date, float] | None,
) -> dict[str, Any]:
    """The digest's columns of one open position (``resting``: its stop at the broker;
    ``mark``: the date and price of the latest close, None when no close is known)."""
    shares, avg = p["shares"], p["avg_price"]
    pnl = None if mark is None or avg is None else (mark[1] - float(avg)) * float(shares)
    return {
        "strategy": p["strategy"],
        "symbol": p["symbol"],
        "shares": shares,
        "avg_price": avg,
        "last_price": None if mark is None else mark[1],
        "last_date": None if mark is None else mark[0].isoformat(),
        "unrealized_pnl": pnl,
        "stop_price": p["stop_price"],
        "resting_stop": resting.get((p["strategy"], p["symbol"])),
    }


def _reconciliation(recon: BrokerSnapshot | None) -> dict[str, Any]:
    """The latest reconciliation's verdict and discrepancies (None and [] when there is none)."""
    return {
        "passed": recon.passed if recon else None,
        "discrepancies": [
            {"kind": x.kind, "symbol": x.symbol, "local": x.local, "broker": x.broker}
            for x in recon.discrepancies
        ]
        if recon
        else [],
    }
