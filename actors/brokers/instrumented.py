"""A ``Broker`` wrapper that measures every call: latency, errors by class, rate-limit headroom.

Labels are bounded: the broker's name, the method (a fixed set) and the error
class; never symbols or order ids.

``account_fills`` is always there, so ``isinstance(wrapper, ReportsAccountFills)``
holds whatever the inner broker is: it is measured and passed through when the
inner broker reports account fills, and is ``[]`` (no call, nothing measured)
when it does not. That ``[]`` means "no fills to report", not "no fills": a
simulated broker has no trades but ours, which its orders already tell.
``reports_account_fills`` says which case a wrapper is in.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from actors.brokers.base import (
    AccountFill,
    Broker,
    BrokerAccount,
    BrokerOrder,
    BrokerPosition,
    LooksUpManyOrders,
    MarketClock,
    OrderRequest,
    ReportsAccountFills,
)
from actors.metrics import Metrics

T = TypeVar("T")


class InstrumentedBroker:
    """Delegates to ``inner`` and records ``tradingd_broker_request_*`` metrics."""

    def __init__(self, inner: Broker, metrics: Metrics) -> None:
        self.inner = inner
        self.name = inner.name
        self._m = metrics

    async def _call(self, method: str, fn: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            result = await fn()
        except Exception as exc:
            self._m.broker_errors.labels(method=method, error=type(exc).__name__).inc()
            raise
        finally:
            self._m.broker_seconds.labels(method=method).observe(time.perf_counter() - started)
            remaining: Any = getattr(self.inner, "rate_limit_remaining", None)
            if isinstance(remaining, int | float):
                self._m.broker_rate_limit_remaining.set(remaining)
        return result

    async def account(self) -> BrokerAccount:
        return await self._call("account", self.inner.account)

    async def positions(self) -> list[BrokerPosition]:
        return await self._call("positions", self.inner.positions)

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        return await self._call(
            "order_by_client_id", lambda: self.inner.order_by_client_id(client_order_id)
        )

    async def orders_by_client_ids(
        self, client_order_ids: Sequence[str]
    ) -> dict[str, BrokerOrder | None] | None:
        """The inner broker's answer for many orders, measured; None if it has no such call."""
        inner = self.inner
        if not isinstance(inner, LooksUpManyOrders):
            return None
        return await self._call(
            "orders_by_client_ids", lambda: inner.orders_by_client_ids(client_order_ids)
        )

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        return await self._call("submit", lambda: self.inner.submit(request))

    async def cancel(self, client_order_id: str) -> None:
        await self._call("cancel", lambda: self.inner.cancel(client_order_id))

    async def clock(self) -> MarketClock:
        return await self._call("clock", self.inner.clock)

    async def closing_equity(self, sessions: Sequence[dt.date]) -> dict[dt.date, float]:
        return await self._call("closing_equity", lambda: self.inner.closing_equity(sessions))

    @property
    def reports_account_fills(self) -> bool:
        """Whether the inner broker lists account fills (else ``account_fills`` is [])."""
        return isinstance(self.inner, ReportsAccountFills)

    async def account_fills(self, since: dt.datetime) -> list[AccountFill]:
        """The inner broker's account fills, measured; [] if it cannot report them."""
        inner = self.inner
        if not isinstance(inner, ReportsAccountFills):
            return []
        return await self._call("account_fills", lambda: inner.account_fills(since))

    async def close(self) -> None:
        await self.inner.close()
