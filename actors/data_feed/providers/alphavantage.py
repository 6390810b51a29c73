"""Daily bars from Alpha Vantage's ``TIME_SERIES_DAILY_ADJUSTED``.

One request per symbol (``outputsize=compact``, the last 100 sessions, when the
asked range starts within the last 140 calendar days, else ``full``), through
``requests`` in a worker thread with ``params.timeout_s``. A sliding-window
limiter allows ``params.calls_per_minute`` requests a minute, retries included.

Failure handling -- decided per kind:

- ``"Note"`` / ``"Information"`` (the in-band throttle answer), HTTP 429/5xx,
  timeouts and connection errors are *temporary*: back off
  (``backoff_s * 2**attempt`` through ``daemon.retry``, and the limiter pauses
  everyone for as long) and retry up to ``params.max_retries`` times, each
  retry logged ``alphavantage_retry``; then the whole ``fetch``
  raises ``ProviderError`` (the provider is unusable right now; nothing later
  in the list would fare better).
- ``"Error Message"`` (an unknown symbol), a malformed body or unusable rows
  fail *that symbol only*: it is left out of the result, which still holds
  the others, and ``failures`` maps it to the reason (the data validator sees
  it missing and applies the universe's failure budget).
- Other HTTP 4xx (bad key, forbidden) raise ``ProviderError`` at once.

Prices: open/high/low are scaled by ``adjusted close / close`` and close is the
adjusted close, so bars are split- and dividend-adjusted; volume is as traded.
Alpha Vantage has no VIX: ``volatility_index`` returns None.

The API key travels as the ``apikey`` query parameter: it is scrubbed from
every message we raise or log, and exceptions are raised ``from None`` so the
original (key-bearing) exception text is not chained into tracebacks.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import numpy as np
import pandas as pd
import requests
import structlog

from actors.data_feed.params import AlphaVantageParams
from actors.data_feed.providers.base import empty_bars, normalize_bars
from daemon.errors import ProviderError
from daemon.ratelimit import Monotonic, RateLimiter, Sleep
from daemon.retry import Backoff, retry

log = structlog.get_logger(__name__)

COMPACT_DAYS = 140  # 140 calendar days hold at most 100 sessions: compact covers them
SERIES_KEY = "Time Series (Daily)"
_APIKEY = re.compile(r"(apikey=)[^&\s'\"]+", re.IGNORECASE)


class _Retry(Exception):
    """A temporary failure of one request (throttled, 5xx, timeout)."""


class _SymbolFailed(Exception):
    """This symbol cannot be had (unknown, malformed answer)."""


class AlphaVantageProvider:
    """Adjusted daily bars from Alpha Vantage (see the module docstring)."""

    name = "alphavantage"

    def __init__(
        self,
        api_key: str,
        params: AlphaVantageParams | None = None,
        *,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = anyio.sleep,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.params = params if params is not None else AlphaVantageParams()
        self._api_key = api_key
        self._sleep = sleep
        self._today = today
        self.limiter = RateLimiter(
            self.params.calls_per_minute, 60.0, monotonic=monotonic, sleep=sleep
        )
        self._session = requests.Session()
        self.failures: Mapping[str, str] = {}
        """The symbols the last ``fetch`` left out, with the reason."""

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    async def fetch(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        """Bars of ``symbols`` over ``[start, end]``; one rate-limited request per symbol."""
        wanted = list(dict.fromkeys(symbols))
        failures: dict[str, str] = {}
        frames: list[pd.DataFrame] = []
        if start <= end:
            size = "compact" if (self._today() - start).days <= COMPACT_DAYS else "full"
            for symbol in wanted:
                try:
                    frames.append(await self._symbol(symbol, size, start, end))
                except _SymbolFailed as exc:
                    failures[symbol] = str(exc)
                    log.warning("alphavantage_symbol_failed", symbol=symbol, reason=str(exc))
        self.failures = failures
        frames = [f for f in frames if not f.empty]
        if not frames:
            return empty_bars()
        return normalize_bars(pd.concat(frames, ignore_index=True))

    async def volatility_index(self, start: dt.date, end: dt.date) -> pd.Series | None:
        """Alpha Vantage has no VIX."""
        return None

    async def _symbol(self, symbol: str, size: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        query = {
            "function": "TIME_SERIES_DAILY_ADJUSTED",
            "symbol": symbol,
            "outputsize": size,
            "datatype": "json",
            "apikey": self._api_key,
        }

        async def once() -> pd.DataFrame:
            await self.limiter.acquire()
            body = await anyio.to_thread.run_sync(self._get, query)
            return _parse(symbol, body, start, end)

        def retrying(error: Exception, number: int, delay: float) -> None:
            reason = self._scrub(str(error))
            log.info(
                "alphavantage_retry", symbol=symbol, attempt=number, delay_s=delay, reason=reason
            )
            self.limiter.pause(delay)  # everyone waits, not only this request

        policy = self._backoff()
        try:
            return await retry(
                once, policy=policy, retry_on=_Retry, sleep=self._sleep, on_retry=retrying
            )
        except _Retry as exc:
            raise ProviderError(
                f"alphavantage {symbol}: gave up after {policy.max_attempts} attempts:"
                f" {self._scrub(str(exc))}"
            ) from None

    def _backoff(self) -> Backoff:
        """``backoff_s * 2**(n-1)`` before retry n, ``max_retries`` retries (from ``params``)."""
        return Backoff(base_s=self.params.backoff_s, max_attempts=self.params.max_retries + 1)

    def _get(self, query: dict[str, str]) -> Any:
        """One blocking request (worker thread): the decoded JSON body."""
        url = f"{self.params.base_url.rstrip('/')}/query"
        try:
            response = self._session.get(url, params=query, timeout=self.params.timeout_s)
        except requests.Timeout:
            raise _Retry(f"no answer within {self.params.timeout_s:g}s") from None
        except requests.RequestException as exc:
            raise _Retry(f"{type(exc).__name__}: {self._scrub(str(exc))}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}")
        if status >= 400:
            raise ProviderError(
                f"alphavantage {query['symbol']}: HTTP {status}: {self._scrub(response.text[:200])}"
            )
        try:
            return response.json()
        except ValueError:
            raise _SymbolFailed("malformed JSON") from None

    def _scrub(self, text: str) -> str:
        text = _APIKEY.sub(r"\1***", text)
        return text.replace(self._api_key, "***") if self._api_key else text


def _parse(symbol: str, body: Any, start: dt.date, end: dt.date) -> pd.DataFrame:
    if not isinstance(body, dict):
        raise _SymbolFailed("malformed answer (not an object)")
    for key in ("Note", "Information"):
        if key in body:
            raise _Retry(f"throttled: {str(body[key])[:160]}")
    if "Error Message" in body:
        raise _SymbolFailed(f"error: {str(body['Error Message'])[:160]}")
    series = body.get(SERIES_KEY)
    if not isinstance(series, dict):
        raise _SymbolFailed(f"malformed answer (no {SERIES_KEY!r})")
    lo, hi = start.isoformat(), end.isoformat()
    records = []
    try:
        for day, bar in series.items():
            if not lo <= day <= hi:
                continue
            close = float(bar["4. close"])
            adjusted = float(bar.get("5. adjusted close", close))
            ratio = adjusted / close if close else 1.0
            records.append(
                (
                    symbol,
                    dt.date.fromisoformat(day),
                    float(bar["1. open"]) * ratio,
                    float(bar["2. high"]) * ratio,
                    float(bar["3. low"]) * ratio,
                    adjusted,
                    float(bar["6. volume"]),
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise _SymbolFailed(f"malformed bar: {type(exc).__name__}: {exc}") from None
    if not records:
        return empty_bars()
    frame = pd.DataFrame.from_records(
        records, columns=["symbol", "date", "open", "high", "low", "close", "volume"]
    )
    frame["date"] = pd.to_datetime(frame["date"])
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy()
    if not np.isfinite(values).all():
        raise _SymbolFailed("malformed bar: non-finite value")
    return frame
