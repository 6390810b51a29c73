"""Corporate actions from Alpaca, through alpaca-py, against the fake data server on loopback."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from actors.data_feed.params import AlpacaDataParams
from actors.data_feed.providers.alpaca import AlpacaBarProvider
from actors.data_feed.providers.base import ReportsCorporateActions
from actors.market.corporate_actions import ActionKind, CorporateAction
from daemon.errors import ProviderError
from tests.fakes import FakeTime
from tests.fakes.alpaca_data_server import FakeAlpacaDataServer

D = dt.date
START, END = D(2024, 1, 1), D(2024, 6, 30)


@pytest.fixture
def server() -> Iterator[FakeAlpacaDataServer]:
    fake = FakeAlpacaDataServer()
    with fake:
        yield fake


def provider(
    server: FakeAlpacaDataServer,
    clock: FakeTime | None = None,
    *,
    batch_size: int = 100,
    max_retries: int = 3,
) -> AlpacaBarProvider:
    params = AlpacaDataParams(base_url=server.url, batch_size=batch_size, timeout_s=10.0)
    return AlpacaBarProvider(
        server.api_key,
        server.secret_key,
        params,
        max_retries=max_retries,
        backoff_s=1.0,
        sleep=(clock or FakeTime()).sleep,
    )


async def fetch(
    server: FakeAlpacaDataServer, symbols: list[str], start: dt.date = START, end: dt.date = END
) -> list[CorporateAction]:
    return await provider(server).corporate_actions(symbols, start, end)


Logs = list[MutableMapping[str, Any]]


def skipped(logs: Logs) -> Logs:
    return [e for e in logs if e["event"] == "alpaca_corporate_action_skipped"]


def unsupported(logs: Logs) -> Logs:
    return [e for e in logs if e["event"] == "alpaca_corporate_action_unsupported"]


def test_the_provider_reports_corporate_actions() -> None:
    """The Alpaca provider satisfies the ReportsCorporateActions protocol."""
    p = AlpacaBarProvider("k", "s", AlpacaDataParams(base_url="http://127.0.0.1:9"))
    assert isinstance(p, ReportsCorporateActions)


async def test_forward_splits_map_to_new_over_old(server: FakeAlpacaDataServer) -> None:
    """A 2:1 split has ratio 2.0 and a 3:2 split 1.5, with Alpaca's id as source_id."""
    two = server.add_forward_split("AAPL", D(2024, 2, 1), new_rate=2, old_rate=1)
    server.add_forward_split("MSFT", D(2024, 3, 1), new_rate=3, old_rate=2)
    actions = await fetch(server, ["AAPL", "MSFT"])
    assert [(a.kind, a.symbol, a.ex_date, a.ratio) for a in actions] == [
        (ActionKind.FORWARD_SPLIT, "AAPL", D(2024, 2, 1), 2.0),
        (ActionKind.FORWARD_SPLIT, "MSFT", D(2024, 3, 1), 1.5),
    ]
    assert actions[0].source == "alpaca"
    assert actions[0].source_id == two["id"]


async def test_reverse_split_has_a_ratio_below_one(server: FakeAlpacaDataServer) -> None:
    """A 1:10 reverse split has ratio 0.1."""
    server.add_reverse_split("XYZ", D(2024, 4, 2), new_rate=1, old_rate=10)
    [action] = await fetch(server, ["XYZ"])
    assert (action.kind, action.ex_date) == (ActionKind.REVERSE_SPLIT, D(2024, 4, 2))
    assert action.ratio == pytest.approx(0.1)


async def test_stock_dividend_ratio_is_one_plus_rate(server: FakeAlpacaDataServer) -> None:
    """A 5 % stock dividend (Alpaca rate 0.05) has ratio 1.05."""
    server.add_stock_dividend("MSBC", D(2024, 5, 19), rate=0.05)
    [action] = await fetch(server, ["MSBC"])
    assert action.kind is ActionKind.STOCK_DIVIDEND
    assert action.ratio == pytest.approx(1.05)


async def test_cash_dividend_carries_rate_and_pay_date(server: FakeAlpacaDataServer) -> None:
    """A cash dividend maps rate to cash_per_share and payable_date to pay_date."""
    server.add_cash_dividend("KO", D(2024, 3, 14), rate=0.485, payable_date=D(2024, 4, 1))
    [action] = await fetch(server, ["KO"])
    assert (action.kind, action.ex_date, action.cash_per_share, action.pay_date) == (
        ActionKind.CASH_DIVIDEND,
        D(2024, 3, 14),
        0.485,
        D(2024, 4, 1),
    )


async def test_name_change_is_a_rename_effective_on_its_process_date(
    server: FakeAlpacaDataServer,
) -> None:
    """A name change becomes a rename of the old symbol, ex date = process date."""
    server.add_name_change("FB", "META", D(2024, 6, 9))
    [action] = await fetch(server, ["FB"])
    assert (action.kind, action.symbol, action.new_symbol, action.ex_date) == (
        ActionKind.RENAME,
        "FB",
        "META",
        D(2024, 6, 9),
    )


async def test_a_rename_asked_for_by_both_symbols_comes_once(
    server: FakeAlpacaDataServer,
) -> None:
    """A rename matched through its old and its new symbol, in two batches, is returned once."""
    server.add_name_change("FB", "META", D(2024, 6, 9))
    actions = await provider(server, batch_size=1).corporate_actions(["FB", "META"], START, END)
    assert [(a.symbol, a.new_symbol) for a in actions] == [("FB", "META")]
    assert len(server.action_requests) == 2


async def test_only_the_symbols_asked_for(server: FakeAlpacaDataServer) -> None:
    """Actions on other symbols are not returned; the symbols go in batches of batch_size."""
    for symbol in ("AAPL", "MSFT", "XOM"):
        server.add_forward_split(symbol, D(2024, 2, 1), new_rate=2, old_rate=1)
    p = provider(server, batch_size=1)
    actions = await p.corporate_actions(["AAPL", "XOM"], START, END)
    assert [a.symbol for a in actions] == ["AAPL", "XOM"]
    assert [r.query["symbols"] for r in server.action_requests] == ["AAPL", "XOM"]


async def test_ex_dates_outside_the_range_are_left_out(server: FakeAlpacaDataServer) -> None:
    """Only ex dates in [start, end] count, both ends inclusive."""
    for day in (D(2023, 12, 29), START, END, D(2024, 7, 1)):
        server.add_forward_split("AAPL", day, new_rate=2, old_rate=1)
    actions = await fetch(server, ["AAPL"])
    assert [a.ex_date for a in actions] == [START, END]


async def test_a_dividend_is_found_by_ex_date_though_processed_later(
    server: FakeAlpacaDataServer,
) -> None:
    """Alpaca selects by process date (the payable date for dividends); the ex date decides."""
    server.add_cash_dividend("KO", D(2024, 6, 14), 0.485, payable_date=D(2024, 7, 15))
    server.add_cash_dividend("KO", D(2023, 12, 28), 0.46, payable_date=D(2024, 1, 16))
    actions = await fetch(server, ["KO"])
    assert [(a.ex_date, a.pay_date) for a in actions] == [(D(2024, 6, 14), D(2024, 7, 15))]
    q = server.action_requests[0].query
    assert (q["start"], q["end"]) == ("2023-12-25", "2024-09-28")


async def test_actions_are_sorted_by_ex_date(server: FakeAlpacaDataServer) -> None:
    """The answer comes by process date and type; the result is by ex date."""
    server.add_cash_dividend("KO", D(2024, 2, 1), 0.4, payable_date=D(2024, 5, 1))
    server.add_forward_split("KO", D(2024, 3, 1), new_rate=2, old_rate=1)
    server.add_name_change("KO", "KOX", D(2024, 1, 15))
    actions = await fetch(server, ["KO"])
    assert [a.ex_date for a in actions] == [D(2024, 1, 15), D(2024, 2, 1), D(2024, 3, 1)]


async def test_every_page_is_read(server: FakeAlpacaDataServer) -> None:
    """Five actions at two a page take three requests and all come back."""
    server.page_size = 2
    for k in range(5):
        server.add_forward_split("AAPL", D(2024, 2, 1 + k), new_rate=2, old_rate=1)
    actions = await fetch(server, ["AAPL"])
    assert len(actions) == 5
    assert len(server.action_requests) == 3
    assert [bool(r.query.get("page_token")) for r in server.action_requests] == [
        False,
        True,
        True,
    ]


async def test_more_than_a_thousand_actions_are_all_read(server: FakeAlpacaDataServer) -> None:
    """The SDK's default limit would stop at 1000 items; no limit is set, so none is lost."""
    first = D(2021, 1, 1)
    for k in range(1001):
        server.add_cash_dividend("KO", first + dt.timedelta(days=k), 0.01)
    actions = await fetch(server, ["KO"], first, first + dt.timedelta(days=1000))
    assert len(actions) == 1001
    assert len(server.action_requests) == 2


async def test_500_and_429_are_retried(server: FakeAlpacaDataServer) -> None:
    """A 500 and a 429 are retried with our backoff (1 s, 2 s on the fake clock)."""
    clock = FakeTime()
    server.add_forward_split("AAPL", D(2024, 2, 1), new_rate=2, old_rate=1)
    server.fail_next(500)
    server.fail_next(429)
    actions = await provider(server, clock).corporate_actions(["AAPL"], START, END)
    assert [a.symbol for a in actions] == ["AAPL"]
    assert clock.sleeps == [1.0, 2.0]
    assert len(server.action_requests) == 3


async def test_persistent_5xx_is_a_provider_error(server: FakeAlpacaDataServer) -> None:
    """A 503 that does not go away, after max_retries, is a ProviderError naming the status."""
    clock = FakeTime()
    server.fail_next(503, times=10)
    with pytest.raises(ProviderError, match="alpaca corporate actions: HTTP 503"):
        await provider(server, clock, max_retries=2).corporate_actions(["AAPL"], START, END)
    assert len(server.action_requests) == 3


async def test_bad_keys_are_a_provider_error(server: FakeAlpacaDataServer) -> None:
    """401 is not retried and becomes ProviderError with the server's message."""
    params = AlpacaDataParams(base_url=server.url)
    bad = AlpacaBarProvider("wrong", "keys", params, sleep=FakeTime().sleep)
    with pytest.raises(ProviderError, match="HTTP 401: request is not authorized"):
        await bad.corporate_actions(["AAPL"], START, END)
    assert len(server.action_requests) == 1


async def test_malformed_json_is_a_provider_error(server: FakeAlpacaDataServer) -> None:
    """A body that is not JSON becomes ProviderError."""
    server.malformed_next()
    with pytest.raises(ProviderError, match="alpaca corporate actions"):
        await fetch(server, ["AAPL"])


async def test_a_bad_item_is_skipped_with_a_log(server: FakeAlpacaDataServer) -> None:
    """Items CorporateAction rejects or that lack a field are logged by symbol and skipped."""
    server.add_cash_dividend("KO", D(2024, 3, 1), rate=-0.5)
    server.add_reverse_split("BAD", D(2024, 3, 2), new_rate=10, old_rate=1)  # not a reverse
    broken = server.add_forward_split("AAPL", D(2024, 3, 3), new_rate=2, old_rate=1)
    del broken["new_rate"]
    server.add_forward_split("MSFT", D(2024, 3, 4), new_rate=2, old_rate=1)
    with capture_logs() as logs:
        actions = await fetch(server, ["KO", "BAD", "AAPL", "MSFT"])
    assert [a.symbol for a in actions] == ["MSFT"]
    events = skipped(logs)
    assert {e["symbol"] for e in events} == {"KO", "BAD", "AAPL"}
    assert all(e["log_level"] == "warning" for e in events)
    by_symbol = {e["symbol"]: str(e["reason"]) for e in events}
    assert "cash per share must be positive" in by_symbol["KO"]
    assert "new_rate" in by_symbol["AAPL"]


async def test_a_spin_off_is_skipped_and_logged_once(server: FakeAlpacaDataServer) -> None:
    """An unsupported type is left out and logged at warning once, not on every fetch."""
    server.add_spin_off("GE", "GEHC", D(2024, 1, 4), new_rate=1 / 3)
    server.add_forward_split("GE", D(2024, 2, 1), new_rate=2, old_rate=1)
    p = provider(server)
    with capture_logs() as logs:
        first = await p.corporate_actions(["GE"], START, END)
        second = await p.corporate_actions(["GE"], START, END)
    assert [a.kind for a in first] == [a.kind for a in second] == [ActionKind.FORWARD_SPLIT]
    [event] = unsupported(logs)
    assert (event["type"], event["symbol"], event["date"], event["log_level"]) == (
        "spin_offs",
        "GE",
        "2024-01-04",
        "warning",
    )


async def test_an_unknown_type_is_skipped(server: FakeAlpacaDataServer) -> None:
    """A type alpaca-py does not know either is left out with a warning, not an error."""
    server.add_corporate_action(
        "tender_offers", {"symbol": "ZZZ", "process_date": "2024-02-01", "rate": 1}
    )
    with capture_logs() as logs:
        assert await fetch(server, ["ZZZ"]) == []
    assert [e["type"] for e in unsupported(logs)] == ["tender_offers"]


async def test_items_without_id_or_cusip_are_mapped(server: FakeAlpacaDataServer) -> None:
    """Older answers carry no id or cusip; the action still maps, with no source_id."""
    server.add_corporate_action(
        "forward_splits",
        {
            "symbol": "NVDX",
            "new_rate": 10,
            "old_rate": 1,
            "process_date": "2024-03-16",
            "ex_date": "2024-03-16",
        },
    )
    [action] = await fetch(server, ["NVDX"])
    assert (action.ratio, action.source_id) == (10.0, None)


async def test_nothing_asked_nothing_requested(server: FakeAlpacaDataServer) -> None:
    """No symbols, or an empty range, answers [] without a request."""
    p = provider(server)
    assert await p.corporate_actions([], START, END) == []
    assert await p.corporate_actions(["AAPL"], END, START) == []
    assert server.action_requests == []
