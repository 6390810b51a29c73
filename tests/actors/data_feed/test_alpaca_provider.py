"""The Alpaca bar provider, through alpaca-py, against the fake data server on loopback."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
import pytest

from actors.data_feed.params import AlpacaDataParams
from actors.data_feed.providers.alpaca import AlpacaBarProvider
from daemon.errors import ProviderError
from tests.fakes import FakeTime
from tests.fakes.alpaca_data_server import FakeAlpacaDataServer

D = dt.date
DAYS = [d.date() for d in pd.bdate_range("2024-01-02", "2024-01-12")]  # no holiday inside


@pytest.fixture
def server() -> Iterator[FakeAlpacaDataServer]:
    fake = FakeAlpacaDataServer(page_size=7)
    for i, symbol in enumerate(["AAPL", "MSFT", "BRK.B", "XOM", "KO"]):
        fake.add_bars(
            symbol,
            [
                (d, 100.0 + i + k, 102.0 + i + k, 99.0 + i + k, 101.0 + i + k, 1e6)
                for k, d in enumerate(DAYS)
            ],
        )
    with fake:
        yield fake


def provider(
    server: FakeAlpacaDataServer,
    clock: FakeTime,
    *,
    timeout_s: float = 10.0,
    max_retries: int = 3,
    backoff_s: float = 1.0,
) -> AlpacaBarProvider:
    params = AlpacaDataParams(base_url=server.url, batch_size=2, timeout_s=timeout_s)
    return AlpacaBarProvider(
        server.api_key,
        server.secret_key,
        params,
        max_retries=max_retries,
        backoff_s=backoff_s,
        sleep=clock.sleep,
    )


async def test_fetches_all_symbols_in_batches_across_pages(server: FakeAlpacaDataServer) -> None:
    """Five symbols in batches of two, paginated by the server, come back complete."""
    clock = FakeTime()
    frame = await provider(server, clock).fetch(
        ["AAPL", "MSFT", "BRK.B", "XOM", "KO"], D(2024, 1, 2), D(2024, 1, 12)
    )
    assert sorted(frame["symbol"].unique()) == ["AAPL", "BRK.B", "KO", "MSFT", "XOM"]
    assert len(frame) == 5 * len(DAYS)
    batches = {r.query["symbols"] for r in server.bar_requests}
    assert batches == {"AAPL,MSFT", "BRK.B,XOM", "KO"}
    assert any(r.query.get("page_token") for r in server.bar_requests)  # the SDK paginated
    assert clock.sleeps == []


async def test_request_asks_for_adjusted_daily_bars_of_the_feed(
    server: FakeAlpacaDataServer,
) -> None:
    """Requests carry timeframe=1Day, adjustment=all and the configured feed."""
    await provider(server, FakeTime()).fetch(["AAPL"], D(2024, 1, 2), D(2024, 1, 3))
    q = server.bar_requests[0].query
    assert (q["timeframe"], q["adjustment"], q["feed"]) == ("1Day", "all", "iex")


async def test_dates_are_new_york_session_dates(server: FakeAlpacaDataServer) -> None:
    """A bar stamped 05:00 UTC belongs to that day's session, as tz-naive midnight."""
    frame = await provider(server, FakeTime()).fetch(["AAPL"], D(2024, 1, 3), D(2024, 1, 4))
    assert list(frame["date"]) == [pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-04")]
    assert str(frame["date"].dtype) == "datetime64[ns]"
    assert list(frame["close"]) == [102.0, 103.0]


async def test_missing_symbols_are_simply_absent(server: FakeAlpacaDataServer) -> None:
    """A partial answer and an unknown symbol leave those symbols out, no error."""
    server.partial_next({"MSFT"}, times=10)
    frame = await provider(server, FakeTime()).fetch(
        ["AAPL", "MSFT", "NOPE"], D(2024, 1, 2), D(2024, 1, 12)
    )
    assert set(frame["symbol"]) == {"AAPL"}


async def test_bad_keys_are_a_provider_error_with_status(server: FakeAlpacaDataServer) -> None:
    """401 becomes ProviderError naming the status and the server's message."""
    params = AlpacaDataParams(base_url=server.url)
    bad = AlpacaBarProvider("wrong", "keys", params, sleep=FakeTime().sleep)
    with pytest.raises(ProviderError, match="HTTP 401: request is not authorized") as err:
        await bad.fetch(["AAPL"], D(2024, 1, 2), D(2024, 1, 3))
    assert "wrong" not in str(err.value)


async def test_429_is_retried_by_us_not_by_the_sdk(server: FakeAlpacaDataServer) -> None:
    """Two 429s are retried with our backoff (1 s, 2 s on the fake clock), no SDK sleeps."""
    clock = FakeTime()
    server.fail_next(429, times=2)
    frame = await provider(server, clock, backoff_s=1.0).fetch(
        ["AAPL"], D(2024, 1, 2), D(2024, 1, 3)
    )
    assert len(frame) == 2
    assert clock.sleeps == [1.0, 2.0]
    assert len(server.bar_requests) == 3


async def test_5xx_gives_up_after_max_retries(server: FakeAlpacaDataServer) -> None:
    """A persistent 503 is retried max_retries times, then a ProviderError with the status."""
    clock = FakeTime()
    server.fail_next(503, times=10)
    with pytest.raises(ProviderError, match="HTTP 503"):
        await provider(server, clock, max_retries=2).fetch(["AAPL"], D(2024, 1, 2), D(2024, 1, 3))
    assert len(server.bar_requests) == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_hang_hits_our_deadline(server: FakeAlpacaDataServer) -> None:
    """A server that never answers fails with ProviderError after timeout_s; the next call works."""
    server.hang_next()
    p = provider(server, FakeTime(), timeout_s=0.2)
    with pytest.raises(ProviderError, match=r"no answer within 0\.2s"):
        await p.fetch(["AAPL"], D(2024, 1, 2), D(2024, 1, 3))
    assert server.hung.is_set()
    frame = await p.fetch(["AAPL"], D(2024, 1, 2), D(2024, 1, 3))
    assert len(frame) == 2


async def test_malformed_json_is_a_provider_error(server: FakeAlpacaDataServer) -> None:
    """A body that is not JSON becomes ProviderError."""
    server.malformed_next()
    with pytest.raises(ProviderError, match="alpaca bars"):
        await provider(server, FakeTime()).fetch(["AAPL"], D(2024, 1, 2), D(2024, 1, 3))


async def test_connection_refused_is_a_provider_error() -> None:
    """Nobody listening becomes ProviderError."""
    fake = FakeAlpacaDataServer()
    url = fake.start()
    fake.stop()
    p = AlpacaBarProvider("k", "s", AlpacaDataParams(base_url=url), sleep=FakeTime().sleep)
    with pytest.raises(ProviderError, match="ConnectionError"):
        await p.fetch(["AAPL"], D(2024, 1, 2), D(2024, 1, 3))


async def test_no_volatility_index() -> None:
    """Alpaca has no VIX."""
    p = AlpacaBarProvider("k", "s", AlpacaDataParams(base_url="http://127.0.0.1:9"))
    assert await p.volatility_index(D(2024, 1, 2), D(2024, 1, 3)) is None
