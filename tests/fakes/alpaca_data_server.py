"""A fake of Alpaca's market-data API: ``GET /v2/stocks/bars`` (multi-symbol, paginated).

Bars live in memory (``add_bars``); a request must carry the
``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` headers (401 otherwise). Pagination
follows the real API: bars are ordered by symbol then time, at most
``min(limit, page_size)`` per page, and ``next_page_token`` continues. Faults:
``fail_next`` (429 carries ``X-Ratelimit-*`` headers), ``hang_next``,
``malformed_next``, ``partial_next`` (leave some symbols out).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from tests.fakes import FakeHTTPServer, Fault, RecordedRequest, Response, json_response

NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC

Row = tuple[dt.date, float, float, float, float, float]


def _parse_time(text: str) -> dt.datetime:
    if len(text) == 10:
        return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(0), UTC)
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class FakeAlpacaDataServer(FakeHTTPServer):
    """Serves daily bars for the symbols added with ``add_bars``."""

    def __init__(
        self, api_key: str = "test-key-id", secret_key: str = "test-secret", page_size: int = 10_000
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.secret_key = secret_key
        self.page_size = page_size
        self.bars: dict[str, list[dict[str, Any]]] = {}

    def add_bars(self, symbol: str, rows: Iterable[Row]) -> None:
        """Add daily bars ``(date, open, high, low, close, volume)``, stamped midnight New York."""
        out = self.bars.setdefault(symbol, [])
        for day, o, h, lo, c, v in rows:
            stamp = dt.datetime.combine(day, dt.time(0), NEW_YORK).astimezone(UTC)
            out.append(
                {
                    "t": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "o": o,
                    "h": h,
                    "l": lo,
                    "c": c,
                    "v": v,
                    "n": 1000,
                    "vw": round((h + lo + c) / 3, 4),
                }
            )
        out.sort(key=lambda b: b["t"])

    def partial_next(self, drop: Iterable[str], times: int = 1) -> None:
        """Leave the symbols in ``drop`` out of the next answers."""
        self.inject(Fault("partial", extra={"drop": set(drop)}), times)

    def fail_next(
        self, status: int, times: int = 1, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        """Answer HTTP ``status``; a 429 also carries the ``X-Ratelimit-*`` headers."""
        if status == 429 and headers is None:
            headers = {
                "X-Ratelimit-Limit": "200",
                "X-Ratelimit-Remaining": "0",
                "X-Ratelimit-Reset": "1700000060",
            }
            body = body or {"code": 42910000, "message": "rate limit exceeded"}
        super().fail_next(status, times, body, headers)

    @property
    def bar_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v2/stocks/bars"]

    def answer(self, request: RecordedRequest, fault: Fault | None) -> Response:
        if (
            request.headers.get("apca-api-key-id") != self.api_key
            or request.headers.get("apca-api-secret-key") != self.secret_key
        ):
            return json_response(401, {"code": 40110000, "message": "request is not authorized"})
        if request.path != "/v2/stocks/bars":
            return json_response(404, {"code": 40410000, "message": "endpoint not found"})
        q = request.query
        if q.get("timeframe") not in ("1Day", "1D"):
            return json_response(422, {"code": 42210000, "message": "invalid timeframe"})
        symbols = [s for s in q.get("symbols", "").split(",") if s]
        if not symbols:
            return json_response(422, {"code": 42210000, "message": "missing symbols"})
        start = _parse_time(q["start"]) if "start" in q else dt.datetime.min.replace(tzinfo=UTC)
        end = _parse_time(q["end"]) if "end" in q else dt.datetime.max.replace(tzinfo=UTC)
        drop: set[str] = fault.extra["drop"] if fault and fault.kind == "partial" else set()
        items = [
            (symbol, bar)
            for symbol in sorted(set(symbols) - drop)
            for bar in self.bars.get(symbol, [])
            if start <= _parse_time(bar["t"]) <= end
        ]
        offset = int(base64.b64decode(q["page_token"]).decode()) if q.get("page_token") else 0
        limit = min(int(q.get("limit") or 10_000), self.page_size)
        page = items[offset : offset + limit]
        out: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            out.setdefault(symbol, []).append(bar)
        nxt = offset + limit
        token = base64.b64encode(str(nxt).encode()).decode() if nxt < len(items) else None
        return json_response(200, {"bars": out, "next_page_token": token})
