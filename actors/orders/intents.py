"""Order intents: deterministic ids and the status transition table (pure).

**Ids.** ``intent_id(asof, strategy, symbol, side)`` is a function of the trading
date, the strategy, the symbol and the side, and of nothing else: no run id,
no clock, no quantity. It is sent to the broker as the client order id, and the
broker refuses a second order with the same client id, so a re-run of the same
day after a crash at any instant can find (and adopt) the order instead of
placing it twice. The reference system hashed the run id and the wall-clock
hour in; a re-run then got a new id and could buy twice.

The readable form is ``YYYYMMDD-<code>-<symbol>-<side>``, e.g.
``20261123-rmr-AAPL-buy``:

- ``<code>`` is a short code for the four built-in strategies (``rmr``,
  ``mac``, ``mom``, ``mlm``), and the first 6 hex digits of the SHA-256 of the
  name for any other strategy (never 3 characters, so never one of the codes).
- ``<symbol>`` keeps ``[A-Za-z0-9._-]`` (``BRK.B`` stays ``BRK.B``); any other
  character becomes ``_`` and a 6-hex hash of the original symbol is appended,
  so two symbols that sanitise alike still get distinct ids.
- Neither the date nor the code contains ``-`` and the side is the last field,
  so the symbol is unambiguous even when it contains ``-``.

If the readable form would exceed ``MAX_CLIENT_ORDER_ID`` (48) characters, the
id is ``YYYYMMDD-h-<32 hex of SHA-256 over the four fields>`` (43 characters).
It cannot equal a readable id: those end in ``buy``/``sell``, which are not hex.

**Resting stops.** A protective stop sell resting at the broker has the id
``resting_stop_id(asof, strategy, symbol, n)``: ``YYYYMMDD-<code>-<symbol>-s<n>``,
the date it was placed and its number among that lot's stops of that date
(``s1``, then ``s2`` when it is replaced the same day). The number comes from
the stored intents and the intent is written before it is sent, so a restart
finds the stop it placed instead of placing a second. The fallback is
``YYYYMMDD-t-<32 hex>``. Neither can equal an order id: those end in
``buy``/``sell`` and their fallback has ``-h-``.

**Statuses.** ``next_status`` maps what the broker reports onto our intent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from actors.brokers.base import MAX_CLIENT_ORDER_ID, BrokerOrderStatus
from actors.messages import IntentStatus

STRATEGY_CODES: dict[str, str] = {
    "rsi_mean_reversion": "rmr",
    "ma_crossover": "mac",
    "momentum": "mom",
    "ml_momentum": "mlm",
}
SIDES = ("buy", "sell")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_ALLOWED_ID = re.compile(r"[A-Za-z0-9._-]+")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def strategy_code(strategy: str) -> str:
    """The short code of a built-in strategy, else 6 hex digits of the name's SHA-256."""
    return STRATEGY_CODES.get(strategy) or _sha(strategy)[:6]


def symbol_part(symbol: str) -> str:
    """``symbol`` as it appears in an id: unchanged if safe, else sanitised plus a hash."""
    if not symbol:
        raise ValueError("symbol must not be empty")
    safe = _UNSAFE.sub("_", symbol)
    if safe == symbol:
        return symbol
    return f"{safe}.{_sha(symbol)[:6]}"


def intent_id(asof: dt.date, strategy: str, symbol: str, side: str) -> str:
    """The deterministic intent (and client order) id of one order on one trading date."""
    if side not in SIDES:
        raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
    if not strategy:
        raise ValueError("strategy must not be empty")
    day = asof.strftime("%Y%m%d")
    readable = f"{day}-{strategy_code(strategy)}-{symbol_part(symbol)}-{side}"
    if len(readable) <= MAX_CLIENT_ORDER_ID:
        return readable
    digest = _sha("\x1f".join((asof.isoformat(), strategy, symbol, side)))[:32]
    return f"{day}-h-{digest}"


def resting_stop_id(asof: dt.date, strategy: str, symbol: str, n: int) -> str:
    """The deterministic id of the ``n``-th protective stop (from 1) a lot got on ``asof``."""
    if n < 1:
        raise ValueError(f"a stop's number starts at 1, got {n}")
    if not strategy:
        raise ValueError("strategy must not be empty")
    day = asof.strftime("%Y%m%d")
    readable = f"{day}-{strategy_code(strategy)}-{symbol_part(symbol)}-s{n}"
    if len(readable) <= MAX_CLIENT_ORDER_ID:
        return readable
    digest = _sha("\x1f".join((asof.isoformat(), strategy, symbol, "stop", str(n))))[:32]
    return f"{day}-t-{digest}"


def is_valid_id(value: str) -> bool:
    """Whether ``value`` is usable as a client order id (length and alphabet)."""
    return 0 < len(value) <= MAX_CLIENT_ORDER_ID and _ALLOWED_ID.fullmatch(value) is not None


_BROKER_TERMINAL: dict[BrokerOrderStatus, IntentStatus] = {
    BrokerOrderStatus.FILLED: IntentStatus.FILLED,
    BrokerOrderStatus.CANCELED: IntentStatus.CANCELED,
    BrokerOrderStatus.EXPIRED: IntentStatus.EXPIRED,
    BrokerOrderStatus.REJECTED: IntentStatus.REJECTED,
}


def next_status(
    current: IntentStatus, broker: BrokerOrderStatus, filled_qty: int, qty: int
) -> IntentStatus:
    """Our intent's status once the broker reports ``broker`` with ``filled_qty`` of ``qty``.

    - A terminal intent never moves.
    - A terminal broker status is taken as is. ``canceled``/``expired`` after a
      partial fill stay CANCELED/EXPIRED: the partial quantity is booked as
      fills, the rest will never fill.
    - Otherwise (new, pending_new, accepted, partially_filled): PARTIALLY_FILLED
      when ``0 < filled_qty < qty``, FILLED when everything is filled, else ACCEPTED.
    """
    if current.terminal:
        return current
    terminal = _BROKER_TERMINAL.get(broker)
    if terminal is not None:
        return terminal
    if qty > 0 and filled_qty >= qty:
        return IntentStatus.FILLED
    if filled_qty > 0:
        return IntentStatus.PARTIALLY_FILLED
    return IntentStatus.ACCEPTED
