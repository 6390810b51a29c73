"""Broker snapshots, the local view of positions and cash, and adopting the broker's state.

Local cash is not stored as a running balance: it is derived, so it cannot
drift from the trades that explain it::

    local_cash = system_state['cash_baseline'] + Σ trade cash deltas
    BUY  delta = -(notional + commission_cost)
    SELL delta = +(notional - commission_cost)

The baseline is the cash the account had before the first recorded trade. It
is set once (``set_cash_baseline``, by the reconciler on a fresh install) and
rewritten only when the operator adopts the broker's state (``adopt``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from actors.messages import Discrepancy
from daemon.store.core import Store

SNAPSHOT_KINDS = ("START", "RECONCILIATION", "END")
CASH_BASELINE_KEY = "cash_baseline"

#: Every trade's effect on cash, plus the credited cash of corporate actions (dividends,
#: cash in lieu of fractions).
_TRADE_CASH_DELTAS = (
    "SELECT TOTAL(CASE UPPER(action)"
    " WHEN 'BUY' THEN -(COALESCE(notional, 0) + COALESCE(commission_cost, 0))"
    " WHEN 'SELL' THEN COALESCE(notional, 0) - COALESCE(commission_cost, 0)"
    " ELSE 0 END)"
    " + (SELECT TOTAL(cash) FROM corporate_action_effects WHERE credited = 1) FROM trades"
)
_SET_STATE = (
    "INSERT INTO system_state (key, value, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)


@dataclass(frozen=True, slots=True)
class BrokerSnapshot:
    """One row of ``broker_state``: what the broker said, and whether we agreed."""

    id: int
    run_id: str | None
    kind: str
    cash: float | None
    equity: float | None
    positions: dict[str, int]
    discrepancies: tuple[Discrepancy, ...]
    passed: bool | None
    taken_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able view (for status and the control socket)."""
        return {
            "id": self.id,
            "run_id": self.run_id,
            "kind": self.kind,
            "cash": self.cash,
            "equity": self.equity,
            "positions": dict(self.positions),
            "discrepancies": [discrepancy_as_dict(d) for d in self.discrepancies],
            "passed": self.passed,
            "taken_at": self.taken_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One ``positions`` row changed by ``adopt``: shares before and after (0 = no row)."""

    strategy_id: int
    symbol: str
    before: int
    after: int


def discrepancy_as_dict(d: Discrepancy) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "symbol": d.symbol,
        "local": d.local,
        "broker": d.broker,
        "diff": d.diff,
    }


def baseline_for(target: float, deltas: float) -> float:
    """A baseline ``b`` with ``b + deltas == target`` in floating point, exactly.

    ``target - deltas`` is usually it; when rounding lands one step off, walk
    to the neighbouring float (a few steps at most for cash-sized amounts).
    """
    baseline = target - deltas
    for _ in range(64):
        total = baseline + deltas
        if total == target:
            break
        baseline = math.nextafter(baseline, math.inf if total < target else -math.inf)
    return baseline


class BrokerStateStore:
    """Reads and writes ``broker_state``, the cash baseline and, on adoption, ``positions``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # ------------------------------------------------------------ snapshots

    async def snapshot(
        self,
        run_id: str | None,
        kind: str,
        *,
        cash: float | None,
        equity: float | None,
        positions: Mapping[str, int],
        discrepancies: Sequence[Discrepancy],
        passed: bool | None,
        at: dt.datetime,
    ) -> int:
        """Record what the broker said at ``at``; returns the row id."""
        if kind not in SNAPSHOT_KINDS:
            raise ValueError(f"snapshot kind must be one of {SNAPSHOT_KINDS}, got {kind!r}")
        return await self._store.execute(
            "INSERT INTO broker_state (run_id, kind, cash, equity, positions_json,"
            " discrepancies_json, passed, taken_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                kind,
                cash,
                equity,
                json.dumps(dict(sorted(positions.items()))),
                json.dumps([discrepancy_as_dict(d) for d in discrepancies]),
                None if passed is None else int(passed),
                at.isoformat(),
            ),
        )

    async def latest(self, kind: str | None = None) -> BrokerSnapshot | None:
        """The newest snapshot, of ``kind`` if given."""
        if kind is None:
            row = await self._store.fetchone("SELECT * FROM broker_state ORDER BY id DESC LIMIT 1")
        else:
            row = await self._store.fetchone(
                "SELECT * FROM broker_state WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,)
            )
        return None if row is None else _snapshot(row)

    async def equity_curve(self) -> list[tuple[dt.date, float]]:
        """Equity at the END of each cycle, one point per session (the last cycle's)."""
        rows = await self._store.fetchall(
            "SELECT c.asof_date, b.equity FROM broker_state b JOIN cycles c"
            " ON c.run_id = b.run_id WHERE b.kind = 'END' AND b.equity IS NOT NULL"
            " ORDER BY b.id"
        )
        points = {dt.date.fromisoformat(r["asof_date"]): float(r["equity"]) for r in rows}
        return sorted(points.items())

    async def history(self, limit: int = 20) -> list[BrokerSnapshot]:
        """The newest ``limit`` snapshots, newest first."""
        rows = await self._store.fetchall(
            "SELECT * FROM broker_state ORDER BY id DESC LIMIT ?", (max(0, limit),)
        )
        return [_snapshot(r) for r in rows]

    # ------------------------------------------------------------ the local view

    async def local_positions(self) -> dict[str, int]:
        """Shares per symbol summed over every strategy (symbols netting to 0 left out)."""
        rows = await self._store.fetchall(
            "SELECT symbol, TOTAL(shares) AS shares FROM positions GROUP BY symbol ORDER BY symbol"
        )
        totals = {r["symbol"]: round(r["shares"]) for r in rows}
        return {symbol: shares for symbol, shares in totals.items() if shares != 0}

    async def our_broker_order_ids(self) -> set[str]:
        """The broker's ids of every order we sent (to tell our fills from manual ones)."""
        rows = await self._store.fetchall(
            "SELECT broker_order_id FROM order_intents WHERE broker_order_id IS NOT NULL"
        )
        return {str(r[0]) for r in rows}

    async def cash_baseline(self) -> float | None:
        """The cash before the first recorded trade, or None when never set."""
        row = await self._store.fetchone(
            "SELECT value FROM system_state WHERE key = ?", (CASH_BASELINE_KEY,)
        )
        if row is None:
            return None
        value = json.loads(row["value"])
        return None if value is None else float(value)

    async def trade_cash_deltas(self) -> float:
        """Σ of every trade's effect on cash (buys negative, sells positive, net of commission),
        plus the cash corporate actions credited."""
        row = await self._store.fetchone(_TRADE_CASH_DELTAS)
        return float(row[0]) if row else 0.0

    async def local_cash(self) -> float:
        """Baseline + Σ trade cash deltas; a baseline never set counts as 0."""
        return await self.local_cash_from(await self.cash_baseline())

    async def local_cash_from(self, baseline: float | None) -> float:
        """``local_cash`` with the baseline ``baseline`` (as ``cash_baseline`` read it)."""
        return (baseline or 0.0) + await self.trade_cash_deltas()

    async def set_cash_baseline(self, value: float, at: dt.datetime) -> None:
        """Set the cash the account had before the first recorded trade (durable)."""
        if not math.isfinite(value):
            raise ValueError(f"cash baseline must be a finite amount, got {value!r}")
        await self._store.execute(
            _SET_STATE, (CASH_BASELINE_KEY, json.dumps(value), at.isoformat()), durable=True
        )

    # ------------------------------------------------------------ adoption

    async def adopt(
        self,
        broker_positions: Mapping[str, tuple[int, float]],
        broker_cash: float,
        at: dt.datetime,
        strategy_id_for_unowned: int,
    ) -> list[Adjustment]:
        """Make local positions and cash equal the broker's, in one durable transaction.

        ``broker_positions`` maps symbol to (quantity, average entry price). For
        each symbol whose local total differs: when we hold more, the strategies'
        rows are reduced, largest first (a row reduced to 0 is deleted); what is
        still missing (shares the broker has and no strategy does) goes to the
        ``strategy_id_for_unowned`` row, with ``entry_date`` = ``at``'s date, the
        broker's average price and no stop. Then the cash baseline is set so that
        ``local_cash()`` equals ``broker_cash`` exactly. Returns every row changed.
        """
        if not math.isfinite(broker_cash):
            raise ValueError(f"broker cash must be a finite amount, got {broker_cash!r}")
        stamp = at.isoformat()
        changes: list[Adjustment] = []
        async with self._store.transaction(durable=True) as conn:
            held: dict[str, list[tuple[int, int]]] = {}
            async with conn.execute(
                "SELECT strategy_id, symbol, shares FROM positions"
                " ORDER BY symbol, shares DESC, strategy_id"
            ) as cur:
                for row in await cur.fetchall():
                    held.setdefault(row["symbol"], []).append(
                        (int(row["strategy_id"]), round(row["shares"]))
                    )
            for symbol in sorted(set(held) | set(broker_positions)):
                qty, price = broker_positions.get(symbol, (0, 0.0))
                changes += await _adopt_symbol(
                    conn,
                    symbol,
                    rows=held.get(symbol, []),
                    target=qty,
                    price=price,
                    unowned_id=strategy_id_for_unowned,
                    at=at,
                )
            async with conn.execute(_TRADE_CASH_DELTAS) as cur:
                total = await cur.fetchone()
            deltas = float(total[0]) if total else 0.0
            await conn.execute(
                _SET_STATE,
                (CASH_BASELINE_KEY, json.dumps(baseline_for(broker_cash, deltas)), stamp),
            )
        return changes


async def _adopt_symbol(
    conn: aiosqlite.Connection,
    symbol: str,
    *,
    rows: list[tuple[int, int]],
    target: int,
    price: float,
    unowned_id: int,
    at: dt.datetime,
) -> list[Adjustment]:
    """Bring one symbol's rows (largest first) to ``target`` shares in total."""
    stamp = at.isoformat()
    changes: list[Adjustment] = []
    excess = sum(shares for _, shares in rows) - target
    for strategy_id, shares in rows:
        if excess <= 0:
            break
        if shares <= 0:
            continue
        cut = min(shares, excess)
        excess -= cut
        after = shares - cut
        if after == 0:
            await conn.execute(
                "DELETE FROM positions WHERE strategy_id = ? AND symbol = ?", (strategy_id, symbol)
            )
        else:
            await conn.execute(
                "UPDATE positions SET shares = ?, updated_at = ?"
                " WHERE strategy_id = ? AND symbol = ?",
                (after, stamp, strategy_id, symbol),
            )
        changes.append(Adjustment(strategy_id, symbol, shares, after))
    missing = -excess
    if missing == 0:
        return changes
    # What no strategy owns (or, for a short the broker reports, what remains) is the
    # unowned strategy's: merged into its row at a weighted average price.
    async with conn.execute(
        "SELECT shares, avg_price FROM positions WHERE strategy_id = ? AND symbol = ?",
        (unowned_id, symbol),
    ) as cur:
        existing = await cur.fetchone()
    before = round(existing["shares"]) if existing else 0
    after = before + missing
    if after == 0:
        await conn.execute(
            "DELETE FROM positions WHERE strategy_id = ? AND symbol = ?", (unowned_id, symbol)
        )
    elif existing is None:
        await conn.execute(
            "INSERT INTO positions (strategy_id, symbol, shares, avg_price, entry_date,"
            " stop_price, updated_at) VALUES (?, ?, ?, ?, ?, NULL, ?)",
            (unowned_id, symbol, after, price, at.date().isoformat(), stamp),
        )
    else:
        old_price = float(existing["avg_price"] or price)
        adding = before > 0 and missing > 0
        average = (before * old_price + missing * price) / after if adding else price
        await conn.execute(
            "UPDATE positions SET shares = ?, avg_price = ?, updated_at = ?"
            " WHERE strategy_id = ? AND symbol = ?",
            (after, average, stamp, unowned_id, symbol),
        )
    changes.append(Adjustment(unowned_id, symbol, before, after))
    return changes


def _snapshot(row: sqlite3.Row) -> BrokerSnapshot:
    raw = json.loads(row["discrepancies_json"] or "[]")
    return BrokerSnapshot(
        id=int(row["id"]),
        run_id=row["run_id"],
        kind=row["kind"],
        cash=row["cash"],
        equity=row["equity"],
        positions={str(k): int(v) for k, v in json.loads(row["positions_json"]).items()},
        discrepancies=tuple(
            Discrepancy(d["kind"], d["symbol"], float(d["local"]), float(d["broker"])) for d in raw
        ),
        passed=None if row["passed"] is None else bool(row["passed"]),
        taken_at=dt.datetime.fromisoformat(row["taken_at"]),
    )
