"""Broker calls are measured: latency per method, errors by class, rate-limit headroom."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from actors.brokers.base import (
    Broker,
    BrokerAccount,
    BrokerOrder,
    BrokerPosition,
    BrokerUnavailable,
    MarketClock,
    OrderRequest,
)
from actors.brokers.instrumented import InstrumentedBroker
from actors.metrics import Metrics


class FlakyBroker:
    name = "flaky"
    rate_limit_remaining = 187

    def __init__(self) -> None:
        self.fail = False

    async def account(self) -> BrokerAccount:
        if self.fail:
            raise BrokerUnavailable("HTTP 503")
        return BrokerAccount(cash=1.0, equity=1.0, last_equity=1.0, buying_power=1.0)

    async def positions(self) -> list[BrokerPosition]:
        return []

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        return None

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        raise BrokerUnavailable("429")

    async def cancel(self, client_order_id: str) -> None:
        return None

    async def clock(self) -> MarketClock:
        now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
        return MarketClock(now, False, now, now)

    async def closing_equity(self, sessions: Sequence[dt.date]) -> dict[dt.date, float]:
        if self.fail:
            raise BrokerUnavailable("HTTP 503")
        return dict.fromkeys(sessions, 1.0)

    async def close(self) -> None:
        return None


async def test_latency_errors_and_headroom_are_recorded() -> None:
    """A good and a failing call are timed; the failure is counted by class; headroom set."""
    metrics = Metrics()
    inner = FlakyBroker()
    broker = InstrumentedBroker(inner, metrics)
    assert (await broker.account()).cash == 1.0
    inner.fail = True
    with pytest.raises(BrokerUnavailable):
        await broker.account()
    r = metrics.registry
    assert (
        r.get_sample_value("tradingd_broker_request_duration_seconds_count", {"method": "account"})
        == 2
    )
    assert (
        r.get_sample_value(
            "tradingd_broker_request_errors_total",
            {"method": "account", "error": "BrokerUnavailable"},
        )
        == 1
    )
    assert r.get_sample_value("tradingd_broker_rate_limit_remaining") == 187
    assert broker.name == "flaky"


async def test_closing_equity_passes_through_and_is_measured() -> None:
    """closing_equity answers with the inner broker's closes and is timed and counted by class."""
    metrics = Metrics()
    inner = FlakyBroker()
    broker = InstrumentedBroker(inner, metrics)
    day = dt.date(2026, 11, 23)
    assert await broker.closing_equity([day]) == {day: 1.0}
    inner.fail = True
    with pytest.raises(BrokerUnavailable):
        await broker.closing_equity([day])
    r = metrics.registry
    labels = {"method": "closing_equity"}
    assert r.get_sample_value("tradingd_broker_request_duration_seconds_count", labels) == 2
    assert (
        r.get_sample_value(
            "tradingd_broker_request_errors_total",
            {"method": "closing_equity", "error": "BrokerUnavailable"},
        )
        == 1
    )


def test_instrumented_broker_speaks_the_broker_protocol() -> None:
    """The wrapper is itself a Broker, so it can stand wherever one is expected."""
    assert isinstance(InstrumentedBroker(FlakyBroker(), Metrics()), Broker)


class BatchBroker(FlakyBroker):
    """A broker that answers for many orders at once."""

    async def orders_by_client_ids(
        self, client_order_ids: Sequence[str]
    ) -> dict[str, BrokerOrder | None]:
        return dict.fromkeys(client_order_ids)


async def test_many_orders_at_once_are_forwarded_only_when_the_broker_can() -> None:
    """None from a broker without the call (its callers then ask one by one)."""
    metrics = Metrics()
    assert await InstrumentedBroker(FlakyBroker(), metrics).orders_by_client_ids(["a"]) is None
    batch = InstrumentedBroker(BatchBroker(), metrics)
    assert await batch.orders_by_client_ids(["a", "b"]) == {"a": None, "b": None}
