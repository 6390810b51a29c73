"""A fake of Alpaca's market-data API: daily bars and corporate actions (paginated).

``GET /v2/stocks/bars`` (multi-symbol): bars live in memory (``add_bars``);
they are ordered by symbol then time.

``GET /v1/corporate-actions`` (the path alpaca-py calls; ``/v1beta1/...``, the
endpoint's earlier name, answers the same): actions live in memory per type
as Alpaca sends them (``corporate_actions``: ``"forward_splits" -> [item, ...]``),
added with ``add_forward_split``, ``add_reverse_split``, ``add_stock_dividend``,
``add_cash_dividend``, ``add_name_change``, ``add_spin_off`` or, for any item
at all (a malformed one), ``add_corporate_action``. As the real API: ``symbols``
and ``types`` filter (a name change matches its old and its new symbol: an
assumption, Alpaca does not say), ``start``/``end`` select by *process* date
(inclusive; a missing bound is open here, where Alpaca means "today"), items
are ordered by process date (``sort=desc`` reverses), ``limit`` is 1..1000
(default 100) and the answer is ``{"corporate_actions": {type: [...]},
"next_page_token": ...}`` with the empty types left out.

Both: a request must carry the ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY``
headers (401 otherwise); at most ``min(limit, page_size)`` items per page, and
``next_page_token`` continues. Faults (for whichever request comes next):
``fail_next`` (429 carries ``X-Ratelimit-*`` headers), ``hang_next``,
``malformed_next``, ``partial_next`` (bars: leave some symbols out).
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from tests.fakes import FakeHTTPServer, Fault, RecordedRequest, Response, json_response

NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC

Row = tuple[dt.date, float, float, float, float, float]

BARS_PATH = "/v2/stocks/bars"
ACTIONS_PATHS = frozenset({"/v1/corporate-actions", "/v1beta1/corporate-actions"})

#: The fields that name a symbol, per type of corporate action.
SYMBOL_FIELDS: dict[str, tuple[str, ...]] = {
    "name_changes": ("old_symbol", "new_symbol"),
    "spin_offs": ("source_symbol", "new_symbol"),
    "unit_splits": ("old_symbol", "new_symbol", "alternate_symbol"),
    "cash_mergers": ("acquiree_symbol", "acquirer_symbol"),
    "stock_mergers": ("acquiree_symbol", "acquirer_symbol"),
    "stock_and_cash_mergers": ("acquiree_symbol", "acquirer_symbol"),
    "rights_distributions": ("source_symbol", "new_symbol"),
}


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
        self.corporate_actions: dict[str, list[dict[str, Any]]] = {}
        self._action_count = 0

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

    # ------------------------------------------------------------ corporate actions

    def add_corporate_action(self, type_key: str, item: dict[str, Any]) -> dict[str, Any]:
        """Serve ``item`` under ``type_key`` (``"forward_splits"``, ...) exactly as given."""
        self.corporate_actions.setdefault(type_key, []).append(item)
        return item

    def _new_id(self) -> str:
        self._action_count += 1
        return str(uuid.UUID(int=self._action_count))

    def add_forward_split(
        self,
        symbol: str,
        ex_date: dt.date,
        new_rate: float,
        old_rate: float,
        *,
        process_date: dt.date | None = None,
    ) -> dict[str, Any]:
        """A forward split, ``new_rate`` shares for ``old_rate`` (processed on the ex date)."""
        return self.add_corporate_action(
            "forward_splits",
            {
                "id": self._new_id(),
                "symbol": symbol,
                "cusip": "000000001",
                "new_rate": new_rate,
                "old_rate": old_rate,
                "process_date": (process_date or ex_date).isoformat(),
                "ex_date": ex_date.isoformat(),
                "record_date": ex_date.isoformat(),
                "payable_date": ex_date.isoformat(),
            },
        )

    def add_reverse_split(
        self, symbol: str, ex_date: dt.date, new_rate: float, old_rate: float
    ) -> dict[str, Any]:
        """A reverse split, ``new_rate`` shares for ``old_rate`` (1 for 10: 1, 10)."""
        return self.add_corporate_action(
            "reverse_splits",
            {
                "id": self._new_id(),
                "symbol": symbol,
                "old_cusip": "000000002",
                "new_cusip": "000000003",
                "new_rate": new_rate,
                "old_rate": old_rate,
                "process_date": ex_date.isoformat(),
                "ex_date": ex_date.isoformat(),
                "record_date": ex_date.isoformat(),
                "payable_date": ex_date.isoformat(),
            },
        )

    def add_stock_dividend(self, symbol: str, ex_date: dt.date, rate: float) -> dict[str, Any]:
        """A stock dividend of ``rate`` new shares per share (0.05 for 5 %)."""
        return self.add_corporate_action(
            "stock_dividends",
            {
                "id": self._new_id(),
                "symbol": symbol,
                "cusip": "000000004",
                "rate": rate,
                "process_date": ex_date.isoformat(),
                "ex_date": ex_date.isoformat(),
                "record_date": ex_date.isoformat(),
            },
        )

    def add_cash_dividend(
        self,
        symbol: str,
        ex_date: dt.date,
        rate: float,
        payable_date: dt.date | None = None,
    ) -> dict[str, Any]:
        """A cash dividend of ``rate`` per share; processed on its payable date, as Alpaca does."""
        payable = payable_date or ex_date
        item: dict[str, Any] = {
            "id": self._new_id(),
            "symbol": symbol,
            "cusip": "000000005",
            "rate": rate,
            "special": False,
            "foreign": False,
            "process_date": payable.isoformat(),
            "ex_date": ex_date.isoformat(),
            "record_date": ex_date.isoformat(),
        }
        if payable_date is not None:
            item["payable_date"] = payable_date.isoformat()
        return self.add_corporate_action("cash_dividends", item)

    def add_name_change(
        self, old_symbol: str, new_symbol: str, process_date: dt.date
    ) -> dict[str, Any]:
        """A symbol change, effective on ``process_date`` (a name change has no ex date)."""
        return self.add_corporate_action(
            "name_changes",
            {
                "id": self._new_id(),
                "old_symbol": old_symbol,
                "old_cusip": "000000006",
                "new_symbol": new_symbol,
                "new_cusip": "000000007",
                "process_date": process_date.isoformat(),
            },
        )

    def add_spin_off(
        self, source_symbol: str, new_symbol: str, ex_date: dt.date, new_rate: float = 1.0
    ) -> dict[str, Any]:
        """A spin-off: ``new_rate`` shares of ``new_symbol`` per share of ``source_symbol``."""
        return self.add_corporate_action(
            "spin_offs",
            {
                "id": self._new_id(),
                "source_symbol": source_symbol,
                "source_cusip": "000000008",
                "source_rate": 1.0,
                "new_symbol": new_symbol,
                "new_cusip": "000000009",
                "new_rate": new_rate,
                "process_date": ex_date.isoformat(),
                "ex_date": ex_date.isoformat(),
            },
        )

    # ------------------------------------------------------------ faults

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
        return [r for r in self.requests if r.path == BARS_PATH]

    @property
    def action_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path in ACTIONS_PATHS]

    def answer(self, request: RecordedRequest, fault: Fault | None) -> Response:
        if (
            request.headers.get("apca-api-key-id") != self.api_key
            or request.headers.get("apca-api-secret-key") != self.secret_key
        ):
            return json_response(401, {"code": 40110000, "message": "request is not authorized"})
        if request.path == BARS_PATH:
            return self._bars(request, fault)
        if request.path in ACTIONS_PATHS:
            return self._actions(request)
        return json_response(404, {"code": 40410000, "message": "endpoint not found"})

    def _bars(self, request: RecordedRequest, fault: Fault | None) -> Response:
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

    def _actions(self, request: RecordedRequest) -> Response:
        q = request.query
        limit = int(q.get("limit") or 100)
        if not 1 <= limit <= 1000:
            return json_response(422, {"code": 42210000, "message": "limit must be 1..1000"})
        symbols = {s for s in q.get("symbols", "").split(",") if s}
        types = {f"{t}s" for t in q.get("types", "").split(",") if t}
        start = q.get("start") or "0000-00-00"
        end = q.get("end") or "9999-99-99"
        items = [
            (key, item)
            for key, listed in self.corporate_actions.items()
            if not types or key in types
            for item in listed
            if start <= str(item.get("process_date", "")) <= end
            and (not symbols or symbols & _symbols_of(key, item))
        ]
        items.sort(
            key=lambda ki: str(ki[1].get("process_date", "")), reverse=q.get("sort") == "desc"
        )
        offset = int(base64.b64decode(q["page_token"]).decode()) if q.get("page_token") else 0
        size = min(limit, self.page_size)
        out: dict[str, list[dict[str, Any]]] = {}
        for key, item in items[offset : offset + size]:
            out.setdefault(key, []).append(item)
        nxt = offset + size
        token = base64.b64encode(str(nxt).encode()).decode() if nxt < len(items) else None
        return json_response(200, {"corporate_actions": out, "next_page_token": token})


def _symbols_of(key: str, item: dict[str, Any]) -> set[str]:
    return {str(item[f]) for f in SYMBOL_FIELDS.get(key, ("symbol",)) if item.get(f)}
