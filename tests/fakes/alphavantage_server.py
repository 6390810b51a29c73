"""A fake of Alpha Vantage's ``GET /query?function=TIME_SERIES_DAILY_ADJUSTED``.

Series live in memory (``add_daily``); ``compact`` answers the latest 100
days, ``full`` everything. Unknown symbols and a wrong ``apikey`` get the
in-band ``"Error Message"`` with HTTP 200, as the real service does. Faults:
``throttle_next`` (``"Note"`` or ``"Information"``), ``fail_next`` (HTTP
status), ``malformed_next``, ``hang_next``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from tests.fakes import FakeHTTPServer, Fault, RecordedRequest, Response, json_response

NOTE = (
    "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute"
    " and 500 calls per day."
)
INFORMATION = (
    "Thank you for using Alpha Vantage! Please consider spreading out your free API requests"
    " more sparingly (1 request per second)."
)

# (date, open, high, low, close, adjusted close, volume, dividend, split coefficient)
Row = tuple[dt.date, float, float, float, float, float, float, float, float]


class FakeAlphaVantageServer(FakeHTTPServer):
    """Serves daily adjusted series for the symbols added with ``add_daily``."""

    def __init__(self, api_key: str = "test-av-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.series: dict[str, dict[dt.date, Row]] = {}

    def add_daily(self, symbol: str, rows: Iterable[Row]) -> None:
        """Add rows ``(date, o, h, l, c, adjusted close, volume, dividend, split)``."""
        series = self.series.setdefault(symbol, {})
        for row in rows:
            series[row[0]] = row

    def throttle_next(self, times: int = 1, key: str = "Note") -> None:
        """Answer the next requests with the in-band throttle message (HTTP 200)."""
        text = NOTE if key == "Note" else INFORMATION
        self.inject(Fault("throttle", body={key: text}), times)

    @property
    def query_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/query"]

    def answer(self, request: RecordedRequest, fault: Fault | None) -> Response:
        if fault is not None and fault.kind == "throttle":
            return json_response(200, fault.body)
        q = request.query
        if request.path != "/query" or q.get("function") != "TIME_SERIES_DAILY_ADJUSTED":
            return json_response(200, {"Error Message": "Invalid API call."})
        if q.get("apikey") != self.api_key:
            return json_response(
                200,
                {"Error Message": "the parameter apikey is invalid or missing."},
            )
        symbol = q.get("symbol", "")
        series = self.series.get(symbol)
        if series is None:
            return json_response(
                200,
                {
                    "Error Message": "Invalid API call. Please retry or visit the documentation"
                    " (https://www.alphavantage.co/documentation/) for TIME_SERIES_DAILY_ADJUSTED."
                },
            )
        days = sorted(series, reverse=True)
        if q.get("outputsize", "compact") == "compact":
            days = days[:100]
        body: dict[str, Any] = {
            "Meta Data": {
                "1. Information": "Daily Time Series with Splits and Dividend Events",
                "2. Symbol": symbol,
                "3. Last Refreshed": days[0].isoformat() if days else "",
                "4. Output Size": "Compact" if q.get("outputsize") == "compact" else "Full size",
                "5. Time Zone": "US/Eastern",
            },
            "Time Series (Daily)": {
                day.isoformat(): {
                    "1. open": f"{row[1]:.4f}",
                    "2. high": f"{row[2]:.4f}",
                    "3. low": f"{row[3]:.4f}",
                    "4. close": f"{row[4]:.4f}",
                    "5. adjusted close": f"{row[5]:.4f}",
                    "6. volume": f"{int(row[6])}",
                    "7. dividend amount": f"{row[7]:.4f}",
                    "8. split coefficient": f"{row[8]:.1f}",
                }
                for day in days
                for row in [series[day]]
            },
        }
        return json_response(200, body)
