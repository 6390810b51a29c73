"""Protective stops resting at Alpaca: the daemon's graph, the real AlpacaBroker, the fake.

The graph runs session by session on a SimClock with the synthetic market and
``actors.brokers.alpaca.AlpacaBroker`` against ``tests/fakes/alpaca_trading_server.py``
(alpaca-py's own client over HTTP on 127.0.0.1). What the operator and the broker show:

- after the first session each position has exactly one GTC stop sell resting at
  Alpaca, for its shares at its stop; the next session changes none of them;
- a stop that fills at Alpaca between sessions is booked at the next cycle as a
  stop-loss exit at its real fill price, reported in the cycle's summary, and the
  reconciliation passes with no operator action;
- a 2:1 split announced by the data feed and applied by Alpaca (which adjusts the
  stop as FINRA Rule 5330 does) reconciles with no operator action and keeps the
  adjusted stop; a 1:10 reverse split (Alpaca cancels the stop) is repaired;
- an operator's flatten cancels each stop, confirmed, before its sell: Alpaca never
  refuses a sell for shares a stop holds, and no client order id is sent twice.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from actors.data_feed.params import DEFAULT_UNIVERSE
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.corporate_actions import ActionKind, CorporateAction
from actors.messages import CycleStatus, Flatten
from actors.system.config import Settings
from tests.fakes.acting_market import ActingMarket
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer
from tests.reliability.alpaca_graph import (
    SESSIONS,
    alpaca,
    assert_one_order_per_intent,
    day,
    make_fake,
)
from tests.reliability.harness import CAL, Graph, running_graph


async def _stops_by_symbol(fake: FakeAlpacaTradingServer) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for o in fake.open_orders():
        if o["type"] == "stop":
            out.setdefault(str(o["symbol"]), []).append(o)
    return out


async def _book(g: Graph) -> dict[str, tuple[int, float]]:
    rows = await g.rows(
        "SELECT symbol, SUM(shares) AS shares, MAX(stop_price) AS stop FROM positions"
        " WHERE shares > 0 GROUP BY symbol"
    )
    return {str(r["symbol"]): (round(r["shares"]), float(r["stop"])) for r in rows}


def _assert_one_stop_per_position(
    stops: dict[str, list[dict[str, object]]], book: dict[str, tuple[int, float]]
) -> None:
    assert set(stops) == set(book)
    for symbol, (shares, stop) in book.items():
        [order] = stops[symbol]
        assert order["qty"] == shares, symbol
        assert order["time_in_force"] == "gtc"
        assert order["side"] == "sell"
        assert abs(float(str(order["stop_price"])) - stop) <= 0.0101, (symbol, order, stop)


async def test_each_position_gets_one_stop_at_alpaca_and_a_stop_fill_is_an_exit(
    settings: Settings, closes: pd.DataFrame, fake: FakeAlpacaTradingServer, tmp_path: Path
) -> None:
    provider = SyntheticProvider(settings.data.synthetic)
    async with running_graph(
        settings, tmp_path / "t.db", provider, alpaca(fake), start=SESSIONS[0]
    ) as g:
        status, reason, _ = await day(g, fake, closes, SESSIONS[0])
        assert status is CycleStatus.COMPLETED, reason
        book = await _book(g)
        assert book, reason
        _assert_one_stop_per_position(await _stops_by_symbol(fake), book)
        first_book, first_ids = (
            book,
            {
                sym: str(orders[0]["client_order_id"])
                for sym, orders in (await _stops_by_symbol(fake)).items()
            },
        )
        status, reason, _ = await day(g, fake, closes, SESSIONS[1])
        assert status is CycleStatus.COMPLETED, reason
        book = await _book(g)
        stops = await _stops_by_symbol(fake)
        _assert_one_stop_per_position(stops, book)
        # A lot that did not change keeps the very order it had.
        kept = [s for s in first_book if book.get(s) == first_book[s]]
        assert kept
        assert all(str(stops[s][0]["client_order_id"]) == first_ids[s] for s in kept)
        # Between sessions one symbol falls through its stop at Alpaca.
        symbol, (shares, stop) = sorted(book.items())[0]
        fill = round(stop * 0.97, 2)
        assert fake.trigger_stops(symbol, fill)
        status, reason, _ = await day(g, fake, closes, SESSIONS[2])
        assert status is CycleStatus.COMPLETED, reason
        sells = await g.rows(
            "SELECT t.shares, t.exec_price, i.intent_kind, i.stop_price FROM trades t"
            " JOIN order_intents i ON i.intent_id = t.intent_id"
            " WHERE t.symbol = ? AND t.action = 'SELL'",
            symbol,
        )
        switches = await g.active_switches()
    assert [(r["shares"], r["exec_price"], r["intent_kind"]) for r in sells] == [
        (shares, pytest.approx(fill), "STOP")
    ]
    assert "resting stop filled at the broker: " in reason
    assert f"{symbol} at {fill:.2f}" in reason
    assert switches == set()
    assert_one_order_per_intent(fake)


@pytest.mark.parametrize(("ratio", "kept"), [(2.0, True), (0.1, False)], ids=["2:1", "1:10"])
async def test_a_split_at_alpaca_reconciles_and_the_stop_follows(
    settings: Settings, tmp_path: Path, ratio: float, kept: bool
) -> None:
    """The data feed announces the split for the next session; Alpaca applies it overnight."""
    market = ActingMarket()
    first = CAL.previous_session(SESSIONS[0])
    prices = await market.fetch(list(DEFAULT_UNIVERSE), first, SESSIONS[-1])
    ex = SESSIONS[1]
    with make_fake() as fake:
        async with running_graph(
            settings, tmp_path / "t.db", market, alpaca(fake), start=SESSIONS[0]
        ) as g:
            status, reason, _ = await day(g, fake, prices, SESSIONS[0])
            assert status is CycleStatus.COMPLETED, reason
            symbol, (shares, stop) = sorted((await _book(g)).items())[0]
            [before] = (await _stops_by_symbol(fake))[symbol]
            kind = ActionKind.FORWARD_SPLIT if ratio > 1 else ActionKind.REVERSE_SPLIT
            market.actions.append(CorporateAction(kind, symbol, ex, "test", ratio=ratio))
            # The fake is priced at the previous close: from the split on, in the new terms.
            rows = (prices["symbol"] == symbol) & (prices["date"] >= pd.Timestamp(SESSIONS[0]))
            for col in ("open", "high", "low", "close"):
                prices.loc[rows, col] = prices.loc[rows, col] / ratio
            fake.split(symbol, ratio)  # the broker applies it before the ex date's open
            adjusted = (await _stops_by_symbol(fake)).get(symbol, [])
            status, reason, _ = await day(g, fake, prices, ex)
            assert status is CycleStatus.COMPLETED, reason
            after = (await _stops_by_symbol(fake)).get(symbol, [])
            book = await _book(g)
            switches = await g.active_switches()
            reconciled = await g.rows(
                "SELECT passed FROM broker_state WHERE kind = 'RECONCILIATION'"
            )
            at_broker = fake.position_qty(symbol)
        assert_one_order_per_intent(fake)
    expected = int(shares * ratio + 1e-9)
    assert switches == set()
    assert all(r["passed"] for r in reconciled)
    assert at_broker == expected
    assert book[symbol][0] == expected
    assert book[symbol][1] == pytest.approx(stop / ratio)
    [now] = after
    assert now["qty"] == expected
    assert abs(float(str(now["stop_price"])) - stop / ratio) <= 0.0101
    if kept:  # Alpaca adjusted the stop: the daemon keeps (and adopts) that order
        assert [o["client_order_id"] for o in adjusted] == [before["client_order_id"]]
        assert now["client_order_id"] == before["client_order_id"]
    else:  # Alpaca cancelled it: the daemon repairs, and says so
        assert adjusted == []
        assert now["client_order_id"] != before["client_order_id"]
        assert "resting stop repaired" in reason


async def test_a_flatten_cancels_each_stop_before_its_sell(
    settings: Settings, closes: pd.DataFrame, fake: FakeAlpacaTradingServer, tmp_path: Path
) -> None:
    provider = SyntheticProvider(settings.data.synthetic)
    async with running_graph(
        settings, tmp_path / "t.db", provider, alpaca(fake), start=SESSIONS[0]
    ) as g:
        status, reason, _ = await day(g, fake, closes, SESSIONS[0])
        assert status is CycleStatus.COMPLETED, reason
        held = await _book(g)
        results = await g.sup.ref("order_manager").ask(
            Flatten("flatten", SESSIONS[0], reason="test flatten"), timeout=120
        )
        refusals = [  # a POST the fake refused created no order
            r.client_order_id
            for r in fake.requests_to("POST", "/v2/orders")
            if fake.orders_for(str(r.client_order_id)) == 0
        ]
        stops = await _stops_by_symbol(fake)
    assert {r.symbol for r in results.results} == set(held)
    assert all(r.status.value == "FILLED" for r in results.results), results
    assert refusals == []  # never a sell on shares a stop still held
    assert stops == {}
    for symbol in held:
        assert fake.position_qty(symbol) == 0
    assert_one_order_per_intent(fake)
