"""A stateful fake of Alpaca's Trading API on 127.0.0.1 for the real alpaca-py client.

Endpoints (JSON shapes as in Alpaca's OpenAPI description): ``GET /v2/account``,
``GET /v2/positions``, ``GET /v2/positions/{symbol}``, ``POST /v2/orders``
(whole shares: market ``day``, or stop sell ``gtc``), ``GET /v2/orders``
(``status`` open/closed/all), ``GET /v2/orders/{id}``, ``GET /v2/orders:by_client_order_id``,
``DELETE /v2/orders/{id}``, ``GET /v2/clock``, ``GET /v2/calendar``,
``GET /v2/account/portfolio/history`` (daily points only: ``timeframe=1D``),
``GET /v2/account/activities/FILL`` and ``GET /v2/account/activities``
(``activity_types`` absent or naming ``FILL``; other types have no entries).

State: cash, positions and orders, behind one lock. A client order id is
unique forever (422 ``40010001 client_order_id must be unique``, also after a
cancel). Fills follow ``fill_mode``: "immediate" (filled at ``prices[symbol]``
on submit), "accepted" (stays accepted until ``fill_all()``/``fill()``) or
"partial" (``partial_fraction`` of the shares on submit, the rest by
``fill``). Fills move cash (no commission) and positions. Buys need cash;
sells need shares (no shorting): a new sell, market or stop, may sell at most
the position less the unfilled shares of every open sell order of the symbol
(403 ``40310000 insufficient qty available for order (requested: N,
available: M)``, as Alpaca answers; positions report the rest as
``qty_available``).

Stop orders: ``type=stop`` must be a sell, ``time_in_force=gtc``, with a
positive ``stop_price`` on Alpaca's tick (whole cents at or above $1.00,
four decimals below; else 422 ``42210000 sub-penny increment does not
fulfill minimum pricing criteria``); other stops are a 422. Whatever
``fill_mode`` says, a stop is never filled on submit: the POST answers
``accepted`` and the order then rests as ``new`` until ``trigger_stops``
fills it, a cancel (``DELETE``) ends it or ``split`` adjusts it; ``fill``
may still fill one by hand, ``fill_all`` leaves stops alone. Orders report
their real ``type``/``order_type``, ``time_in_force`` and ``stop_price`` (a
string, as Alpaca sends it). Market orders must be ``day``.

Test helpers: ``set_position``, ``add_manual_fill``, ``set_equity_history``,
``position_qty``, ``fill``, ``fill_all``, ``orders_for``, ``order_status``,
``open_orders(symbol=None)`` (the open orders as plain dicts),
``trigger_stops(symbol, price)`` (fills the stops the price reached, at that
price), ``split(symbol, ratio, cancel_on_reverse=True)`` (a split of the
position, the price and the open stops), ``requests_to``, ``order_posts``,
and the faults below; each says what it does in its docstring.

Fill activities: every fill of an order (one per fill: on submit, by ``fill``
or ``fill_all``; stamped as orders are, in real UTC time, not ``wallclock``)
and every manual fill a test adds
with ``add_manual_fill`` (the owner trading by hand: a filled order of its own
with a random client order id, moving the position and cash as a fill does;
a manual sell may go short). Ids are ``<New York time to the ms>::<uuid>`` as
Alpaca's are. The activities endpoints take ``after`` and ``until`` (RFC 3339
or a date, naive read as UTC; both exclusive), ``direction`` (default
``desc``), ``page_size`` (1..100, default 100) and ``page_token`` (an
activity id: the page starts right after it in ``direction``; an unknown one
is a 422); ``date`` is not served (422).

Portfolio history: the daily closing equity a test set with
``set_equity_history({session: equity})``, plus, once today's session (by
``wallclock``) has opened and unless a test set today's point, today's live
equity, as Alpaca reports the current day. A request picks its span as Alpaca
documents (``start``, ``end``, ``period``, at most two; ``period`` defaults to
1M and ``end`` to now; a 1D ``start``/``end`` counts by its New York date). Each
point is stamped by ``history_stamp``: "midnight" (00:00 New York of the
session), "close" (the session's close) or "evening" (00:00 UTC after the
session's date, i.e. 19:00/20:00 New York: the stamps of Alpaca's documented
1D example). ``profit_loss`` and ``profit_loss_pct`` are against the first
point (``base_value``), as Alpaca does for 1D.

Every answer carries ``X-Ratelimit-Limit/Remaining/Reset`` from a fixed
60-second window read off ``wallclock``; past ``rate_limit`` requests in a
window the answer is a real 429.

Faults, served in the order injected: ``fail_next`` and ``hang_next`` take the
next requests of any kind, as does ``malformed_next`` (a 200 whose body is
not JSON); ``reject_next`` and ``accept_then_hang_next`` take
the next order submissions only. A held request waits for ``release`` (set by
``stop()``, so no thread outlives the fake); ``holding`` is set while one is
held, for tests to synchronise on.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
import re
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from zoneinfo import ZoneInfo

from tests.fakes import Response, json_response

NEW_YORK = ZoneInfo("America/New_York")
HANG_LIMIT_S = 60.0  # a held request answers by itself after this long even if never released
FillMode = Literal["immediate", "accepted", "partial"]
HistoryStamp = Literal["midnight", "close", "evening"]
PERIOD = re.compile(r"^([1-9][0-9]*)([DWMA])$")
OPEN_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled"})
SUB_PENNY = "sub-penny increment does not fulfill minimum pricing criteria"


@dataclass(frozen=True)
class TradingRequest:
    """One request the fake received (``client_order_id`` from the body or the query)."""

    method: str
    path: str
    query: dict[str, str]
    client_order_id: str | None
    body: dict[str, Any] | None


@dataclass
class _Fault:
    kind: Literal["status", "hang", "reject", "accept_then_hang", "malformed"]
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: int
    created_at: dt.datetime
    filled_qty: int = 0
    filled_avg_price: float | None = None
    status: str = "accepted"
    filled_at: dt.datetime | None = None
    canceled_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    type: str = "market"
    time_in_force: str = "day"
    stop_price: Decimal | None = None

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    @property
    def is_open_stop(self) -> bool:
        return self.type == "stop" and self.status in OPEN_STATUSES


@dataclass(frozen=True)
class _Activity:
    """One fill activity (``qty`` the shares of this fill; ``cum_qty`` the order's so far)."""

    id: str
    symbol: str
    side: str
    qty: Decimal
    price: float
    at: dt.datetime
    order_id: str
    cum_qty: Decimal
    leaves_qty: Decimal
    order_status: str


@dataclass
class _Position:
    qty: Decimal
    avg_entry_price: float


def _stamp(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(value: float | Decimal) -> str:
    number = Decimal(str(value))
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def _activity_id(at: dt.datetime) -> str:
    return f"{at.astimezone(NEW_YORK).strftime('%Y%m%d%H%M%S%f')[:-3]}::{uuid.uuid4()}"


def _instant(text: str) -> dt.datetime:
    """An RFC 3339 time or a date; naive is UTC."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _error(status: int, code: int, message: str) -> Response:
    return json_response(status, {"code": code, "message": message})


def _tick(price: Decimal) -> Decimal:
    """Alpaca's price increment: a cent at or above $1.00, a hundredth of a cent below."""
    return Decimal("0.01") if price >= 1 else Decimal("0.0001")


def _stop_terms(body: dict[str, Any]) -> Decimal | Response:
    """A stop order's stop price, or the 422 that refuses it (sell, gtc, on the tick)."""
    if body.get("side") != "sell":
        return _error(422, 40010001, "only stop sell orders are supported by this fake")
    if body.get("time_in_force") != "gtc":
        return _error(422, 40010001, "only gtc stop orders are supported by this fake")
    try:
        stop = Decimal(str(body.get("stop_price")))
    except InvalidOperation:
        return _error(422, 40010001, "invalid stop_price")
    if not stop.is_finite() or stop <= 0:
        return _error(422, 40010001, "stop_price must be > 0")
    if stop != stop.quantize(_tick(stop)):
        return _error(422, 42210000, SUB_PENNY)
    return stop


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: nothing leaks
    block_on_close = True


class FakeAlpacaTradingServer:
    """The fake Trading API; a context manager (``with FakeAlpacaTradingServer(...) as fake``)."""

    def __init__(
        self,
        api_key: str = "test-key-id",
        secret_key: str = "test-secret",
        *,
        cash: float = 100_000.0,
        prices: dict[str, float] | None = None,
        fill_mode: FillMode = "immediate",
        partial_fraction: float = 0.5,
        rate_limit: int = 200,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.secret_key = secret_key
        self.cash = cash
        self.last_equity = cash
        self.prices: dict[str, float] = dict(prices or {})
        self.fill_mode: FillMode = fill_mode
        self.partial_fraction = partial_fraction
        self.rate_limit = rate_limit
        self.wallclock = wallclock
        self.trading_blocked = False
        self.pattern_day_trader = False  # what the account reports (set by tests)
        self.daytrade_count = 0
        self.account_blocked = False
        self.trade_suspended_by_user = False
        self.holidays: set[dt.date] = set()
        self.early_closes: dict[dt.date, dt.time] = {}
        self.equity_history: dict[dt.date, float] = {}
        self.history_stamp: HistoryStamp = "midnight"
        self.requests: list[TradingRequest] = []
        self.release = threading.Event()
        self.holding = threading.Event()
        self._positions: dict[str, _Position] = {}
        self._orders: dict[str, _Order] = {}
        self._by_client: dict[str, _Order] = {}
        self._fills: list[_Activity] = []
        self._faults: deque[_Fault] = deque()
        self._submit_faults: deque[_Fault] = deque()
        self._window_reset = 0.0
        self._window_count = 0
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Listen on 127.0.0.1:0 and serve in a background thread; returns the base URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._dispatch(self)

            def do_POST(self) -> None:
                fake._dispatch(self)

            def do_DELETE(self) -> None:
                fake._dispatch(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-alpaca", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Release held requests, stop serving and join every thread."""
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> FakeAlpacaTradingServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ faults

    def fail_next(
        self,
        n: int,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (a 429 also says Remaining: 0)."""
        if status == 429 and body is None:
            body = {"code": 42910000, "message": "rate limit exceeded"}
        fault = _Fault("status", status=status, body=body, headers=dict(headers or {}))
        with self._lock:
            self._faults.extend(fault for _ in range(n))

    def hang_next(self, n: int = 1) -> None:
        """Hold the next ``n`` requests, unprocessed, until ``release`` (then answer 503)."""
        with self._lock:
            self._faults.extend(_Fault("hang") for _ in range(n))

    def accept_then_hang_next(self, n: int = 1) -> None:
        """Create the next ``n`` submitted orders, then withhold the answer until ``release``."""
        with self._lock:
            self._submit_faults.extend(_Fault("accept_then_hang") for _ in range(n))

    def malformed_next(self, n: int = 1, body: bytes = b'[{"id": "2024010') -> None:
        """Answer the next ``n`` requests 200 with ``body`` (by default, cut-off JSON)."""
        with self._lock:
            self._faults.extend(_Fault("malformed", status=200, body=body) for _ in range(n))

    def reject_next(self, n: int, message: str, status: int = 422) -> None:
        """Refuse the next ``n`` submissions with ``status`` (422 or 403) and ``message``."""
        code = 40310000 if status == 403 else 42210000
        fault = _Fault("reject", status=status, body={"code": code, "message": message})
        with self._lock:
            self._submit_faults.extend(fault for _ in range(n))

    # ------------------------------------------------------------ state

    def set_position(self, symbol: str, qty: float, price: float) -> None:
        """Change a position behind the client's back (``qty`` 0 removes it)."""
        with self._lock:
            if qty == 0:
                self._positions.pop(symbol, None)
            else:
                self._positions[symbol] = _Position(Decimal(str(qty)), price)
            self.prices.setdefault(symbol, price)

    def add_manual_fill(
        self,
        symbol: str,
        side: str,
        qty: float,
        price: float,
        at: dt.datetime | None = None,
    ) -> str:
        """The owner traded by hand: a filled order, its fill activity, position and cash moved.

        ``side`` is "buy", "sell" or "sell_short"; ``qty`` may be fractional
        (then no order is listed: the fake's orders are whole shares; the
        activity names an order id all the same); ``at`` (default now, real UTC
        time as orders are stamped) must be aware. Returns the activity id.
        """
        if side not in ("buy", "sell", "sell_short"):
            raise ValueError(f"side must be buy, sell or sell_short, not {side!r}")
        when = at or dt.datetime.now(dt.UTC)
        if when.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        shares = Decimal(str(qty))
        if not shares > 0:
            raise ValueError(f"qty must be > 0, not {qty}")
        order_id = str(uuid.uuid4())
        with self._lock:
            if shares == shares.to_integral_value():
                self._add_filled_order(order_id, symbol, side, int(shares), price, when)
            self.prices.setdefault(symbol, price)
            self._move(symbol, shares if side == "buy" else -shares, price)
            activity = _Activity(
                _activity_id(when),
                symbol,
                side,
                shares,
                price,
                when,
                order_id,
                cum_qty=shares,
                leaves_qty=Decimal(0),
                order_status="filled",
            )
            self._fills.append(activity)
            return activity.id

    def _add_filled_order(
        self, order_id: str, symbol: str, side: str, qty: int, price: float, at: dt.datetime
    ) -> None:
        """A manual trade's order: filled at once, under a client order id not ours."""
        order_side = "buy" if side == "buy" else "sell"
        order = _Order(order_id, str(uuid.uuid4()), symbol, order_side, qty, at)
        order.status, order.filled_qty, order.filled_avg_price = "filled", qty, price
        order.filled_at = order.updated_at = at
        self._orders[order.id] = order
        self._by_client[order.client_order_id] = order

    def set_equity_history(self, history: Mapping[dt.date, float]) -> None:
        """Set the account's equity at the close of past sessions (replaces what was set)."""
        with self._lock:
            shut = sorted(d for d in history if self._session(d) is None)
            if shut:
                raise ValueError(f"not sessions of the fake's market: {shut}")
            self.equity_history = dict(history)

    def position_qty(self, symbol: str) -> float:
        with self._lock:
            position = self._positions.get(symbol)
            return float(position.qty) if position else 0.0

    def fill(self, client_order_id: str, qty: int | None = None) -> None:
        """Fill ``qty`` more shares (all that remain by default) of an open order."""
        with self._lock:
            order = self._by_client[client_order_id]
            assert order.status in OPEN_STATUSES, f"order {client_order_id} is {order.status}"
            self._fill(order, order.qty - order.filled_qty if qty is None else qty)

    def fill_all(self) -> None:
        """Fill every open market order completely (stops wait for ``trigger_stops``)."""
        with self._lock:
            for order in self._orders.values():
                if order.status in OPEN_STATUSES and order.type == "market":
                    self._fill(order, order.remaining)

    def trigger_stops(self, symbol: str, price: float) -> list[str]:
        """The price of ``symbol`` trades at ``price``: fill the stops it reached, at ``price``.

        Every open stop order of ``symbol`` whose stop price is at or above
        ``price`` (a decline to the stop or a gap through it) fills its
        remaining shares at ``price``, oldest first, with a fill activity as
        every fill has; the position and cash follow (shares taken away behind
        the fake's back with ``set_position`` may leave it short).
        ``prices[symbol]`` becomes ``price``. Returns the client order ids
        filled, oldest first.
        """
        level = Decimal(str(price))
        if not level.is_finite() or level <= 0:
            raise ValueError(f"price must be > 0, not {price}")
        with self._lock:
            self.prices[symbol] = price
            reached = [
                o
                for o in sorted(self._orders.values(), key=lambda o: o.created_at)
                if o.symbol == symbol
                and o.is_open_stop
                and o.stop_price is not None
                and o.stop_price >= level
            ]
            for order in reached:
                self._fill(order, order.remaining, price)
            return [o.client_order_id for o in reached]

    def split(self, symbol: str, ratio: float, *, cancel_on_reverse: bool = True) -> None:
        """A split of ``symbol``: ``ratio`` new shares for each old one (2.0 forward, 0.1 reverse).

        - The position: ``floor(qty * ratio)`` shares (toward zero for a
          short), ``avg_entry_price / ratio``; the fraction cut off is paid
          out in cash at the new price (cash in lieu); no activity is recorded
          (Alpaca's is a SPLIT activity, which the fake does not serve).
        - ``prices[symbol]`` is divided by ``ratio``.
        - Open stop orders, as FINRA Rule 5330 adjusts open orders: on a
          forward split (``ratio > 1``) quantity ``floor(qty * ratio)`` (the
          filled quantity likewise) and stop price ``stop / ratio`` rounded
          down to the tick; on a reverse split (``ratio < 1``) they are
          canceled, as the Rule's practice for reverse splits is, unless
          ``cancel_on_reverse=False``, which adjusts them by the same formula
          (a stop left with no shares is canceled).
        """
        factor = Decimal(str(ratio))
        if not factor.is_finite() or factor <= 0:
            raise ValueError(f"ratio must be > 0, not {ratio}")
        with self._lock:
            if symbol in self.prices:
                self.prices[symbol] = self.prices[symbol] / ratio
            position = self._positions.get(symbol)
            if position is not None:
                self._split_position(symbol, position, factor)
            now = dt.datetime.now(dt.UTC)
            for order in self._orders.values():
                if order.symbol != symbol or not order.is_open_stop:
                    continue
                if factor < 1 and cancel_on_reverse:
                    order.status, order.canceled_at, order.updated_at = "canceled", now, now
                else:
                    _adjust_stop(order, factor, now)

    def _split_position(self, symbol: str, position: _Position, factor: Decimal) -> None:
        shares = position.qty * factor
        whole = shares.to_integral_value(ROUND_DOWN)
        price = self.prices.get(symbol, position.avg_entry_price / float(factor))
        self.cash += float(shares - whole) * price
        if whole == 0:
            del self._positions[symbol]
        else:
            position.qty = whole
            position.avg_entry_price = position.avg_entry_price / float(factor)

    def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """The open orders (of ``symbol``, or all), oldest first, as plain values.

        Each: ``id``, ``client_order_id``, ``symbol``, ``side``, ``type``,
        ``time_in_force``, ``qty`` and ``filled_qty`` (int), ``stop_price``
        (float, None for a market order) and ``status``.
        """
        with self._lock:
            return [
                {
                    "id": o.id,
                    "client_order_id": o.client_order_id,
                    "symbol": o.symbol,
                    "side": o.side,
                    "type": o.type,
                    "time_in_force": o.time_in_force,
                    "qty": o.qty,
                    "filled_qty": o.filled_qty,
                    "stop_price": None if o.stop_price is None else float(o.stop_price),
                    "status": o.status,
                }
                for o in sorted(self._orders.values(), key=lambda o: o.created_at)
                if o.status in OPEN_STATUSES and (symbol is None or o.symbol == symbol)
            ]

    def orders_for(self, client_order_id: str) -> int:
        """How many orders carry ``client_order_id`` (never more than one)."""
        with self._lock:
            return sum(1 for o in self._orders.values() if o.client_order_id == client_order_id)

    def order_status(self, client_order_id: str) -> str:
        with self._lock:
            return self._by_client[client_order_id].status

    def requests_to(self, method: str, path: str) -> list[TradingRequest]:
        """The recorded requests with this method and path."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    @property
    def order_posts(self) -> int:
        """How many ``POST /v2/orders`` reached the fake."""
        return len(self.requests_to("POST", "/v2/orders"))

    # ------------------------------------------------------------ serving

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: dict[str, Any] | None = None
        body_error = False
        if raw:
            try:
                decoded = json.loads(raw)
                body = decoded if isinstance(decoded, dict) else None
                body_error = body is None
            except ValueError:
                body_error = True
        client_id = (body or {}).get("client_order_id") or query.get("client_order_id")
        request = TradingRequest(
            handler.command, parsed.path, query, str(client_id) if client_id else None, body
        )
        authorized = (
            handler.headers.get("APCA-API-KEY-ID") == self.api_key
            and handler.headers.get("APCA-API-SECRET-KEY") == self.secret_key
        )
        submission = request.method == "POST" and request.path == "/v2/orders"
        hold = False
        with self._lock:
            self.requests.append(request)
            limits = self._count_request()
            fault: _Fault | None = None
            if authorized and self._faults:
                fault = self._faults.popleft()
            elif authorized and submission and self._submit_faults:
                fault = self._submit_faults.popleft()
            if not authorized:
                response = _error(401, 40110000, "request is not authorized")
            elif fault is not None and fault.kind == "hang":
                response = _error(503, 50300000, "released")
                hold = True
            elif fault is not None and fault.kind in ("status", "reject"):
                response = json_response(
                    fault.status, fault.body or {"message": f"injected {fault.status}"}
                )
            elif fault is not None and fault.kind == "malformed":
                response = (200, {"Content-Type": "application/json"}, bytes(fault.body))
            elif int(limits["X-Ratelimit-Remaining"]) < 0:
                response = _error(429, 42910000, "rate limit exceeded")
            elif body_error:
                response = _error(400, 40010000, "request body format is invalid")
            else:
                response = self._route(request)
                hold = fault is not None and fault.kind == "accept_then_hang"
        status, headers, payload = response
        limits["X-Ratelimit-Remaining"] = str(max(0, int(limits["X-Ratelimit-Remaining"])))
        if status == 429:
            limits["X-Ratelimit-Remaining"] = "0"
        headers = {**limits, **headers, **(fault.headers if fault else {})}
        if hold:
            self.holding.set()
            self.release.wait(HANG_LIMIT_S)
        try:
            handler.send_response(status)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            return  # the client gave up (its deadline passed); nothing to answer

    def _count_request(self) -> dict[str, str]:
        now = self.wallclock()
        if now >= self._window_reset:
            self._window_reset = now + 60.0
            self._window_count = 0
        self._window_count += 1
        return {
            "X-Ratelimit-Limit": str(self.rate_limit),
            "X-Ratelimit-Remaining": str(self.rate_limit - self._window_count),
            "X-Ratelimit-Reset": str(math.ceil(self._window_reset)),
        }

    def _route(self, request: TradingRequest) -> Response:
        method, path = request.method, request.path
        if method == "GET" and path == "/v2/account":
            return json_response(200, self._account_json())
        if method == "GET" and path == "/v2/positions":
            return json_response(
                200, [self._position_json(s, p) for s, p in sorted(self._positions.items())]
            )
        if method == "GET" and path.startswith("/v2/positions/"):
            symbol = urllib.parse.unquote(path.removeprefix("/v2/positions/"))
            position = self._positions.get(symbol)
            if position is None:
                return _error(404, 40410000, "position does not exist")
            return json_response(200, self._position_json(symbol, position))
        if method == "POST" and path == "/v2/orders":
            return self._submit(request.body or {})
        if method == "GET" and path == "/v2/orders":
            return self._list_orders(request.query)
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            order = self._by_client.get(request.query.get("client_order_id", ""))
            if order is None:
                return _error(404, 40410000, "order not found")
            return json_response(200, self._order_json(order))
        if path.startswith("/v2/orders/") and method in ("GET", "DELETE"):
            order = self._orders.get(path.removeprefix("/v2/orders/"))
            if order is None:
                return _error(404, 40410000, "order not found")
            if method == "GET":
                return json_response(200, self._order_json(order))
            return self._cancel(order)
        if method == "GET" and path == "/v2/clock":
            return json_response(200, self._clock_json())
        if method == "GET" and path == "/v2/calendar":
            return self._calendar(request.query)
        if method == "GET" and path == "/v2/account/portfolio/history":
            return self._portfolio_history(request.query)
        if method == "GET" and path == "/v2/account/activities":
            types = {t for t in request.query.get("activity_types", "FILL").split(",") if t}
            return self._activities(request.query, fills="FILL" in types)
        if method == "GET" and path.startswith("/v2/account/activities/"):
            kind = path.removeprefix("/v2/account/activities/")
            return self._activities(request.query, fills=kind == "FILL")
        return _error(404, 40410000, "endpoint not found")

    # ------------------------------------------------------------ orders

    def _submit(self, body: dict[str, Any]) -> Response:
        if self.trading_blocked or self.account_blocked or self.trade_suspended_by_user:
            return _error(403, 40310000, "account is not allowed to trade")
        client_id = str(body.get("client_order_id") or uuid.uuid4())
        if len(client_id) > 128:
            return _error(422, 40010001, "client_order_id must be no more than 128 characters")
        if client_id in self._by_client:
            return _error(422, 40010001, "client_order_id must be unique")
        symbol = str(body.get("symbol") or "")
        side = body.get("side")
        kind = body.get("type")
        if kind not in ("market", "stop"):
            return _error(422, 40010001, "only market and stop orders are supported by this fake")
        if kind == "market" and body.get("time_in_force") != "day":
            return _error(422, 40010001, "only day market orders are supported by this fake")
        if side not in ("buy", "sell"):
            return _error(422, 40010001, "invalid side")
        stop = _stop_terms(body) if kind == "stop" else None
        if stop is not None and not isinstance(stop, Decimal):
            return stop
        try:
            qty = Decimal(str(body.get("qty")))
        except InvalidOperation:
            return _error(422, 40010001, "invalid qty")
        if not qty.is_finite() or qty <= 0:
            return _error(422, 40010001, "qty must be > 0")
        if qty != qty.to_integral_value():
            return _error(422, 40010001, "fractional orders are not supported by this fake")
        if not symbol or symbol not in self.prices:
            return _error(422, 40010001, f'asset "{symbol}" not found')
        shares = int(qty)
        price = self.prices[symbol]
        if side == "buy" and shares * price > self.cash:
            return _error(403, 40310000, "insufficient buying power")
        available = self._available(symbol)
        if side == "sell" and shares > available:
            return _error(
                403,
                40310000,
                f"insufficient qty available for order (requested: {shares}, "
                f"available: {_num(available)})",
            )
        now = dt.datetime.now(dt.UTC)
        order = _Order(str(uuid.uuid4()), client_id, symbol, side, shares, now, updated_at=now)
        self._orders[order.id] = order
        self._by_client[client_id] = order
        if stop is not None:
            order.type, order.time_in_force, order.stop_price = "stop", "gtc", stop
            order.status = "new"  # rests; the POST answers "accepted", as Alpaca's first answer
            return json_response(200, {**self._order_json(order), "status": "accepted"})
        if self.fill_mode == "immediate":
            self._fill(order, shares)
        elif self.fill_mode == "partial":
            self._fill(order, max(1, math.floor(shares * self.partial_fraction)))
        return json_response(200, self._order_json(order))

    def _available(self, symbol: str) -> Decimal:
        """Shares a new sell may take: the long position less every open sell's unfilled shares."""
        position = self._positions.get(symbol)
        held = sum(
            o.remaining
            for o in self._orders.values()
            if o.symbol == symbol and o.side == "sell" and o.status in OPEN_STATUSES
        )
        owned = position.qty if position is not None and position.qty > 0 else Decimal(0)
        return max(owned - held, Decimal(0))

    def _fill(self, order: _Order, qty: int, at_price: float | None = None) -> None:
        """Fill ``qty`` more shares at ``at_price`` (default: ``prices[symbol]``); log the fill."""
        qty = min(qty, order.remaining)
        if qty <= 0:
            return
        price = self.prices[order.symbol] if at_price is None else at_price
        done = order.filled_qty
        order.filled_avg_price = ((order.filled_avg_price or 0.0) * done + price * qty) / (
            done + qty
        )
        order.filled_qty += qty
        order.status = "filled" if order.filled_qty == order.qty else "partially_filled"
        now = dt.datetime.now(dt.UTC)
        order.updated_at = now
        if order.status == "filled":
            order.filled_at = now
        self._move(order.symbol, Decimal(qty if order.side == "buy" else -qty), price)
        self._fills.append(
            _Activity(
                _activity_id(now),
                order.symbol,
                order.side,
                Decimal(qty),
                price,
                now,
                order.id,
                cum_qty=Decimal(order.filled_qty),
                leaves_qty=Decimal(order.qty - order.filled_qty),
                order_status=order.status,
            )
        )

    def _move(self, symbol: str, signed: Decimal, price: float) -> None:
        """Shares in (``signed`` > 0) or out at ``price``: the position and cash follow.

        The entry price averages in shares added on the position's side, is
        kept when shares are taken off, and restarts at ``price`` past zero.
        """
        position = self._positions.get(symbol)
        if position is None:
            self._positions[symbol] = _Position(signed, price)
        else:
            new_qty = position.qty + signed
            if new_qty == 0:
                del self._positions[symbol]
            else:
                if (new_qty > 0) != (position.qty > 0):
                    position.avg_entry_price = price
                elif (signed > 0) == (position.qty > 0):
                    cost = float(position.qty) * position.avg_entry_price + price * float(signed)
                    position.avg_entry_price = cost / float(new_qty)
                position.qty = new_qty
        self.cash -= float(signed) * price

    def _cancel(self, order: _Order) -> Response:
        if order.status not in OPEN_STATUSES:
            return _error(422, 42210000, "order is not cancelable")
        order.status = "canceled"
        order.canceled_at = order.updated_at = dt.datetime.now(dt.UTC)
        return 204, {}, b""

    def _list_orders(self, query: dict[str, str]) -> Response:
        status = query.get("status", "open")
        if status not in ("open", "closed", "all"):
            return _error(422, 40010001, "invalid status")
        orders = [
            o
            for o in self._orders.values()
            if status == "all" or (o.status in OPEN_STATUSES) == (status == "open")
        ]
        symbols = {s for s in query.get("symbols", "").split(",") if s}
        if symbols:
            orders = [o for o in orders if o.symbol in symbols]
        orders.sort(key=lambda o: o.created_at, reverse=query.get("direction", "desc") == "desc")
        limit = min(int(query.get("limit") or 50), 500)
        return json_response(200, [self._order_json(o) for o in orders[:limit]])

    def _activities(self, query: dict[str, str], *, fills: bool) -> Response:
        """Fill activities (or none, for other types) filtered and paged as Alpaca does."""
        if "date" in query:
            return _error(422, 40010001, "this fake does not serve date")
        try:
            after = _instant(query["after"]) if "after" in query else None
            until = _instant(query["until"]) if "until" in query else None
            page_size = int(query.get("page_size") or 100)
        except ValueError:
            return _error(422, 40010001, "invalid after, until or page_size")
        direction = query.get("direction", "desc")
        if direction not in ("asc", "desc") or not 1 <= page_size <= 100:
            return _error(422, 40010001, "invalid direction or page_size")
        ordered = sorted(
            self._fills if fills else [], key=lambda a: (a.at, a.id), reverse=direction == "desc"
        )
        token = query.get("page_token")
        if token:
            at = next((i for i, a in enumerate(ordered) if a.id == token), None)
            if at is None:
                return _error(422, 40010001, "invalid page_token")
            ordered = ordered[at + 1 :]
        chosen = [
            a
            for a in ordered
            if (after is None or a.at > after) and (until is None or a.at < until)
        ]
        return json_response(200, [_activity_json(a) for a in chosen[:page_size]])

    # ------------------------------------------------------------ shapes

    def _order_json(self, order: _Order) -> dict[str, Any]:
        return {
            "id": order.id,
            "client_order_id": order.client_order_id,
            "created_at": _stamp(order.created_at),
            "updated_at": _stamp(order.updated_at or order.created_at),
            "submitted_at": _stamp(order.created_at),
            "filled_at": _stamp(order.filled_at),
            "expired_at": None,
            "canceled_at": _stamp(order.canceled_at),
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, order.symbol)),
            "symbol": order.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": str(order.qty),
            "filled_qty": str(order.filled_qty),
            "filled_avg_price": (
                None if order.filled_avg_price is None else _num(round(order.filled_avg_price, 6))
            ),
            "order_class": "",
            "order_type": order.type,
            "type": order.type,
            "side": order.side,
            "position_intent": "buy_to_open" if order.side == "buy" else "sell_to_close",
            "time_in_force": order.time_in_force,
            "limit_price": None,
            "stop_price": None if order.stop_price is None else _num(order.stop_price),
            "status": order.status,
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
        }

    def _position_json(self, symbol: str, position: _Position) -> dict[str, Any]:
        price = self.prices.get(symbol, position.avg_entry_price)
        qty = float(position.qty)
        market_value = qty * price
        cost_basis = qty * position.avg_entry_price
        pl = market_value - cost_basis
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "qty": _num(position.qty),
            "qty_available": _num(position.qty if position.qty < 0 else self._available(symbol)),
            "avg_entry_price": _num(round(position.avg_entry_price, 6)),
            "side": "long" if position.qty > 0 else "short",
            "market_value": _num(round(market_value, 2)),
            "cost_basis": _num(round(cost_basis, 2)),
            "unrealized_pl": _num(round(pl, 2)),
            "unrealized_plpc": _num(round(pl / cost_basis, 6) if cost_basis else 0),
            "unrealized_intraday_pl": _num(round(pl, 2)),
            "unrealized_intraday_plpc": _num(round(pl / cost_basis, 6) if cost_basis else 0),
            "current_price": _num(price),
            "lastday_price": _num(price),
            "change_today": "0",
        }

    def _equity(self) -> float:
        """Cash plus every position at its current price."""
        return self.cash + sum(
            float(p.qty) * self.prices.get(s, p.avg_entry_price) for s, p in self._positions.items()
        )

    def _account_json(self) -> dict[str, Any]:
        long_value = sum(
            float(p.qty) * self.prices.get(s, p.avg_entry_price)
            for s, p in self._positions.items()
            if p.qty > 0
        )
        short_value = sum(
            float(p.qty) * self.prices.get(s, p.avg_entry_price)
            for s, p in self._positions.items()
            if p.qty < 0
        )
        equity = self.cash + long_value + short_value
        cash = _num(round(self.cash, 2))
        return {
            "id": "1d9eed04-be39-4e01-9b84-a48ac5bbafcf",
            "account_number": "PA3FAKE00001",
            "status": "ACTIVE",
            "crypto_status": "INACTIVE",
            "currency": "USD",
            "buying_power": cash,
            "regt_buying_power": cash,
            "non_marginable_buying_power": cash,
            "options_buying_power": cash,
            "cash": cash,
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "portfolio_value": _num(round(equity, 2)),
            "pattern_day_trader": self.pattern_day_trader,
            "trading_blocked": self.trading_blocked,
            "transfers_blocked": False,
            "account_blocked": self.account_blocked,
            "created_at": "2024-01-02T14:30:00.000000Z",
            "trade_suspended_by_user": self.trade_suspended_by_user,
            "multiplier": "1",
            "shorting_enabled": False,
            "equity": _num(round(equity, 2)),
            "last_equity": _num(round(self.last_equity, 2)),
            "long_market_value": _num(round(long_value, 2)),
            "short_market_value": _num(round(short_value, 2)),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": self.daytrade_count,
            "options_approved_level": 0,
            "options_trading_level": 0,
        }

    # ------------------------------------------------------------ clock and calendar

    def _session(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """Open and close of ``day`` in New York, or None when the market is shut."""
        if day.weekday() >= 5 or day in self.holidays:
            return None
        close = self.early_closes.get(day, dt.time(16, 0))
        return (
            dt.datetime.combine(day, dt.time(9, 30), NEW_YORK),
            dt.datetime.combine(day, close, NEW_YORK),
        )

    def _next_session_day(self, day: dt.date) -> dt.date:
        day += dt.timedelta(days=1)
        while self._session(day) is None:
            day += dt.timedelta(days=1)
        return day

    def _clock_json(self) -> dict[str, Any]:
        now = dt.datetime.fromtimestamp(self.wallclock(), NEW_YORK)
        today = self._session(now.date())
        is_open = today is not None and today[0] <= now < today[1]
        next_open = next_close = None
        day = now.date()
        while next_open is None or next_close is None:
            hours = self._session(day)
            if hours is not None:
                if next_open is None and hours[0] > now:
                    next_open = hours[0]
                if next_close is None and hours[1] > now:
                    next_close = hours[1]
            day += dt.timedelta(days=1)
        return {
            "timestamp": now.isoformat(),
            "is_open": is_open,
            "next_open": next_open.isoformat(),
            "next_close": next_close.isoformat(),
        }

    def _calendar(self, query: dict[str, str]) -> Response:
        today = dt.datetime.fromtimestamp(self.wallclock(), NEW_YORK).date()
        try:
            start = dt.date.fromisoformat(query["start"][:10]) if "start" in query else today
            end = dt.date.fromisoformat(query["end"][:10]) if "end" in query else today
        except ValueError:
            return _error(422, 40010001, "invalid date")
        days = []
        day = start
        while day <= end:
            hours = self._session(day)
            if hours is not None:
                days.append(
                    {
                        "date": day.isoformat(),
                        "open": hours[0].strftime("%H:%M"),
                        "close": hours[1].strftime("%H:%M"),
                        "session_open": "0400",
                        "session_close": "2000",
                        "settlement_date": self._next_session_day(day).isoformat(),
                    }
                )
            day += dt.timedelta(days=1)
        return json_response(200, days)

    # ------------------------------------------------------------ portfolio history

    def _portfolio_history(self, query: dict[str, str]) -> Response:
        if query.get("timeframe") != "1D":
            return _error(422, 40010001, "this fake serves timeframe=1D only")
        if all(k in query for k in ("start", "end", "period")):
            return _error(422, 40010001, "only two of start, end and period can be specified")
        now = dt.datetime.fromtimestamp(self.wallclock(), NEW_YORK)
        try:
            first, last = _history_span(query, now)
        except ValueError as exc:
            return _error(422, 40010001, str(exc))
        points = dict(self.equity_history)
        today = self._session(now.date())
        if today is not None and now >= today[0]:
            points.setdefault(now.date(), self._equity())
        days = sorted(d for d in points if first <= d <= last)
        equity = [round(points[d], 2) for d in days]
        base = equity[0] if equity else 0.0
        return json_response(
            200,
            {
                "timestamp": [self._history_stamp(d) for d in days],
                "equity": equity,
                "profit_loss": [round(e - base, 2) for e in equity],
                "profit_loss_pct": [round(e / base - 1, 4) if base else 0.0 for e in equity],
                "base_value": base,
                "timeframe": "1D",
                "cashflow": {},
            },
        )

    def _history_stamp(self, day: dt.date) -> int:
        """The epoch seconds that label ``day``'s daily point, per ``history_stamp``."""
        if self.history_stamp == "close":
            hours = self._session(day)
            assert hours is not None
            return int(hours[1].timestamp())
        if self.history_stamp == "evening":
            return int(
                dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), dt.UTC).timestamp()
            )
        return int(dt.datetime.combine(day, dt.time(0), NEW_YORK).timestamp())


def _adjust_stop(order: _Order, factor: Decimal, now: dt.datetime) -> None:
    """A split's adjustment of an open stop: shares times ``factor``, price over it (Rule 5330)."""
    order.qty = int((order.qty * factor).to_integral_value(ROUND_DOWN))
    order.filled_qty = int((order.filled_qty * factor).to_integral_value(ROUND_DOWN))
    order.updated_at = now
    if order.stop_price is not None:
        price = order.stop_price / factor
        order.stop_price = max(price.quantize(_tick(price), ROUND_DOWN), _tick(price))
    if order.remaining <= 0:
        order.status, order.canceled_at = "canceled", now


def _activity_json(activity: _Activity) -> dict[str, Any]:
    return {
        "id": activity.id,
        "account_id": "1d9eed04-be39-4e01-9b84-a48ac5bbafcf",
        "activity_type": "FILL",
        "transaction_time": _stamp(activity.at),
        "type": "fill" if activity.leaves_qty == 0 else "partial_fill",
        "price": _num(activity.price),
        "qty": _num(activity.qty),
        "side": activity.side,
        "symbol": activity.symbol,
        "leaves_qty": _num(activity.leaves_qty),
        "order_id": activity.order_id,
        "cum_qty": _num(activity.cum_qty),
        "order_status": activity.order_status,
    }


def _ny_date(text: str) -> dt.date:
    """The New York date of an RFC 3339 timestamp (or a bare date)."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.date()
    return value.astimezone(NEW_YORK).date()


def _shift_by_period(day: dt.date, period: str, sign: int) -> dt.date:
    """``day`` moved back (``sign=-1``) or forward by a period such as 5D, 2W, 1M or 1A."""
    match = PERIOD.match(period)
    if match is None:
        raise ValueError(f"invalid period {period!r}")
    n, unit = int(match[1]) * sign, match[2]
    if unit in "DW":
        return day + dt.timedelta(days=n * (7 if unit == "W" else 1))
    year, month0 = divmod(day.year * 12 + day.month - 1 + n * (12 if unit == "A" else 1), 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return dt.date(year, month0 + 1, min(day.day, last_day))


def _history_span(query: dict[str, str], now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The first and last session dates a portfolio history request covers."""
    try:
        start = _ny_date(query["start"]) if "start" in query else None
        end = _ny_date(query["end"]) if "end" in query else None
    except ValueError:
        raise ValueError("invalid start or end (RFC 3339 expected)") from None
    period = query.get("period")
    day = dt.timedelta(days=1)
    if end is None and start is not None and period is not None:
        end = _shift_by_period(start, period, 1) - day  # a 1D period from start is that day
    end = min(end or now.date(), now.date())
    if start is None:
        start = _shift_by_period(end, period or "1M", -1) + day
    return start, end


__all__ = ["FakeAlpacaTradingServer", "FillMode", "HistoryStamp", "TradingRequest"]
