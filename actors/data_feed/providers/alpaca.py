"""Daily bars from Alpaca's market-data API through alpaca-py.

- ``StockHistoricalDataClient.get_stock_bars`` with ``TimeFrame.Day``,
  ``Adjustment.ALL`` and the configured feed, ``params.batch_size`` symbols per
  request; the SDK follows ``next_page_token`` itself.
- alpaca-py is synchronous and sets no HTTP timeout, so each batch runs in a
  worker thread under our own deadline (``params.timeout_s``). On a timeout the
  thread is *abandoned*, not killed (Python cannot kill threads): it finishes
  or fails on its own when the socket does, and the client (its
  ``requests.Session``) is replaced so the stray thread shares nothing with
  the next request.
- The SDK's own retry (429/504, three blocking ``time.sleep(3)``) is switched
  off; we retry 429 and 5xx ourselves a bounded number of times with
  exponential backoff (``daemon.retry``) through an injectable async ``sleep``.
  Timeouts and connection errors are not retried here.
- Errors become ``ProviderError`` carrying the HTTP status and the server's
  message; keys never appear in them.
- Alpaca stamps a daily bar at midnight New York time (04:00/05:00 UTC); the
  session date is the timestamp's date in America/New_York.
- Alpaca has no volatility index: ``volatility_index`` returns None.

Corporate actions (``corporate_actions``) come from alpaca-py's
``CorporateActionsClient`` under the same keys, base URL, deadline and retry
policy as the bars, ``batch_size`` symbols per request:

- Alpaca's ``start``/``end`` select by *process* date, not ex date. For splits,
  stock dividends and renames the two agree; a cash dividend is processed on
  its *payable* date, weeks after the ex date. So the request spans process
  dates ``[start - 7 days, end + 90 days]`` and the answer is cut to ex dates
  in ``[start, end]`` here.
- The SDK follows ``next_page_token`` itself but stops once ``limit`` items
  arrived in all (the request's default is 1000); the request sets no limit,
  so every page is read.
- The answer is taken raw and each item mapped on its own: the SDK's models
  require an ``id`` and a ``cusip`` that older answers lack, and one bad item
  would fail the whole set. An item that is malformed, or that
  ``CorporateAction`` rejects, is logged with its symbol and skipped.
- Mapped: forward and reverse splits (ratio ``new_rate / old_rate``), stock
  dividends (ratio ``1 + rate``: ``rate`` is new shares per share held), cash
  dividends (``rate`` per share, paid on ``payable_date``), name changes (a
  rename of ``old_symbol``, effective on its ``process_date``: it has no ex
  date). Every other type (spin-offs, mergers, unit splits, redemptions,
  worthless removals, rights) has no place in the model: each such action is
  logged once at warning and skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pandas as pd
import pydantic
import requests
import structlog

from actors.data_feed.params import AlpacaDataParams
from actors.data_feed.providers.base import empty_bars, normalize_bars
from actors.market.corporate_actions import ActionKind, BadCorporateAction, CorporateAction
from daemon.errors import ProviderError
from daemon.retry import Backoff, Sleep, retry

# alpaca.data's package import pulls in its websocket streams, which import the
# deprecated ``websockets.legacy`` (a warning attributed to websockets, so the
# pyproject filter for alpaca.* cannot see it).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from alpaca.common.exceptions import APIError
    from alpaca.data.enums import Adjustment, DataFeed
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.data.historical.corporate_actions import CorporateActionsClient
    from alpaca.data.requests import CorporateActionsRequest, StockBarsRequest
    from alpaca.data.timeframe import TimeFrame

log = structlog.get_logger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
RETRYABLE = frozenset({429, 500, 502, 503, 504})
SOURCE = "alpaca"
PROCESS_LOOKBACK = dt.timedelta(days=7)
"""How far before ``start`` the process dates asked for begin (a margin: none seen earlier)."""
PROCESS_LOOKAHEAD = dt.timedelta(days=90)
"""How far past ``end`` they reach: a cash dividend is processed on its payable date."""


class _DataClient(StockHistoricalDataClient):
    """alpaca-py's data client with its blocking 429/504 retry switched off.

    The SDK's constructor cannot express "no retries" (it ignores 0), so the
    attribute it reads is set after construction; we retry on our own terms.
    """

    def __init__(self, api_key: str, secret_key: str, url_override: str | None) -> None:
        super().__init__(api_key, secret_key, url_override=url_override)
        self._retry = 0


class _ActionsClient(CorporateActionsClient):
    """alpaca-py's corporate-actions client: raw answers, its blocking retry off."""

    def __init__(self, api_key: str, secret_key: str, url_override: str | None) -> None:
        super().__init__(api_key, secret_key, raw_data=True, url_override=url_override)
        self._retry = 0


class AlpacaBarProvider:
    """Adjusted daily bars from Alpaca (see the module docstring)."""

    name = "alpaca"

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        params: AlpacaDataParams | None = None,
        *,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.params = params if params is not None else AlpacaDataParams()
        self.backoff = Backoff(base_s=backoff_s, max_attempts=max_retries + 1)
        """``backoff_s * 2**(n-1)`` before retry n of a 429/5xx, ``max_retries`` retries."""
        self._sleep = sleep
        self._api_key = api_key
        self._secret_key = secret_key
        self._client = self._new_client()
        self._actions_client = self._new_actions_client()
        self._reported: set[str] = set()
        """The unsupported actions already logged (each is logged once)."""

    def _new_client(self) -> _DataClient:
        return _DataClient(self._api_key, self._secret_key, self.params.base_url)

    def _new_actions_client(self) -> _ActionsClient:
        return _ActionsClient(self._api_key, self._secret_key, self.params.base_url)

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars of ``symbols`` over ``[start, end]``, ``batch_size`` symbols per request."""
        wanted = list(dict.fromkeys(symbols))
        if not wanted or start > end:
            return empty_bars()
        size = self.params.batch_size
        frames = []
        for i in range(0, len(wanted), size):
            frames.append(await self._batch(wanted[i : i + size], start, end))
        frame = pd.concat(frames, ignore_index=True)
        mask = (frame["date"] >= pd.Timestamp(start)) & (frame["date"] <= pd.Timestamp(end))
        return frame.loc[mask].reset_index(drop=True)

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        """Alpaca serves no index data."""
        return None

    async def _batch(self, symbols: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        request = StockBarsRequest(
            symbol_or_symbols=symbols,
            timeframe=TimeFrame.Day,
            start=dt.datetime.combine(start, dt.time(0, 0), NEW_YORK),
            end=dt.datetime.combine(end, dt.time(23, 59, 59), NEW_YORK),
            adjustment=Adjustment.ALL,
            feed=DataFeed(self.params.feed),
        )
        raw = await self._retrying("alpaca bars", lambda: self._get_bars(request, len(symbols)))
        return _to_frame(raw)

    async def _retrying(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call`` with the provider's retries; an HTTP error that stays is a ProviderError."""
        try:
            return await retry(call, policy=self.backoff, retry_on=_retryable, sleep=self._sleep)
        except APIError as exc:
            raise ProviderError(f"{what}: HTTP {exc.status_code}: {_api_message(exc)}") from None

    async def _get_bars(self, request: StockBarsRequest, count: int) -> Any:
        """One request in a worker thread; ``APIError`` passes (it may be retried)."""
        client = self._client

        def renew() -> None:
            self._client = self._new_client()

        return await self._in_thread(
            "alpaca bars", lambda: client.get_stock_bars(request), count, renew
        )

    async def corporate_actions(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        """The actions on ``symbols`` with ex date in ``[start, end]``, by ex date.

        A rename counts for both its old and its new symbol. The same action
        reported twice (a rename seen from both symbols) is returned once.
        """
        wanted = list(dict.fromkeys(symbols))
        if not wanted or start > end:
            return []
        size = self.params.batch_size
        found: dict[str, CorporateAction] = {}
        for i in range(0, len(wanted), size):
            raw = await self._actions_batch(wanted[i : i + size], start, end)
            for action in self._map_actions(raw, start, end):
                found.setdefault(action.action_id, action)
        keep = set(wanted)
        mine = [a for a in found.values() if a.symbol in keep or a.new_symbol in keep]
        return sorted(mine, key=lambda a: (a.ex_date, a.symbol, a.kind))

    async def _actions_batch(
        self, symbols: list[str], start: dt.date, end: dt.date
    ) -> Mapping[str, Any]:
        request = CorporateActionsRequest(
            symbols=symbols,
            start=start - PROCESS_LOOKBACK,
            end=end + PROCESS_LOOKAHEAD,
            limit=None,  # a limit caps the items over all pages, not per page
        )
        raw = await self._retrying(
            "alpaca corporate actions", lambda: self._get_actions(request, len(symbols))
        )
        if not isinstance(raw, Mapping):
            raise ProviderError(
                f"alpaca corporate actions: malformed answer: {type(raw).__name__}, not an object"
            )
        return raw

    async def _get_actions(self, request: CorporateActionsRequest, count: int) -> Any:
        """One paginated fetch in a worker thread; ``APIError`` passes (it may be retried)."""
        client = self._actions_client

        def renew() -> None:
            self._actions_client = self._new_actions_client()

        return await self._in_thread(
            "alpaca corporate actions",
            lambda: client.get_corporate_actions(request),
            count,
            renew,
        )

    async def _in_thread(
        self, what: str, call: Callable[[], Any], count: int, renew: Callable[[], None]
    ) -> Any:
        """``call()`` in a worker thread under ``timeout_s``; ``renew`` replaces its client."""
        try:
            with anyio.fail_after(self.params.timeout_s):
                return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except TimeoutError:
            renew()
            raise ProviderError(
                f"{what}: no answer within {self.params.timeout_s:g}s ({count} symbols)"
            ) from None
        except requests.RequestException as exc:
            raise ProviderError(f"{what}: {type(exc).__name__}: {_short(str(exc))}") from None
        except (ValueError, KeyError, TypeError, pydantic.ValidationError) as exc:
            raise ProviderError(
                f"{what}: malformed answer: {type(exc).__name__}: {_short(str(exc))}"
            ) from None

    def _map_actions(
        self, raw: Mapping[str, Any], start: dt.date, end: dt.date
    ) -> list[CorporateAction]:
        """Alpaca's answer (type -> items) as actions with ex date in ``[start, end]``."""
        out: list[CorporateAction] = []
        for key, items in raw.items():
            if not isinstance(items, list):
                _skipped(key, {}, f"malformed: {type(items).__name__}, not a list")
                continue
            mapper = _MAPPERS.get(key)
            for item in items:
                if not isinstance(item, dict):
                    _skipped(key, {}, f"malformed: {type(item).__name__}, not an object")
                elif mapper is None:
                    self._report_unsupported(key, item, start, end)
                else:
                    action = _mapped(key, mapper, item)
                    if action is not None and start <= action.ex_date <= end:
                        out.append(action)
        return out

    def _report_unsupported(
        self, key: str, item: Mapping[str, Any], start: dt.date, end: dt.date
    ) -> None:
        """Log an action of a type the model has no place for, once per action."""
        day = _first_day(item, ("ex_date", "effective_date", "process_date"))
        if day is not None and not start <= day <= end:
            return
        ident = str(item.get("id") or f"{key}|{_symbol_of(item)}|{day}")
        if ident in self._reported:
            return
        self._reported.add(ident)
        log.warning(
            "alpaca_corporate_action_unsupported",
            type=key,
            symbol=_symbol_of(item),
            date=None if day is None else day.isoformat(),
            source_id=_source_id(item),
        )


def _retryable(error: Exception) -> bool:
    return isinstance(error, APIError) and error.status_code in RETRYABLE


def _to_frame(raw: Any) -> pd.DataFrame:
    rows = [
        (
            bar.symbol,
            bar.timestamp.astimezone(NEW_YORK).date(),
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
        )
        for bars in raw.data.values()
        for bar in bars
    ]
    if not rows:
        return empty_bars()
    frame = pd.DataFrame.from_records(
        rows, columns=["symbol", "date", "open", "high", "low", "close", "volume"]
    )
    frame["date"] = pd.to_datetime(frame["date"])
    return normalize_bars(frame)


Mapper = Callable[[Mapping[str, Any]], CorporateAction]


def _forward_split(item: Mapping[str, Any]) -> CorporateAction:
    ratio = _number(item["new_rate"]) / _number(item["old_rate"])
    return _rescaling(ActionKind.FORWARD_SPLIT, item, ratio)


def _reverse_split(item: Mapping[str, Any]) -> CorporateAction:
    ratio = _number(item["new_rate"]) / _number(item["old_rate"])
    return _rescaling(ActionKind.REVERSE_SPLIT, item, ratio)


def _stock_dividend(item: Mapping[str, Any]) -> CorporateAction:
    """``rate`` is new shares per share held: 0.05 for a 5 % stock dividend."""
    return _rescaling(ActionKind.STOCK_DIVIDEND, item, 1.0 + _number(item["rate"]))


def _rescaling(kind: ActionKind, item: Mapping[str, Any], ratio: float) -> CorporateAction:
    return CorporateAction(
        kind=kind,
        symbol=_text(item["symbol"]),
        ex_date=_day(item["ex_date"]),
        source=SOURCE,
        ratio=ratio,
        source_id=_source_id(item),
    )


def _cash_dividend(item: Mapping[str, Any]) -> CorporateAction:
    payable = item.get("payable_date")
    return CorporateAction(
        kind=ActionKind.CASH_DIVIDEND,
        symbol=_text(item["symbol"]),
        ex_date=_day(item["ex_date"]),
        source=SOURCE,
        cash_per_share=_number(item["rate"]),
        pay_date=None if payable is None else _day(payable),
        source_id=_source_id(item),
    )


def _name_change(item: Mapping[str, Any]) -> CorporateAction:
    """A name change has no ex date: it takes effect on its process date."""
    return CorporateAction(
        kind=ActionKind.RENAME,
        symbol=_text(item["old_symbol"]),
        ex_date=_day(item["process_date"]),
        source=SOURCE,
        new_symbol=_text(item["new_symbol"]),
        source_id=_source_id(item),
    )


_MAPPERS: dict[str, Mapper] = {
    "forward_splits": _forward_split,
    "reverse_splits": _reverse_split,
    "stock_dividends": _stock_dividend,
    "cash_dividends": _cash_dividend,
    "name_changes": _name_change,
}


def _mapped(key: str, mapper: Mapper, item: Mapping[str, Any]) -> CorporateAction | None:
    """``mapper(item)``, or None (logged) when the item is malformed or not applicable."""
    try:
        return mapper(item)
    except BadCorporateAction as exc:
        reason = str(exc)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        reason = f"malformed: {type(exc).__name__}: {exc}"
    _skipped(key, item, reason)
    return None


def _skipped(key: str, item: Mapping[str, Any], reason: str) -> None:
    log.warning(
        "alpaca_corporate_action_skipped",
        type=key,
        symbol=_symbol_of(item),
        source_id=_source_id(item),
        reason=_short(reason),
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not a string: {value!r}")
    return value


def _day(value: Any) -> dt.date:
    return dt.date.fromisoformat(_text(value))


def _first_day(item: Mapping[str, Any], keys: Sequence[str]) -> dt.date | None:
    """The first of ``keys`` that holds a date, or None."""
    for key in keys:
        try:
            return _day(item[key])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _symbol_of(item: Mapping[str, Any]) -> str | None:
    """The symbol an item is about, whatever its type calls it."""
    for key in ("symbol", "old_symbol", "source_symbol", "acquiree_symbol"):
        value = item.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _source_id(item: Mapping[str, Any]) -> str | None:
    value = item.get("id")
    return str(value) if value not in (None, "") else None


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
