"""Strategies, signals, the signal funnel and positions as strategies see them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from actors.messages import HeldPosition, Signal
from daemon.store.core import Store

FUNNEL_STAGES = ("raw", "after_regime", "after_correlation", "after_risk", "executed")


@dataclass(frozen=True, slots=True)
class FunnelRow:
    run_id: str
    asof: str | None
    strategy: str
    raw: int
    after_regime: int
    after_correlation: int
    after_risk: int
    executed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "asof": self.asof,
            "strategy": self.strategy,
            "raw": self.raw,
            "after_regime": self.after_regime,
            "after_correlation": self.after_correlation,
            "after_risk": self.after_risk,
            "executed": self.executed,
        }


@dataclass(frozen=True, slots=True)
class StrategyRejection:
    """Why a strategy's signal went no further: the stage that refused it and its reason."""

    strategy_id: int | None
    symbol: str
    stage: str
    reason_code: str
    details: dict[str, Any]
    signal_id: int | None = None


class SignalStore:
    """Reads and writes ``strategies``, ``signals``, ``signal_funnel``, ``signal_rejections``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def ensure_strategy(self, name: str, description: str, capital: float) -> int:
        """The id of strategy ``name``, created on first use (capital kept up to date)."""
        async with self._store.transaction() as conn:
            await conn.execute(
                "INSERT INTO strategies (name, description, capital_allocation, initial_capital)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET capital_allocation = excluded.capital_allocation",
                (name, description, capital, capital),
            )
            async with conn.execute("SELECT id FROM strategies WHERE name = ?", (name,)) as cur:
                row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def record_signals(
        self, run_id: str, asof: dt.date, signals: Sequence[tuple[int, Signal]]
    ) -> list[int]:
        """Persist a cycle's raw ``(strategy_id, signal)`` rows in one transaction; their ids
        in order."""
        if not signals:
            return []
        async with self._store.transaction() as conn:
            async with conn.execute("SELECT COALESCE(MAX(id), 0) FROM signals") as cur:
                row = await cur.fetchone()
            before = int(row[0]) if row is not None else 0
            await conn.executemany(
                "INSERT INTO signals (run_id, strategy_id, symbol, signal_type, confidence,"
                " price, atr, shares, reasoning, asof_date) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        run_id,
                        strategy_id,
                        sig.symbol,
                        str(sig.action),
                        sig.confidence,
                        sig.price,
                        sig.atr,
                        sig.shares,
                        sig.reasoning,
                        asof.isoformat(),
                    )
                    for strategy_id, sig in signals
                ],
            )
            # AUTOINCREMENT ids only grow, and this transaction is the only writer.
            async with conn.execute(
                "SELECT id FROM signals WHERE id > ? ORDER BY id", (before,)
            ) as cur:
                ids = [int(r[0]) for r in await cur.fetchall()]
        if len(ids) != len(signals):
            raise RuntimeError(f"recorded {len(signals)} signals but found {len(ids)} new ids")
        return ids

    async def set_terminal(self, states: list[tuple[int, str, str]], at: dt.datetime) -> None:
        """Give signals their terminal state: ``(signal_id, state, reason)`` rows."""
        if not states:
            return
        await self._store.executemany(
            "UPDATE signals SET terminal_state = ?, terminal_reason = ?, terminal_at = ?"
            " WHERE id = ?",
            [(state, reason, at.isoformat(), sid) for sid, state, reason in states],
        )

    async def why_no_trade(self, strategy: str | None, limit_runs: int = 1) -> list[dict[str, Any]]:
        """Rejections of the last run(s), optionally for one strategy (the reference's report)."""
        rows = await self._store.fetchall(
            "SELECT r.run_id, st.name AS strategy, r.symbol, r.stage, r.reason_code,"
            " r.details_json FROM signal_rejections r LEFT JOIN strategies st"
            " ON st.id = r.strategy_id WHERE r.run_id IN (SELECT run_id FROM cycles"
            " ORDER BY started_at DESC LIMIT ?) AND (? IS NULL OR st.name = ?) ORDER BY r.id",
            (limit_runs, strategy, strategy),
        )
        return [
            {
                "run_id": r["run_id"],
                "strategy": r["strategy"],
                "symbol": r["symbol"],
                "stage": r["stage"],
                "reason": r["reason_code"],
                "details": json.loads(r["details_json"] or "{}"),
            }
            for r in rows
        ]

    async def signals_for_run(self, run_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT s.*, st.name AS strategy FROM signals s JOIN strategies st"
            " ON st.id = s.strategy_id WHERE s.run_id = ? ORDER BY s.id",
            (run_id,),
        )
        return [dict(r) for r in rows]

    async def save_funnels(
        self, run_id: str, asof: dt.date, funnels: Sequence[tuple[int, str, dict[str, int]]]
    ) -> None:
        """Upsert the run's ``(strategy_id, strategy, counts)`` funnels in one transaction
        (stages in ``FUNNEL_STAGES``)."""
        rows = []
        for strategy_id, strategy, counts in funnels:
            unknown = set(counts) - set(FUNNEL_STAGES)
            if unknown:
                raise ValueError(f"unknown funnel stages: {sorted(unknown)}")
            values = [int(counts.get(stage, 0)) for stage in FUNNEL_STAGES]
            rows.append((run_id, asof.isoformat(), strategy_id, strategy, *values))
        if not rows:
            return
        await self._store.executemany(
            "INSERT INTO signal_funnel (run_id, asof_date, strategy_id, strategy_name,"
            " raw_signals_count, after_regime_count, after_correlation_count, after_risk_count,"
            " executed_count) VALUES (?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(run_id, strategy_id) DO UPDATE SET"
            " raw_signals_count = excluded.raw_signals_count,"
            " after_regime_count = excluded.after_regime_count,"
            " after_correlation_count = excluded.after_correlation_count,"
            " after_risk_count = excluded.after_risk_count,"
            " executed_count = excluded.executed_count",
            rows,
        )

    async def funnel(self, run_id: str) -> list[FunnelRow]:
        rows = await self._store.fetchall(
            "SELECT * FROM signal_funnel WHERE run_id = ? ORDER BY strategy_name", (run_id,)
        )
        return [
            FunnelRow(
                run_id=r["run_id"],
                asof=r["asof_date"],
                strategy=r["strategy_name"],
                raw=r["raw_signals_count"],
                after_regime=r["after_regime_count"],
                after_correlation=r["after_correlation_count"],
                after_risk=r["after_risk_count"],
                executed=r["executed_count"],
            )
            for r in rows
        ]

    async def funnel_totals(self) -> list[dict[str, Any]]:
        """Funnel counts summed over every run, per strategy (a backtest's report)."""
        rows = await self._store.fetchall(
            "SELECT strategy_name AS strategy, SUM(raw_signals_count) AS raw,"
            " SUM(after_regime_count) AS after_regime,"
            " SUM(after_correlation_count) AS after_correlation,"
            " SUM(after_risk_count) AS after_risk, SUM(executed_count) AS executed"
            " FROM signal_funnel GROUP BY strategy_name ORDER BY strategy_name"
        )
        return [dict(r) for r in rows]

    async def log_strategy_rejections(
        self, run_id: str, rejections: Iterable[StrategyRejection]
    ) -> None:
        """A run's rejections of strategies' signals, in order, in one transaction."""
        rows = [
            (
                run_id,
                r.signal_id,
                r.strategy_id,
                r.symbol,
                r.stage,
                r.reason_code,
                json.dumps(r.details),
            )
            for r in rejections
        ]
        if not rows:
            return
        await self._store.executemany(
            "INSERT INTO signal_rejections (run_id, signal_id, strategy_id, symbol, stage,"
            " reason_code, details_json) VALUES (?,?,?,?,?,?,?)",
            rows,
        )

    async def log_rejections(
        self, run_id: str, stage: str, rows: Iterable[tuple[str, str, dict[str, Any]]]
    ) -> None:
        """Many rejections not tied to a strategy (e.g. data validation drops)."""
        await self._store.executemany(
            "INSERT INTO signal_rejections (run_id, symbol, stage, reason_code, details_json)"
            " VALUES (?,?,?,?,?)",
            [(run_id, sym, stage, code, json.dumps(details)) for sym, code, details in rows],
        )

    async def rejections(self, run_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT r.symbol, r.stage, r.reason_code, r.details_json, st.name AS strategy"
            " FROM signal_rejections r LEFT JOIN strategies st ON st.id = r.strategy_id"
            " WHERE r.run_id = ? ORDER BY r.id",
            (run_id,),
        )
        return [
            {
                "strategy": r["strategy"],
                "symbol": r["symbol"],
                "stage": r["stage"],
                "reason": r["reason_code"],
                "details": json.loads(r["details_json"] or "{}"),
            }
            for r in rows
        ]

    async def open_positions(self) -> int:
        """How many (strategy, symbol) positions are open."""
        row = await self._store.fetchone("SELECT COUNT(*) FROM positions WHERE shares > 0")
        return int(row[0]) if row else 0

    async def stops(self) -> list[dict[str, Any]]:
        """Every open position with a catastrophe stop: strategy, symbol, shares, stop_price."""
        rows = await self._store.fetchall(
            "SELECT st.name AS strategy, p.symbol, p.shares, p.stop_price FROM positions p"
            " JOIN strategies st ON st.id = p.strategy_id"
            " WHERE p.shares > 0 AND p.stop_price IS NOT NULL ORDER BY st.name, p.symbol"
        )
        return [dict(r) for r in rows]

    async def held_positions(self, strategy_id: int) -> list[HeldPosition]:
        rows = await self._store.fetchall(
            "SELECT symbol, shares, avg_price, entry_date, atr_at_entry FROM positions"
            " WHERE strategy_id = ? AND shares > 0 ORDER BY symbol",
            (strategy_id,),
        )
        return [
            HeldPosition(
                symbol=r["symbol"],
                shares=int(r["shares"]),
                entry_date=dt.date.fromisoformat(r["entry_date"]),
                entry_price=float(r["avg_price"] or 0.0),
                atr_at_entry=float(r["atr_at_entry"] or 0.0),
            )
            for r in rows
            if r["entry_date"]
        ]
