"""Corporate actions through the real graph, over three sessions, broker and book both applying.

The market is the synthetic one with a corporate action on a symbol day 1 bought:
before its ex date the prices are the synthetic ones, from it on a split divides
them (``SplittingProvider``: raw prices to the simulated broker, history adjusted as
of each fetch's end to the data feed, as an adjusted feed gives it). Day 2 (the ex
date) the daemon applies the action to its book and the simulated broker to its
account; the symbol is held that day (the history is still in the old scale), and
day 3 its history is fetched again, adjusted. What the operator sees: no
reconciliation failure, no false stop sell, quantities, stops and cash that agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import pandas as pd
import pytest

from actors.data_feed.params import SyntheticParams
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.corporate_actions import ActionKind, CorporateAction
from actors.messages import CycleCompleted, CycleStatus, GetKillSwitches
from actors.store.broker_state import BrokerStateStore
from daemon.store import Store
from tests.actors.cycle.test_cycle import ASOF, CALENDAR, DEFAULT_36, build

DAY2 = CALENDAR.next_session(ASOF)
DAY3 = CALENDAR.next_session(DAY2)


class SplittingProvider:
    """The synthetic market in which ``actions`` happen (and are reported)."""

    name = "synthetic"

    def __init__(self) -> None:
        self._inner = SyntheticProvider(SyntheticParams())
        self.actions: list[CorporateAction] = []

    def _scale(self, symbol: str, asof: dt.date) -> float:
        """The product of the ratios of ``symbol``'s splits up to ``asof``."""
        scale = 1.0
        for a in self.actions:
            if a.symbol == symbol and a.kind.rescales and a.ex_date <= asof:
                scale *= a.ratio
        return scale

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars adjusted as of ``end`` (a one-session fetch: that session's raw bar)."""
        frame = await self._inner.fetch(symbols, start, end)
        scale = frame["symbol"].map(lambda s: self._scale(str(s), end)).astype(float)
        for col in ("open", "high", "low", "close"):
            frame[col] = frame[col] / scale
        frame["volume"] = frame["volume"] * scale
        return frame

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        return await self._inner.volatility_index(start, end)

    async def corporate_actions(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        return [a for a in self.actions if a.symbol in symbols and start <= a.ex_date <= end]


def opened(day: dt.date) -> dt.datetime:
    return CALENDAR.session_open(day) + dt.timedelta(hours=1)


async def _held(store: Store) -> dict[str, tuple[int, float]]:
    rows = await store.fetchall(
        "SELECT symbol, TOTAL(shares) AS shares, MAX(stop_price) AS stop FROM positions"
        " WHERE shares > 0 GROUP BY symbol"
    )
    return {str(r["symbol"]): (round(r["shares"]), float(r["stop"])) for r in rows}


@dataclass(frozen=True)
class Run:
    """Three sessions, and what the operator and the broker show after them."""

    done: list[CycleCompleted]
    symbol: str
    shares: int
    stop: float
    switches: list[str]
    broker: dict[str, int]
    cash: float


MakeAction = Callable[[str, int, float], CorporateAction]


async def _three_days(store: Store, tmp_path: Path, make: MakeAction) -> Run:
    """Day 1 trades; ``make(symbol, shares, stop)`` gives the action on its first holding."""
    market = SplittingProvider()
    graph = await build(store, tmp_path, provider=market, broker_source=market, universe=DEFAULT_36)
    async with anyio.create_task_group() as tg:
        await tg.start(graph.sup.run)
        done = [await graph.run(run_id="day1")]
        held = await _held(store)
        symbol = sorted(held)[0]
        action = make(symbol, *held[symbol])
        market.actions.append(action)
        for day in (DAY2, DAY3):
            graph.clock.set_time(opened(day))
            done.append(await graph.run(day, run_id=f"run-{day}"))
        switches = [s.name for s in await graph.sup.ref("kill_switches").ask(GetKillSwitches())]
        broker = {p.symbol: p.qty for p in await graph.broker.positions()}
        cash = (await graph.broker.account()).cash
        await graph.sup.stop()
    return Run(done, symbol, held[symbol][0], held[symbol][1], switches, broker, cash)


async def _sells(store: Store, symbol: str) -> list[str]:
    """The kinds of the sells of ``symbol`` that traded (a false stop would be one)."""
    rows = await store.fetchall(
        "SELECT i.intent_kind FROM trades t JOIN order_intents i ON i.intent_id = t.intent_id"
        " WHERE t.symbol = ? AND t.action = 'SELL'",
        (symbol,),
    )
    return [str(r[0]) for r in rows]


async def _resting_at_broker(store: Store, symbol: str) -> list[tuple[int, float]]:
    """The simulated broker's resting stops of ``symbol``: (qty, stop price)."""
    rows = await store.fetchall(
        "SELECT qty, stop_price FROM sim_orders WHERE symbol = ? AND status = 'accepted'"
        " AND stop_price IS NOT NULL",
        (symbol,),
    )
    return [(int(r[0]), float(r[1])) for r in rows]


@pytest.mark.parametrize(
    ("kind", "ratio"),
    [
        (ActionKind.FORWARD_SPLIT, 2.0),
        (ActionKind.FORWARD_SPLIT, 1.5),
        (ActionKind.REVERSE_SPLIT, 0.1),
    ],
    ids=["2:1", "3:2", "1:10"],
)
async def test_a_split_reconciles_with_no_operator_and_no_false_stop(
    store: Store, tmp_path: Path, kind: ActionKind, ratio: float
) -> None:
    run = await _three_days(
        store,
        tmp_path,
        lambda s, _q, _stop: CorporateAction(kind, s, DAY2, "synthetic", ratio=ratio),
    )
    done, symbol, shares, stop = run.done, run.symbol, run.shares, run.stop
    switches, broker, cash = run.switches, run.broker, run.cash
    assert [d.status for d in done] == [CycleStatus.COMPLETED] * 3
    assert "reconciliation_failed" not in switches
    assert "daily_drawdown" not in switches
    assert await _sells(store, symbol) == []
    local = await _held(store)
    expected = int(shares * ratio + 1e-9)
    assert broker[symbol] == expected
    if expected:
        assert local[symbol][0] == expected
        assert local[symbol][1] == pytest.approx(stop / ratio)
        # The stop resting at the broker follows the split: the new shares, the new stop.
        [(qty, price)] = await _resting_at_broker(store, symbol)
        assert qty == expected
        # the broker adjusted the stop it had, on the tick: within a tick, or 5 bp after x10
        assert price == pytest.approx(stop / ratio, rel=5e-4, abs=0.0101)
    else:
        assert symbol not in local
        assert await _resting_at_broker(store, symbol) == []
    assert await BrokerStateStore(store).local_cash() == pytest.approx(cash, abs=0.01)
    assert f"{symbol}: " in done[1].reason
    assert "no orders and no stop check" in done[1].reason
    assert f"history fetched again, adjusted: {symbol}" in done[2].reason


async def test_a_special_dividend_above_the_cash_tolerance_reconciles(
    store: Store, tmp_path: Path
) -> None:
    """$2,000 paid on the ex date (2 % of the account, above the 1 % cash tolerance)."""
    run = await _three_days(
        store,
        tmp_path,
        lambda s, q, _stop: CorporateAction(
            ActionKind.CASH_DIVIDEND, s, DAY2, "synthetic", cash_per_share=2000.0 / q
        ),
    )
    assert [d.status for d in run.done] == [CycleStatus.COMPLETED] * 3
    assert "reconciliation_failed" not in run.switches
    assert await BrokerStateStore(store).local_cash() == pytest.approx(run.cash, abs=0.01)
    assert "cash credited" in run.done[1].reason
