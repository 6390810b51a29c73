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
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pandas as pd
import pydantic
import requests

from actors.data_feed.params import AlpacaDataParams
from actors.data_feed.providers.base import empty_bars, normalize_bars
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
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame

NEW_YORK = ZoneInfo("America/New_York")
RETRYABLE = frozenset({429, 500, 502, 503, 504})


class _DataClient(StockHistoricalDataClient):
    """alpaca-py's data client with its blocking 429/504 retry switched off.

    The SDK's constructor cannot express "no retries" (it ignores 0), so the
    attribute it reads is set after construction; we retry on our own terms.
    """

    def __init__(self, api_key: str, secret_key: str, url_override: str | None) -> None:
        super().__init__(api_key, secret_key, url_override=url_override)
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

    def _new_client(self) -> _DataClient:
        return _DataClient(self._api_key, self._secret_key, self.params.base_url)

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
        try:
            raw = await retry(
                lambda: self._get_bars(request, len(symbols)),
                policy=self.backoff,
                retry_on=_retryable,
                sleep=self._sleep,
            )
        except APIError as exc:
            raise ProviderError(
                f"alpaca bars: HTTP {exc.status_code}: {_api_message(exc)}"
            ) from None
        return _to_frame(raw)

    async def _get_bars(self, request: StockBarsRequest, count: int) -> Any:
        """One request in a worker thread; ``APIError`` passes (it may be retried)."""
        client = self._client
        try:
            with anyio.fail_after(self.params.timeout_s):
                return await anyio.to_thread.run_sync(
                    client.get_stock_bars, request, abandon_on_cancel=True
                )
        except TimeoutError:
            self._client = self._new_client()
            raise ProviderError(
                f"alpaca bars: no answer within {self.params.timeout_s:g}s ({count} symbols)"
            ) from None
        except requests.RequestException as exc:
            raise ProviderError(f"alpaca bars: {type(exc).__name__}: {_short(str(exc))}") from None
        except (ValueError, KeyError, TypeError, pydantic.ValidationError) as exc:
            raise ProviderError(
                f"alpaca bars: malformed answer: {type(exc).__name__}: {_short(str(exc))}"
            ) from None


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
