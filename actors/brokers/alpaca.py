"""Alpaca's Trading API behind the ``Broker`` protocol, through alpaca-py.

How a call runs:

- alpaca-py is synchronous (``requests``) and sets no HTTP timeout, so every
  call runs in a worker thread (``anyio.to_thread.run_sync(...,
  abandon_on_cancel=True)``) under our own deadline (``anyio.fail_after
  (timeout_s)``). On the deadline the thread is *abandoned*, not killed
  (Python cannot kill threads): it ends by itself when its socket answers or
  when the session's own read timeout (``2 * timeout_s``, a mounted adapter)
  fires, so no stray thread lives for long. The client is replaced at once so
  the stray thread shares nothing with the next call; the old
  ``requests.Session`` is closed by whichever finishes last, the stray thread
  or ``close()``.
- The SDK's own retry (429/504, three blocking ``time.sleep(3)``, POST
  ``/v2/orders`` included) is switched off: its constructor cannot say "no
  retries" (it ignores 0), so ``_retry`` is set after construction, as the
  data-side provider does.
- Rate limit: a client-side sliding window (``rate_limit_per_min`` per 60 s)
  that also honours the server. A ``requests`` response hook on the SDK's
  session (``session.hooks["response"]``, the documented requests extension
  point) records ``X-Ratelimit-Remaining``/``X-Ratelimit-Reset`` of every
  answer; after each call, a 429 or ``Remaining: 0`` carrying a reset time
  pauses the limiter until then (reset is unix seconds, read against
  ``wallclock``; capped at one window so a skewed clock cannot stall us).
  ``rate_limit_remaining`` is the last ``Remaining`` seen, for a metric.

What each call does on failure:

- Reads (``account``, ``positions``, ``order_by_client_id``, ``clock``,
  ``calendar``) and ``cancel`` (DELETE is idempotent) retry 429, 5xx,
  timeouts and connection errors up to ``max_read_retries`` times with
  jittered exponential backoff (``daemon.retry``: ``backoff_s * 2**attempt *
  [0.5, 1.5)``; after a 429 that set a pause, the limiter's pause is the
  wait), then raise ``BrokerUnavailable`` naming the HTTP status and the
  server's message.
  401/403 raise ``AccountBlocked``; other 4xx and malformed answers (a body
  that is not JSON included) raise ``BrokerError``.
- ``closing_equity`` reads the daily portfolio history (one request for the
  span from the earliest asked session to the day after the latest, retried
  as the reads are). It never raises for "not available": a 404 (no such
  endpoint), a 5xx or timeout past the retries, another 4xx or a malformed
  answer give ``{}`` and a ``closing_equity_unavailable`` warning; only
  401/403 raise ``AccountBlocked``, as on every read.
- ``account_fills`` reads ``GET /v2/account/activities/FILL`` (alpaca-py has
  no client for it: the SDK client's plain ``get``, so the same session, hook
  and socket timeout) page by page, each page a read as above; see "Account fills" below.
- ``submit`` places a market order good for the day or, with ``stop_price``,
  a stop sell good till canceled (see "Orders" below). It is never retried.
  A timeout, a connection error, a 5xx or an unreadable 2xx may hide a
  created order: ``SubmissionOutcomeUnknown``
  (resolve with ``order_by_client_id``). 429: ``BrokerUnavailable`` (Alpaca
  did not process it). 422 "client_order_id must be unique" (decided on
  status and message; 40010001 is a generic code): ``DuplicateClientOrderId``.
  401, or 403 saying the account may not trade: ``AccountBlocked``. Any other
  4xx (insufficient buying power, unknown asset, insufficient qty available
  because an open sell holds the shares, a sub-penny stop price, ...):
  ``OrderRejected``.
  ``submit`` does not read the account first; the caller checks
  ``(await account()).can_trade`` at the start of a cycle.

Closing equity: each daily point of the history is the session of the New
York date of its timestamp (Alpaca has stamped daily points at 00:00 New York
of the session, at its close, and at 00:00 UTC after it, which is 19:00/20:00
New York of the session: all fall on the session's New York date). A session
is told only after 16:00 New York of its date by ``wallclock`` (an early close
is told from 16:00 too: later, never too early), since the current day's
point is the live equity; non-positive equity (days before the account was
funded) and non-finite values are omitted, never estimated.

Account fills: every execution in the account, ours and manual trades alike,
at or after ``since``, oldest first (then by activity id). Pages of
``page_size=100`` in ``direction=asc``, each asked with the last activity id
of the page before as ``page_token``, until a page comes back short; a page
token that does not advance is a ``BrokerError`` (no endless loop). Alpaca
documents ``after`` only as "after this date" (exclusive, maybe read to the
second), so it is sent a second before ``since`` (floored, UTC) and fills
before ``since`` are dropped here: a fill exactly at ``since`` is listed. A
retry after a failed page re-reads only that page. ``sell_short`` is a
``SELL``; activities that are not ``FILL`` are skipped; a fill with no
usable id, symbol, side, time, price or quantity is a ``BrokerError`` naming
it (never silently left out). A fractional quantity is kept as the nearest
whole number (half up) with an ``account_fill_fractional_qty`` warning: the
fill happened, and positions (which refuse fractions) tell the rest.

Orders: whole shares only. An ``OrderRequest`` without ``stop_price`` is a
market order, ``time_in_force=day``. One with ``stop_price`` is a protective
stop sell (``type=stop``, ``time_in_force=gtc``): it rests at Alpaca until
the price trades at or below the stop, then becomes a market sell; it holds
its shares meanwhile, so another sell of them is refused ("insufficient qty
available"). Its price is sent on Alpaca's tick (``stop_tick``): whole cents
at or above $1.00, four decimals below, rounded to the nearest tick with
ties away from zero (ROUND_HALF_UP on the price's shortest decimal form:
123.455 -> 123.46, 0.12345 -> 0.1235), not always down: a sell stop may end
half a tick above the asked price. A price that rounds to 0 is refused
before anything is sent. ``BrokerOrder.stop_price`` carries the price Alpaca
reports back.

Mapping: quantities must be whole shares (a fractional order or position is a
``BrokerError`` naming the symbol); short positions have negative ``qty``.
Alpaca's statuses map one to one where ``BrokerOrderStatus`` has the name;
every other working state (``done_for_day``, ``pending_cancel``,
``pending_replace``, ``held``, ``calculated``, ``stopped``, ...) is
``ACCEPTED``, or ``PARTIALLY_FILLED`` once shares filled: non-terminal, the
order may still change. ``replaced`` is terminal for *this* client order id
(its successor has another id, which only a manual edit can create: we never
replace): it maps to ``CANCELED`` with its filled quantity kept and
``reject_reason`` naming the successor; positions reconcile the rest.
``cancel`` is idempotent: an unknown or already final order is left alone.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import anyio
import pydantic
import requests
import structlog
from requests.adapters import HTTPAdapter

from actors.brokers.base import (
    AccountBlocked,
    AccountFill,
    BrokerAccount,
    BrokerError,
    BrokerOrder,
    BrokerOrderStatus,
    BrokerPosition,
    BrokerUnavailable,
    DuplicateClientOrderId,
    MarketClock,
    OrderRejected,
    OrderRequest,
    OrderSide,
    SubmissionOutcomeUnknown,
)
from daemon.ratelimit import RateLimiter
from daemon.retry import Backoff, Sleep, retry

# alpaca.trading's package import pulls in its websocket stream, which imports the
# deprecated ``websockets.legacy`` (a warning attributed to websockets, so the
# pyproject filter for alpaca.* cannot see it).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide as AlpacaSide
    from alpaca.trading.enums import OrderStatus, TimeInForce
    from alpaca.trading.models import (
        Calendar,
        Clock,
        Order,
        PortfolioHistory,
        Position,
        TradeAccount,
    )
    from alpaca.trading.requests import (
        GetCalendarRequest,
        GetPortfolioHistoryRequest,
        MarketOrderRequest,
        StopOrderRequest,
    )

T = TypeVar("T")
Clockf = Callable[[], float]
CalendarDay = tuple[dt.date, dt.datetime, dt.datetime]

log = structlog.get_logger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
# Sessions close at 16:00 New York at the latest; a day's close is not told before then.
LATEST_CLOSE = dt.time(16, 0)
RATE_WINDOW_S = 60.0
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DUPLICATE_MESSAGE = "client_order_id must be unique"
FILLS_PATH = "/account/activities/FILL"  # under the client's /v2
FILLS_PAGE_SIZE = 100  # Alpaca's maximum without ``date``
# ``after`` may be exclusive and to the second: ask from this much earlier, then filter.
FILLS_AFTER_SLACK = dt.timedelta(seconds=1)
FILL_SIDES = {"buy": OrderSide.BUY, "sell": OrderSide.SELL, "sell_short": OrderSide.SELL}
# 403 answers that mean the account itself may not trade (vs. "insufficient buying power").
BLOCKED_MARKERS = (
    "not allowed to trade",
    "not authorized to trade",
    "account is restricted",
    "trading_blocked",
    "trading is blocked",
    "account_blocked",
    "account is blocked",
    "suspended",
)

_DIRECT_STATUS = {
    OrderStatus.NEW: BrokerOrderStatus.NEW,
    OrderStatus.ACCEPTED: BrokerOrderStatus.ACCEPTED,
    OrderStatus.PENDING_NEW: BrokerOrderStatus.PENDING_NEW,
    OrderStatus.PARTIALLY_FILLED: BrokerOrderStatus.PARTIALLY_FILLED,
    OrderStatus.FILLED: BrokerOrderStatus.FILLED,
    OrderStatus.CANCELED: BrokerOrderStatus.CANCELED,
    OrderStatus.EXPIRED: BrokerOrderStatus.EXPIRED,
    OrderStatus.REJECTED: BrokerOrderStatus.REJECTED,
    OrderStatus.REPLACED: BrokerOrderStatus.CANCELED,
}


class _Failure(Exception):
    """One attempt failed: ``kind`` is "timeout", "connection", "http" or "malformed"."""

    def __init__(self, kind: str, status: int | None, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.paused = False  # the server's rate-limit reset paused the limiter

    @property
    def retryable(self) -> bool:
        if self.kind in ("timeout", "connection"):
            return True
        return self.kind == "http" and self.status in RETRYABLE_STATUS

    def describe(self) -> str:
        if self.status is not None:
            return f"HTTP {self.status}: {self.message}"
        return self.message


@dataclass(frozen=True, slots=True)
class _RateHeaders:
    status: int
    remaining: int | None
    reset: float | None  # unix seconds


class _TimeoutAdapter(HTTPAdapter):
    """Gives every request a socket timeout (the SDK sets none) so an abandoned thread ends."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def send(  # noqa: PLR0917 - the signature of HTTPAdapter.send, which requests calls
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=self._timeout_s if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


class _TradingClient(TradingClient):
    """alpaca-py's client with its retry off, a socket timeout and a header hook.

    Tracks its calls in flight so a client retired after a deadline closes
    its session only when the abandoned thread is done with it.
    """

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        paper: bool,
        url_override: str | None,
        socket_timeout_s: float,
        on_headers: Callable[[_RateHeaders], None],
    ) -> None:
        super().__init__(api_key, secret_key, paper=paper, url_override=url_override)
        self._retry = 0
        adapter = _TimeoutAdapter(socket_timeout_s)
        session: requests.Session = self._session
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.hooks["response"].append(self._hook)
        self._on_headers = on_headers
        self._state_lock = threading.Lock()
        self._in_flight = 0
        self._retired = False

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        headers = response.headers
        self._on_headers(
            _RateHeaders(
                status=response.status_code,
                remaining=_int_or_none(headers.get("X-Ratelimit-Remaining")),
                reset=_float_or_none(headers.get("X-Ratelimit-Reset")),
            )
        )

    def invoke(self, fn: Callable[[TradingClient], T]) -> T:
        """Run ``fn(self)`` (in a worker thread); close the session after if retired meanwhile."""
        with self._state_lock:
            self._in_flight += 1
        try:
            return fn(self)
        finally:
            with self._state_lock:
                self._in_flight -= 1
                close = self._retired and self._in_flight == 0
            if close:
                self._session.close()

    def retire(self) -> None:
        """No new calls; close the session now, or when the last call in flight ends."""
        with self._state_lock:
            self._retired = True
            close = self._in_flight == 0
        if close:
            self._session.close()


class AlpacaBroker:
    """The ``Broker`` for Alpaca (paper by default); see the module docstring."""

    name = "alpaca"

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        paper: bool = True,
        base_url: str | None = None,
        timeout_s: float = 15.0,
        max_read_retries: int = 3,
        backoff_s: float = 0.5,
        rate_limit_per_min: int = 200,
        sleep: Sleep = anyio.sleep,
        monotonic: Clockf = time.monotonic,
        wallclock: Clockf = time.time,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if max_read_retries < 0:
            raise ValueError("max_read_retries must be >= 0")
        self.timeout_s = timeout_s
        self.read_backoff = Backoff(base_s=backoff_s, jitter=0.5, max_attempts=max_read_retries + 1)
        """Reads: ``backoff_s * 2**(n-1) * [0.5, 1.5)`` before retry n, ``max_read_retries``."""
        self.rate_limit_remaining: int | None = None
        self._api_key = api_key
        self._secret_key = secret_key
        self._paper = paper
        self._base_url = base_url
        self._sleep = sleep
        self._wallclock = wallclock
        self._limiter = RateLimiter(
            rate_limit_per_min, RATE_WINDOW_S, monotonic=monotonic, sleep=sleep
        )
        self._headers_lock = threading.Lock()
        self._seen: _RateHeaders | None = None
        self._client = self._new_client()

    # ------------------------------------------------------------ protocol

    async def account(self) -> BrokerAccount:
        """Cash, equity and the trading flags (check ``can_trade`` at cycle start)."""
        raw = await self._read("account", lambda c: c.get_account())
        return _to_account(_expect(raw, TradeAccount, "account"))

    async def positions(self) -> list[BrokerPosition]:
        """Every open position; a fractional quantity is a ``BrokerError`` naming the symbol."""
        raw = await self._read("positions", lambda c: c.get_all_positions())
        if not isinstance(raw, list):
            raise BrokerError("alpaca positions: malformed answer")
        return [_to_position(_expect(p, Position, "positions")) for p in raw]

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        """Our order by its client order id, or None if Alpaca has none (404)."""
        what = f"order lookup {client_order_id}"
        try:
            raw = await self._retrying(what, lambda c: c.get_order_by_client_id(client_order_id))
        except _Failure as failure:
            if failure.kind == "http" and failure.status == 404:
                return None
            raise _read_error(what, failure) from None
        return _to_order(_expect(raw, Order, what))

    async def submit(self, request: OrderRequest) -> BrokerOrder:
        """Place a market day order, or a GTC stop sell when ``request.stop_price`` is set.

        Whole shares only. The stop price is sent rounded to Alpaca's tick
        (nearest, ties up: see ``stop_tick``). Never retried; failures map as
        the module docstring says (an order alpaca-py refuses to build, a stop
        price that rounds to 0 included, is ``OrderRejected`` with nothing sent).
        """
        try:
            order = _order_request(request)
        except pydantic.ValidationError as exc:  # nothing was sent
            raise OrderRejected(f"invalid order: {_short(str(exc))}") from None
        what = f"submit {request.client_order_id} ({_describe(request)})"
        try:
            raw = await self._attempt(lambda c: c.submit_order(order))
            if not isinstance(raw, Order):
                raise _Failure("malformed", None, "answer is not an order")
            return _to_order(raw)
        except _Failure as failure:
            raise _submission_error(what, failure) from None
        except BrokerError as exc:
            # Alpaca created an order we cannot represent: it exists, so this is no rejection.
            raise SubmissionOutcomeUnknown(f"alpaca {what}: {exc}") from None

    async def cancel(self, client_order_id: str) -> None:
        """Cancel our order if it is still working; unknown or final orders are left as they are.

        Read the outcome with ``order_by_client_id`` (a cancel can race a fill).
        """
        order = await self.order_by_client_id(client_order_id)
        if order is None or order.status.terminal:
            return
        broker_id = order.broker_order_id
        what = f"cancel {client_order_id}"
        try:
            await self._retrying(what, lambda c: c.cancel_order_by_id(broker_id))
        except _Failure as failure:
            # 404: gone; 422 "order is not cancelable": it reached a final state meanwhile.
            if failure.kind == "http" and failure.status in (404, 422):
                return
            raise _read_error(what, failure) from None

    async def clock(self) -> MarketClock:
        """Alpaca's market clock."""
        raw = await self._read("clock", lambda c: c.get_clock())
        value = _expect(raw, Clock, "clock")
        return MarketClock(
            timestamp=value.timestamp,
            is_open=bool(value.is_open),
            next_open=value.next_open,
            next_close=value.next_close,
        )

    async def calendar(self, start: dt.date, end: dt.date) -> list[CalendarDay]:
        """Trading days in ``[start, end]`` with their open and close (New York, early closes)."""
        filters = GetCalendarRequest(start=start, end=end)
        raw = await self._read("calendar", lambda c: c.get_calendar(filters))
        if not isinstance(raw, list):
            raise BrokerError("alpaca calendar: malformed answer")
        days = []
        for item in raw:
            day = _expect(item, Calendar, "calendar")
            days.append((day.date, _new_york(day.open), _new_york(day.close)))
        return days

    async def closing_equity(self, sessions: Sequence[dt.date]) -> dict[dt.date, float]:
        """Equity at the close of each of ``sessions`` Alpaca's daily history tells (see above)."""
        now = dt.datetime.fromtimestamp(self._wallclock(), NEW_YORK)
        wanted = sorted({s for s in sessions if _has_closed(s, now)})
        if not wanted:
            return {}
        what = f"portfolio history {wanted[0]}..{wanted[-1]}"
        filters = _history_request(wanted[0], wanted[-1], now)
        try:
            raw = await self._read(what, lambda c: c.get_portfolio_history(filters))
            closes = _daily_closes(_expect(raw, PortfolioHistory, what))
        except (BrokerError, BrokerUnavailable) as exc:  # not AccountBlocked: that propagates
            log.warning("closing_equity_unavailable", broker=self.name, error=str(exc))
            return {}
        return {s: closes[s] for s in wanted if s in closes}

    async def account_fills(self, since: dt.datetime) -> list[AccountFill]:
        """Every fill in the account at or after ``since``, manual ones too, oldest first.

        Raises as the reads do (see "Account fills" in the module docstring).
        """
        if since.tzinfo is None or since.utcoffset() is None:
            raise ValueError(f"since must be timezone-aware, not {since!r}")
        after = _rfc3339_seconds(since - FILLS_AFTER_SLACK)
        fills: dict[str, AccountFill] = {}
        token: str | None = None
        while True:
            page = await self._fills_page(after, token)
            for item in page:
                fill = _to_fill(item)
                if fill is not None and fill.at >= since:
                    fills[fill.activity_id] = fill
            if len(page) < FILLS_PAGE_SIZE:
                break
            last = _activity_id(page[-1])
            if last == token:
                raise BrokerError(f"alpaca account fills: page token {token} did not advance")
            token = last
        return sorted(fills.values(), key=lambda f: (f.at, f.activity_id))

    async def _fills_page(self, after: str, token: str | None) -> list[Mapping[str, Any]]:
        """One page of fill activities after ``after``, from ``token`` on (a read)."""
        params: dict[str, str | int] = {
            "after": after,
            "direction": "asc",
            "page_size": FILLS_PAGE_SIZE,
        }
        what = f"account fills after {after}"
        if token is not None:
            params["page_token"] = token
            what += f" from {token}"
        raw = await self._read(what, lambda c: c.get(FILLS_PATH, params))
        items: list[Mapping[str, Any]] = (
            [i for i in raw if isinstance(i, Mapping)] if isinstance(raw, list) else []
        )
        if not isinstance(raw, list) or len(items) != len(raw):
            raise BrokerError(f"alpaca {what}: malformed answer (not a list of activities)")
        return items

    async def close(self) -> None:
        """Close the HTTP session (at once, or when an abandoned call finishes)."""
        self._client.retire()

    # ------------------------------------------------------------ calls

    def _new_client(self) -> _TradingClient:
        return _TradingClient(
            self._api_key,
            self._secret_key,
            paper=self._paper,
            url_override=self._base_url,
            socket_timeout_s=2 * self.timeout_s,
            on_headers=self._record_headers,
        )

    def _record_headers(self, seen: _RateHeaders) -> None:
        """Called by the response hook in a worker thread; applied on the event loop."""
        with self._headers_lock:
            self._seen = seen

    def _apply_rate_headers(self) -> bool:
        """Fold the last answer's rate-limit headers in; True if the limiter was paused."""
        with self._headers_lock:
            seen, self._seen = self._seen, None
        if seen is None:
            return False
        if seen.remaining is not None:
            self.rate_limit_remaining = seen.remaining
        if seen.reset is None or not (seen.status == 429 or seen.remaining == 0):
            return False
        wait = min(max(seen.reset - self._wallclock(), 0.0), RATE_WINDOW_S)
        self._limiter.pause(wait)
        return wait > 0

    async def _attempt(self, fn: Callable[[TradingClient], T]) -> T:
        """One rate-limited call in a worker thread under the deadline; failures as ``_Failure``."""
        await self._limiter.acquire()
        client = self._client
        try:
            with anyio.fail_after(self.timeout_s):
                return await anyio.to_thread.run_sync(client.invoke, fn, abandon_on_cancel=True)
        except TimeoutError:
            self._replace(client)
            raise _Failure("timeout", None, f"no answer within {self.timeout_s:g}s") from None
        except anyio.get_cancelled_exc_class():
            self._replace(client)  # the caller gave up: the thread is abandoned all the same
            raise
        except APIError as exc:
            failure = _Failure("http", exc.status_code, _api_message(exc))
            failure.paused = self._apply_rate_headers()
            raise failure from None
        except requests.JSONDecodeError as exc:  # a RequestException, but the server answered
            raise _Failure(
                "malformed", None, f"malformed answer: body is not JSON: {_short(str(exc))}"
            ) from None
        except requests.RequestException as exc:
            self._replace(client)
            raise _Failure(
                "connection", None, f"{type(exc).__name__}: {_short(str(exc))}"
            ) from None
        except (pydantic.ValidationError, ValueError, KeyError, TypeError) as exc:
            raise _Failure(
                "malformed", None, f"malformed answer: {type(exc).__name__}: {_short(str(exc))}"
            ) from None
        finally:
            self._apply_rate_headers()

    def _replace(self, client: _TradingClient) -> None:
        """Swap in a fresh client after a deadline; the old one closes when its thread ends."""
        if self._client is client:
            self._client = self._new_client()
            client.retire()

    async def _read(self, what: str, fn: Callable[[TradingClient], T]) -> T:
        """A read with bounded retries; every failure as a broker error."""
        try:
            return await self._retrying(what, fn)
        except _Failure as failure:
            raise _read_error(what, failure) from None

    async def _retrying(self, what: str, fn: Callable[[TradingClient], T]) -> T:
        """Retry 429/5xx/timeouts/connection errors with jittered backoff.

        Raises ``BrokerUnavailable`` once retries are spent and the ``_Failure``
        itself when it is not worth retrying (the caller maps it).
        """
        try:
            return await retry(
                lambda: self._attempt(fn),
                policy=self.read_backoff,
                retry_on=_retryable,
                sleep=self._sleep,
                retry_after=_paused,
            )
        except _Failure as failure:
            if not failure.retryable:
                raise
            tries = self.read_backoff.max_attempts
            raise BrokerUnavailable(
                f"alpaca {what}: {failure.describe()} (gave up after {tries} tries)"
            ) from None


def _retryable(error: Exception) -> bool:
    return isinstance(error, _Failure) and error.retryable


def _paused(error: Exception) -> float | None:
    """No wait of our own once a server reset paused the limiter: that pause is the wait."""
    return 0.0 if isinstance(error, _Failure) and error.paused else None


# ---------------------------------------------------------------- error mapping


def _read_error(what: str, failure: _Failure) -> BrokerError | AccountBlocked:
    if failure.kind == "http" and failure.status in (401, 403):
        return AccountBlocked(f"alpaca {what}: {failure.describe()}")
    return BrokerError(f"alpaca {what}: {failure.describe()}")


def _submission_error(
    what: str, failure: _Failure
) -> SubmissionOutcomeUnknown | BrokerUnavailable | BrokerError | AccountBlocked:
    status = failure.status
    text = f"alpaca {what}: {failure.describe()}"
    if failure.kind != "http" or status is None or status >= 500:
        return SubmissionOutcomeUnknown(text)
    message = failure.message.lower()
    if status == 429:
        return BrokerUnavailable(text)
    if status == 422 and DUPLICATE_MESSAGE in message:
        return DuplicateClientOrderId(text)
    if status == 401 or (status == 403 and any(m in message for m in BLOCKED_MARKERS)):
        return AccountBlocked(text)
    return OrderRejected(failure.message)


def _api_message(exc: APIError) -> str:
    text = str(exc)
    try:
        body = json.loads(text)
    except ValueError:
        return _short(text[:200])
    if isinstance(body, dict) and "message" in body:
        return _short(str(body["message"])[:200])
    return _short(text[:200])


def _short(text: str) -> str:
    """Cut a server body or exception text to a loggable length (keys travel in headers)."""
    return text[:300]


# ---------------------------------------------------------------- mapping


def _expect(value: object, kind: type[T], what: str) -> T:
    if not isinstance(value, kind):
        raise BrokerError(f"alpaca {what}: malformed answer ({type(value).__name__})")
    return value


def _whole(value: object, what: str) -> int:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BrokerError(f"alpaca: {what} is not a number: {value!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise BrokerError(f"alpaca: {what} is not a whole number of shares: {value}")
    return int(number)


def _money(value: object, what: str) -> float:
    if value is None:
        raise BrokerError(f"alpaca account: {what} is missing")
    try:
        return float(str(value))
    except ValueError:
        raise BrokerError(f"alpaca account: {what} is not a number: {value!r}") from None


def _optional_float(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(str(value))
    except ValueError:
        return None


def stop_tick(price: float) -> Decimal:
    """``price`` on Alpaca's tick: 0.01 at or above $1.00, 0.0001 below; nearest, ties up.

    Rounds the shortest decimal form of the float (``str``), so 123.455 is
    123.46 and 0.12345 is 0.1235 (ROUND_HALF_UP). A price just below $1.00
    that rounds to 1.0000 is a valid whole-cent price as well.
    """
    number = Decimal(str(price))
    tick = Decimal("0.01") if number >= 1 else Decimal("0.0001")
    return number.quantize(tick, rounding=ROUND_HALF_UP)


def _order_request(request: OrderRequest) -> MarketOrderRequest | StopOrderRequest:
    """alpaca-py's request for ``request``.

    Raises ``pydantic.ValidationError`` (alpaca-py refused it) or ``OrderRejected``
    (a stop price that rounds to 0 on the tick).
    """
    side = AlpacaSide(request.side.value)
    if request.stop_price is None:
        return MarketOrderRequest(
            symbol=request.symbol,
            qty=request.qty,
            side=side,
            time_in_force=TimeInForce.DAY,
            client_order_id=request.client_order_id,
        )
    stop = stop_tick(request.stop_price)
    if stop <= 0:
        raise OrderRejected(
            f"invalid order: stop price {request.stop_price!r} rounds to {stop} on Alpaca's tick"
        )
    return StopOrderRequest(
        symbol=request.symbol,
        qty=request.qty,
        side=side,
        time_in_force=TimeInForce.GTC,
        stop_price=float(stop),
        client_order_id=request.client_order_id,
    )


def _describe(request: OrderRequest) -> str:
    text = f"{request.side} {request.qty} {request.symbol}"
    if request.stop_price is not None:
        text += f" stop {stop_tick(request.stop_price)} gtc"
    return text


def _to_account(raw: TradeAccount) -> BrokerAccount:
    return BrokerAccount(
        cash=_money(raw.cash, "cash"),
        equity=_money(raw.equity, "equity"),
        last_equity=_money(raw.last_equity, "last_equity"),
        buying_power=_money(raw.buying_power, "buying_power"),
        trading_blocked=bool(raw.trading_blocked),
        account_blocked=bool(raw.account_blocked),
        trade_suspended_by_user=bool(raw.trade_suspended_by_user),
        pattern_day_trader=bool(raw.pattern_day_trader),
        daytrade_count=int(raw.daytrade_count or 0),
    )


def _to_position(raw: Position) -> BrokerPosition:
    symbol = str(raw.symbol)
    return BrokerPosition(
        symbol=symbol,
        qty=_whole(raw.qty, f"position {symbol} qty"),
        avg_entry_price=_money(raw.avg_entry_price, f"{symbol} avg_entry_price"),
        market_value=_optional_float(raw.market_value),
    )


def _to_status(status: OrderStatus, filled_qty: int) -> BrokerOrderStatus:
    direct = _DIRECT_STATUS.get(status)
    if direct is not None:
        return direct
    # Working states without a name of their own (done_for_day, pending_cancel, held, ...).
    return BrokerOrderStatus.PARTIALLY_FILLED if filled_qty > 0 else BrokerOrderStatus.ACCEPTED


def _to_order(raw: Order) -> BrokerOrder:
    symbol = str(raw.symbol)
    qty = _whole(raw.qty, f"order {raw.client_order_id} ({symbol}) qty")
    filled = _whole(raw.filled_qty or 0, f"order {raw.client_order_id} ({symbol}) filled_qty")
    status = OrderStatus(raw.status)
    if raw.side is None:
        raise BrokerError(f"alpaca order {raw.client_order_id}: no side (not a simple order)")
    side = OrderSide(raw.side.value)
    reason: str | None = None
    if status == OrderStatus.REPLACED:
        reason = f"replaced by order {raw.replaced_by}"
    elif status == OrderStatus.REJECTED:
        reason = "rejected by alpaca"
    return BrokerOrder(
        client_order_id=str(raw.client_order_id),
        broker_order_id=str(raw.id),
        symbol=symbol,
        side=side,
        qty=qty,
        filled_qty=filled,
        filled_avg_price=_optional_float(raw.filled_avg_price) if filled > 0 else None,
        status=_to_status(status, filled),
        submitted_at=raw.submitted_at,
        filled_at=raw.filled_at,
        reject_reason=reason,
        stop_price=_optional_float(raw.stop_price),
    )


def _activity_id(item: Mapping[str, Any]) -> str:
    value = item.get("id")
    if not isinstance(value, str) or not value:
        raise BrokerError(f"alpaca account fills: activity without an id: {_short(repr(item))}")
    return value


def _to_fill(item: Mapping[str, Any]) -> AccountFill | None:
    """A fill activity as an ``AccountFill``; None for an activity that is not a fill."""
    activity_id = _activity_id(item)
    if item.get("activity_type", "FILL") != "FILL":
        return None
    what = f"account fill {activity_id}"
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise BrokerError(f"alpaca {what}: no symbol")
    side = FILL_SIDES.get(str(item.get("side")))
    if side is None:
        raise BrokerError(f"alpaca {what} ({symbol}): unknown side {item.get('side')!r}")
    price = _positive(item.get("price"), f"{what} ({symbol}) price")
    order_id = item.get("order_id")
    return AccountFill(
        activity_id=activity_id,
        symbol=symbol,
        side=side,
        qty=_fill_qty(item.get("qty"), activity_id, symbol),
        price=float(price),
        at=_instant(item.get("transaction_time"), f"{what} ({symbol})"),
        broker_order_id=str(order_id) if order_id else None,
    )


def _positive(value: object, what: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BrokerError(f"alpaca {what} is not a number: {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise BrokerError(f"alpaca {what} is not a positive number: {value!r}")
    return number


def _fill_qty(value: object, activity_id: str, symbol: str) -> int:
    """Whole shares; a fraction is kept as the nearest whole number, with a warning."""
    number = _positive(value, f"account fill {activity_id} ({symbol}) qty")
    whole = int(number.to_integral_value(ROUND_HALF_UP))
    if number != whole:
        log.warning(
            "account_fill_fractional_qty",
            broker="alpaca",
            activity_id=activity_id,
            symbol=symbol,
            qty=str(number),
            kept=whole,
        )
    return whole


def _instant(value: object, what: str) -> dt.datetime:
    """An RFC 3339 time, timezone-aware (Alpaca's are UTC; a naive one is read as UTC)."""
    try:
        stamp = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise BrokerError(f"alpaca {what}: transaction_time is not a time: {value!r}") from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


def _rfc3339_seconds(value: dt.datetime) -> str:
    """UTC, floored to the second, as Alpaca's ``after``/``until`` take it."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _has_closed(session: dt.date, now: dt.datetime) -> bool:
    """Whether 16:00 New York of ``session`` (the latest any session closes) is past."""
    return now >= dt.datetime.combine(session, LATEST_CLOSE, NEW_YORK)


def _history_request(first: dt.date, last: dt.date, now: dt.datetime) -> GetPortfolioHistoryRequest:
    """Daily points from ``first`` through ``last``: up to the next midnight, or now if sooner."""
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), NEW_YORK)
    return GetPortfolioHistoryRequest(
        timeframe="1D",
        start=dt.datetime.combine(first, dt.time(0), NEW_YORK),
        end=min(end, now),
    )


def _daily_closes(history: PortfolioHistory) -> dict[dt.date, float]:
    """Each daily point's equity by the New York date of its stamp; unusable values left out."""
    if history.timeframe != "1D":
        raise BrokerError(f"alpaca portfolio history: timeframe {history.timeframe!r}, not 1D")
    if len(history.timestamp) != len(history.equity):
        raise BrokerError(
            f"alpaca portfolio history: {len(history.timestamp)} timestamps "
            f"but {len(history.equity)} equity values"
        )
    closes: dict[dt.date, float] = {}
    for stamp, equity in zip(history.timestamp, history.equity, strict=True):
        try:
            day = dt.datetime.fromtimestamp(stamp, NEW_YORK).date()
        except (OverflowError, OSError, ValueError):
            raise BrokerError(
                f"alpaca portfolio history: timestamp {stamp} is not a time"
            ) from None
        if math.isfinite(equity) and equity > 0:
            closes[day] = float(equity)
    return closes


def _new_york(value: dt.datetime) -> dt.datetime:
    """Alpaca's calendar times are New York wall times; the SDK leaves them naive."""
    if value.tzinfo is None:
        return value.replace(tzinfo=NEW_YORK)
    return value.astimezone(NEW_YORK)


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


__all__ = ["AlpacaBroker", "CalendarDay", "stop_tick"]
