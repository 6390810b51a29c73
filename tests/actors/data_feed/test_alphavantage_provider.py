"""The Alpha Vantage provider against the fake server, with fake time for the rate limit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
import pytest
import structlog

from actors.data_feed.params import AlphaVantageParams
from actors.data_feed.providers.alphavantage import AlphaVantageProvider
from daemon.errors import ProviderError
from tests.fakes import FakeTime
from tests.fakes.alphavantage_server import FakeAlphaVantageServer

D = dt.date
TODAY = D(2024, 6, 28)
DAYS = [d.date() for d in pd.bdate_range("2023-06-01", "2024-06-27")]


@pytest.fixture
def server() -> Iterator[FakeAlphaVantageServer]:
    fake = FakeAlphaVantageServer()
    for i, symbol in enumerate(["IBM", "AAPL", "MSFT", "KO", "XOM", "CVX", "PG"]):
        fake.add_daily(
            symbol,
            [(d, 10.0 + i, 11.0 + i, 9.0 + i, 10.0 + i, 10.0 + i, 1e5, 0.0, 1.0) for d in DAYS],
        )
    with fake:
        yield fake


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def provider(server: FakeAlphaVantageServer, clock: FakeTime) -> Iterator[AlphaVantageProvider]:
    params = AlphaVantageParams(base_url=server.url, max_retries=2, backoff_s=2.0, timeout_s=5.0)
    p = AlphaVantageProvider(
        server.api_key, params, monotonic=clock.monotonic, sleep=clock.sleep, today=lambda: TODAY
    )
    yield p
    p.close()


async def test_one_call_per_symbol_with_compact_for_recent_ranges(
    provider: AlphaVantageProvider, server: FakeAlphaVantageServer
) -> None:
    """A recent range asks compact, one request per symbol, and returns that range only."""
    frame = await provider.fetch(["IBM", "AAPL"], D(2024, 6, 1), D(2024, 6, 27))
    assert [r.query["symbol"] for r in server.query_requests] == ["IBM", "AAPL"]
    assert {r.query["outputsize"] for r in server.query_requests} == {"compact"}
    assert frame["date"].min() == pd.Timestamp("2024-06-03")
    assert frame["date"].max() == pd.Timestamp("2024-06-27")
    assert list(frame["symbol"].unique()) == ["AAPL", "IBM"]


async def test_long_ranges_ask_full(
    provider: AlphaVantageProvider, server: FakeAlphaVantageServer
) -> None:
    """A range older than compact's 100 sessions asks outputsize=full."""
    frame = await provider.fetch(["IBM"], D(2023, 6, 1), D(2024, 6, 27))
    assert server.query_requests[0].query["outputsize"] == "full"
    assert len(frame) == len(DAYS)


async def test_five_calls_a_minute(provider: AlphaVantageProvider, clock: FakeTime) -> None:
    """Seven symbols at 5 calls/minute: the sixth waits a minute on the fake clock."""
    symbols = ["IBM", "AAPL", "MSFT", "KO", "XOM", "CVX", "PG"]
    frame = await provider.fetch(symbols, D(2024, 6, 1), D(2024, 6, 27))
    assert set(frame["symbol"]) == set(symbols)
    assert clock.sleeps == [pytest.approx(60.0)]


async def test_adjusted_close_scales_the_bar(
    server: FakeAlphaVantageServer, provider: AlphaVantageProvider
) -> None:
    """OHLC are scaled by adjusted close / close; volume is as traded."""
    server.add_daily("SPLT", [(D(2024, 6, 3), 100.0, 110.0, 90.0, 100.0, 50.0, 1000.0, 0.0, 2.0)])
    frame = await provider.fetch(["SPLT"], D(2024, 6, 3), D(2024, 6, 3))
    row = frame.iloc[0]
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (
        50,
        55,
        45,
        50,
        1000,
    )


@pytest.mark.parametrize("key", ["Note", "Information"])
async def test_throttle_message_backs_off_and_retries(
    provider: AlphaVantageProvider, server: FakeAlphaVantageServer, clock: FakeTime, key: str
) -> None:
    """An in-band throttle answer is retried after backoff (2 s, 4 s) and then succeeds."""
    server.throttle_next(times=2, key=key)
    frame = await provider.fetch(["IBM"], D(2024, 6, 3), D(2024, 6, 7))
    assert len(frame) == 5
    assert len(server.query_requests) == 3
    assert clock.sleeps == [2.0, 4.0]


async def test_throttled_too_long_is_a_provider_error(
    provider: AlphaVantageProvider, server: FakeAlphaVantageServer
) -> None:
    """Throttled beyond max_retries, the fetch fails with ProviderError."""
    server.throttle_next(times=5)
    with pytest.raises(ProviderError, match="throttled"):
        await provider.fetch(["IBM", "AAPL"], D(2024, 6, 3), D(2024, 6, 7))
    assert len(server.query_requests) == 3


async def test_unknown_symbol_is_left_out_and_reported(provider: AlphaVantageProvider) -> None:
    """'Error Message' fails that symbol only: others are returned, failures names it."""
    with structlog.testing.capture_logs() as logs:
        frame = await provider.fetch(["IBM", "NOPE", "AAPL"], D(2024, 6, 3), D(2024, 6, 7))
    assert set(frame["symbol"]) == {"IBM", "AAPL"}
    assert list(provider.failures) == ["NOPE"]
    assert "Invalid API call" in provider.failures["NOPE"]
    assert [e["symbol"] for e in logs if e["event"] == "alphavantage_symbol_failed"] == ["NOPE"]


async def test_5xx_is_retried_with_backoff(
    provider: AlphaVantageProvider, server: FakeAlphaVantageServer, clock: FakeTime
) -> None:
    """HTTP 503 is retried with backoff, then the answer is used."""
    server.fail_next(503)
    frame = await provider.fetch(["IBM"], D(2024, 6, 3), D(2024, 6, 7))
    assert len(frame) == 5
    assert clock.sleeps == [2.0]


async def test_persistent_5xx_is_a_provider_error(
    provider: AlphaVantageProvider, server: FakeAlphaVantageServer
) -> None:
    """A 500 that does not go away ends in ProviderError after max_retries."""
    server.fail_next(500, times=10)
    with pytest.raises(ProviderError, match="HTTP 500"):
        await provider.fetch(["IBM"], D(2024, 6, 3), D(2024, 6, 7))


async def test_malformed_answer_fails_that_symbol(
    provider: AlphaVantageProvider, server: FakeAlphaVantageServer
) -> None:
    """A body that is not JSON fails the symbol; the next symbol is still fetched."""
    server.malformed_next()
    frame = await provider.fetch(["IBM", "AAPL"], D(2024, 6, 3), D(2024, 6, 7))
    assert set(frame["symbol"]) == {"AAPL"}
    assert provider.failures == {"IBM": "malformed JSON"}


async def test_timeout_is_retried_then_reported(
    server: FakeAlphaVantageServer, clock: FakeTime
) -> None:
    """A request that hangs past timeout_s is retried; still hanging, it is a ProviderError."""
    params = AlphaVantageParams(base_url=server.url, max_retries=1, timeout_s=0.2)
    p = AlphaVantageProvider(
        server.api_key, params, monotonic=clock.monotonic, sleep=clock.sleep, today=lambda: TODAY
    )
    server.hang_next(times=2)
    try:
        with pytest.raises(ProviderError, match=r"no answer within 0\.2s"):
            await p.fetch(["IBM"], D(2024, 6, 3), D(2024, 6, 7))
    finally:
        p.close()
    assert len(server.query_requests) == 2


async def test_the_api_key_never_appears_in_errors_or_logs(
    server: FakeAlphaVantageServer, clock: FakeTime
) -> None:
    """Connection errors mention the URL, but the apikey is scrubbed from message and logs."""
    url = server.url
    server.stop()
    params = AlphaVantageParams(base_url=url, max_retries=1)
    p = AlphaVantageProvider(
        "SECRET-KEY-123", params, monotonic=clock.monotonic, sleep=clock.sleep, today=lambda: TODAY
    )
    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(ProviderError) as err:
            await p.fetch(["IBM"], D(2024, 6, 3), D(2024, 6, 7))
    finally:
        p.close()
    assert "ConnectionError" in str(err.value)
    assert "SECRET-KEY-123" not in str(err.value)
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__
    assert logs
    assert all("SECRET-KEY-123" not in repr(e) for e in logs)


async def test_bad_request_is_not_retried(
    provider: AlphaVantageProvider, server: FakeAlphaVantageServer, clock: FakeTime
) -> None:
    """HTTP 403 raises ProviderError at once."""
    server.fail_next(403)
    with pytest.raises(ProviderError, match="HTTP 403"):
        await provider.fetch(["IBM"], D(2024, 6, 3), D(2024, 6, 7))
    assert clock.sleeps == []


async def test_no_volatility_index(provider: AlphaVantageProvider) -> None:
    """Alpha Vantage has no VIX."""
    assert await provider.volatility_index(D(2024, 6, 3), D(2024, 6, 7)) is None
