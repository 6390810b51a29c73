"""Corporate actions in a backtest, point in time, on the synthetic market (issue 13).

A backtest's graph (``simulated_graph`` over a ``PrecomputedMarket``, one cycle a
session, each session's close recorded) on the embedded default's universe. A first
run without actions finds a symbol held over a few sessions; the same run again
with one action on that symbol in the middle of the holding: a 2:1 split, a 3:2
split, a 1:10 reverse split, a special dividend above the 1 % cash tolerance, a
rename. The market serves bars adjusted as of its last session and reports the
action, as a provider does; the backtest must model it as it happened: the broker
applies it on the ex date, the book follows in the same cycle. What the operator
sees for each: every cycle completed, no switch latched, every reconciliation
passed, no sell of the symbol on a false stop, the same quantities, stops and cash
on both sides, and the resting stop at the broker following the position.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from actors.data_feed.market import PrecomputedMarket
from actors.data_feed.universe import load_universe
from actors.market.calendar import ExchangeCalendar
from actors.market.corporate_actions import ActionKind, CorporateAction
from actors.messages import CycleStatus
from actors.store.broker_state import BrokerStateStore
from actors.store.equity import EquityCloses
from actors.system.backtest import apply_overrides, run_backtest
from actors.system.config import Settings
from actors.system.graph import simulated_graph
from daemon.clock import SimClock
from daemon.store import Store
from tests.fakes.acting_market import ActingMarket

CAL = ExchangeCalendar("XNYS", start=dt.date(2024, 1, 1), end=dt.date(2026, 12, 31)).load()
FIRST, LAST = dt.date(2025, 9, 2), dt.date(2025, 10, 31)
#: The action comes this many sessions into a holding that lasts at least HOLD sessions.
INTO, HOLD = 2, 6


@dataclass(frozen=True)
class Backtest:
    statuses: list[CycleStatus]
    reasons: dict[dt.date, str]
    held: dict[
        dt.date, dict[str, tuple[int, float]]
    ]  # after each session: symbol -> (shares, stop)
    broker: dict[str, int]
    resting: dict[str, tuple[int, float]]
    latched: list[str]
    reconciled: list[bool]
    sells: list[tuple[str, dt.date]]
    cash: tuple[float, float]  # local, broker


def _settings() -> Settings:
    return Settings.model_validate({"data": {"synthetic": {"corporate_actions_per_year": 0.0}}})


async def _backtest(tmp_path: Path, actions: Sequence[CorporateAction]) -> Backtest:
    settings = _settings()
    universe = load_universe(settings.data.universe).symbols
    sessions = CAL.sessions_between(FIRST, LAST)
    first = CAL.sessions_back(CAL.previous_session(FIRST), settings.data.history_days)[0]
    market = await PrecomputedMarket.load(
        ActingMarket(actions), universe, first, LAST, validation=settings.data.validation
    )
    graph = await simulated_graph(
        settings,
        store=tmp_path / f"bt-{len(actions)}.db",
        scratch=True,
        calendar=CAL,
        clock=SimClock(CAL.session_open(FIRST) - dt.timedelta(hours=1)),
        provider=ActingMarket(actions),
        market=market,
    )
    statuses, reasons, held = [], {}, {}
    try:
        async with graph.running():
            for day in sessions:
                done = await graph.run_session(day, f"bt-{day:%Y%m%d}")
                statuses.append(done.status)
                reasons[day] = done.reason
                account = await graph.broker.account()
                await EquityCloses(graph.store).record(
                    day, account.equity, "session_close", graph.clock.now()
                )
                held[day] = await _held(graph.store)
            broker = {p.symbol: p.qty for p in await graph.broker.positions()}
            local_cash = await BrokerStateStore(graph.store).local_cash()
            broker_cash = (await graph.broker.account()).cash
            store = graph.store
            latched = [
                str(r[0])
                for r in await store.fetchall("SELECT name FROM kill_switches WHERE active = 1")
            ]
            reconciled = [
                bool(r[0])
                for r in await store.fetchall(
                    "SELECT passed FROM broker_state WHERE kind = 'RECONCILIATION'"
                )
            ]
            sells = [
                (str(r[0]), dt.date.fromisoformat(str(r[1])[:10]))
                for r in await store.fetchall(
                    "SELECT symbol, executed_at FROM trades WHERE action = 'SELL'"
                )
            ]
            resting = await _resting(store)
    finally:
        await graph.close()
    return Backtest(
        statuses, reasons, held, broker, resting, latched, reconciled, sells,
        (local_cash, broker_cash),
    )  # fmt: skip


async def _held(store: Store) -> dict[str, tuple[int, float]]:
    rows = await store.fetchall(
        "SELECT symbol, TOTAL(shares) AS shares, MAX(stop_price) AS stop FROM positions"
        " WHERE shares > 0 GROUP BY symbol"
    )
    return {str(r["symbol"]): (round(r["shares"]), float(r["stop"] or 0.0)) for r in rows}


async def _resting(store: Store) -> dict[str, tuple[int, float]]:
    rows = await store.fetchall(
        "SELECT symbol, qty, stop_price FROM sim_orders WHERE status = 'accepted'"
        " AND stop_price IS NOT NULL"
    )
    return {str(r[0]): (int(r[1]), float(r[2])) for r in rows}


@dataclass(frozen=True)
class Holding:
    symbol: str
    ex_date: dt.date
    shares: int
    stop: float


@pytest.fixture(scope="module")
def holding(tmp_path_factory: pytest.TempPathFactory) -> Holding:
    """A symbol one strategy alone holds for HOLD sessions, and the session INTO them
    (found once, by a run without actions; its own event loop, as a module fixture)."""
    probe = asyncio.run(_backtest(tmp_path_factory.mktemp("probe"), []))
    days = sorted(probe.held)
    for i, day in enumerate(days[: -HOLD - 1]):
        for symbol, (shares, stop) in sorted(probe.held[day].items()):
            span = days[i : i + HOLD]
            if all(probe.held[d].get(symbol, (0, 0.0))[0] == shares for d in span):
                ex = days[i + INTO]
                if shares >= 3 and not any(s == symbol for s, _ in probe.sells):
                    return Holding(symbol, ex, shares, stop)
    raise AssertionError("the probe run holds nothing long enough")


def _action(kind: str, h: Holding, cash: float = 0.0) -> CorporateAction:
    match kind:
        case "2:1":
            return CorporateAction(ActionKind.FORWARD_SPLIT, h.symbol, h.ex_date, "test", ratio=2.0)
        case "3:2":
            return CorporateAction(ActionKind.FORWARD_SPLIT, h.symbol, h.ex_date, "test", ratio=1.5)
        case "1:10":
            return CorporateAction(ActionKind.REVERSE_SPLIT, h.symbol, h.ex_date, "test", ratio=0.1)
        case "rename":
            return CorporateAction(
                ActionKind.RENAME, h.symbol, h.ex_date, "test", new_symbol=f"{h.symbol}.X"
            )
    return CorporateAction(
        ActionKind.CASH_DIVIDEND,
        h.symbol,
        h.ex_date,
        "test",
        cash_per_share=cash,
        pay_date=CAL.next_session(CAL.next_session(h.ex_date)),
    )


def _common(bt: Backtest) -> None:
    assert set(bt.statuses) == {CycleStatus.COMPLETED}
    assert bt.latched == []
    assert all(bt.reconciled)
    assert bt.cash[0] == pytest.approx(bt.cash[1], abs=0.01)


@pytest.mark.parametrize(("kind", "ratio"), [("2:1", 2.0), ("3:2", 1.5), ("1:10", 0.1)])
async def test_a_split_in_a_backtest_is_followed_on_both_sides(
    tmp_path: Path, holding: Holding, kind: str, ratio: float
) -> None:
    h = holding
    bt = await _backtest(tmp_path, [_action(kind, h)])
    _common(bt)
    expected = int(h.shares * ratio + 1e-9)
    shares, stop = bt.held[h.ex_date][h.symbol]
    assert shares == expected
    assert stop == pytest.approx(h.stop / ratio)
    assert not [s for s in bt.sells if s == (h.symbol, h.ex_date)]  # no false stop
    assert "no orders and no stop check" in bt.reasons[h.ex_date]
    if h.symbol in bt.broker:  # still held at the end: both sides, and its resting stop
        assert bt.broker[h.symbol] == bt.held[max(bt.held)][h.symbol][0]
        assert bt.resting[h.symbol][0] == bt.broker[h.symbol]


async def test_a_special_dividend_in_a_backtest_is_credited_on_both_sides(
    tmp_path: Path, holding: Holding
) -> None:
    h = holding
    probe_cash = 100_000.0
    per_share = round(0.02 * probe_cash / h.shares, 2)  # 2 % of the account: above 1 %
    bt = await _backtest(tmp_path, [_action("dividend", h, per_share)])
    _common(bt)
    pay = CAL.next_session(CAL.next_session(h.ex_date))
    assert "cash credited" in bt.reasons[pay]


async def test_a_rename_in_a_backtest_carries_the_position(
    tmp_path: Path, holding: Holding
) -> None:
    h = holding
    new = f"{h.symbol}.X"
    bt = await _backtest(tmp_path, [_action("rename", h)])
    _common(bt)
    assert bt.held[h.ex_date].get(new, (0, 0.0))[0] == h.shares
    assert h.symbol not in bt.held[h.ex_date]
    assert not [s for s in bt.sells if s[0] in (h.symbol, new) and s[1] == h.ex_date]
    if new in bt.broker:
        assert bt.broker[new] == bt.held[max(bt.held)][new][0]
        assert bt.resting[new][0] == bt.broker[new]  # its stop rests on the new symbol


def test_no_entry_in_a_symbol_renamed_away(tmp_path: Path) -> None:
    """The synthetic market renames S00403 to S00403.X on 2019-09-26 and, as a feed that
    maps symbols does, goes on serving the company under the old ticker. Its momentum
    entry of 2019-09-27 went out in the old symbol; the simulated broker moved the buy to
    the new one behind the book's back, and from then every reconciliation failed and
    the switch latched. Now the old ticker gets no orders from the ex date on, and each
    cycle says why."""
    out = tmp_path / "out"
    settings = apply_overrides(
        Settings(), universe="S00403", strategies="momentum,ma_crossover,rsi_mean_reversion"
    )
    ex = dt.date(2019, 9, 26)
    anyio.run(
        lambda: run_backtest(
            settings, start=dt.date(2019, 6, 3), end=dt.date(2019, 11, 29), out=out
        )
    )
    db = sqlite3.connect(out / "backtest.db")
    try:
        assert db.execute("SELECT name FROM kill_switches WHERE active = 1").fetchall() == []
        passed = db.execute("SELECT passed FROM broker_state WHERE kind = 'RECONCILIATION'")
        assert all(bool(p) for (p,) in passed.fetchall())
        reasons = dict(db.execute("SELECT asof_date, reason FROM cycles").fetchall())
        assert db.execute(
            "SELECT COUNT(*) FROM trades WHERE executed_at >= ?", (ex.isoformat(),)
        ).fetchone() == (0,)
    finally:
        db.close()
    note = "S00403: renamed S00403.X on 2019-09-26: no orders in the old symbol"
    assert all(note in r for d, r in reasons.items() if dt.date.fromisoformat(d) >= ex)
    assert not any(note in r for d, r in reasons.items() if dt.date.fromisoformat(d) < ex)
