"""Deterministic intent ids and the intent status transition table."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.brokers.base import MAX_CLIENT_ORDER_ID, BrokerOrderStatus
from actors.messages import IntentStatus
from actors.orders.intents import intent_id, is_valid_id, next_status, strategy_code

ASOF = dt.date(2026, 11, 23)
ID_RE = re.compile(r"[A-Za-z0-9._-]{1,48}")
B = BrokerOrderStatus
I = IntentStatus  # noqa: E741

names = st.text(min_size=1, max_size=80)
symbols = st.text(min_size=1, max_size=80)
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31))
sides = st.sampled_from(["buy", "sell"])


def test_readable_id_for_builtin_strategy() -> None:
    """A built-in strategy gets its short code: date-code-symbol-side."""
    assert intent_id(ASOF, "rsi_mean_reversion", "AAPL", "buy") == "20261123-rmr-AAPL-buy"
    assert intent_id(ASOF, "ma_crossover", "MSFT", "sell") == "20261123-mac-MSFT-sell"
    assert intent_id(ASOF, "momentum", "XOM", "buy") == "20261123-mom-XOM-buy"
    assert intent_id(ASOF, "ml_momentum", "KO", "buy") == "20261123-mlm-KO-buy"


def test_id_is_stable_across_calls() -> None:
    """The same four fields give the same id every time (no run id, no clock)."""
    first = intent_id(ASOF, "momentum", "AAPL", "buy")
    assert all(intent_id(ASOF, "momentum", "AAPL", "buy") == first for _ in range(3))


def test_other_strategy_gets_a_six_hex_code() -> None:
    """A strategy without a short code is named by 6 hex digits of its SHA-256."""
    code = strategy_code("breakout")
    assert re.fullmatch(r"[0-9a-f]{6}", code)
    assert intent_id(ASOF, "breakout", "AAPL", "buy") == f"20261123-{code}-AAPL-buy"


def test_class_share_symbol_is_kept() -> None:
    """BRK.B keeps its dot."""
    assert intent_id(ASOF, "momentum", "BRK.B", "buy") == "20261123-mom-BRK.B-buy"


def test_unsafe_symbols_are_sanitised_but_stay_distinct() -> None:
    """Symbols with characters outside the alphabet are sanitised and still differ."""
    a = intent_id(ASOF, "momentum", "BRK/B", "buy")
    b = intent_id(ASOF, "momentum", "BRK B", "buy")
    c = intent_id(ASOF, "momentum", "BRK_B", "buy")
    assert len({a, b, c}) == 3
    assert all(is_valid_id(x) for x in (a, b, c))


def test_long_names_fall_back_to_a_hash_within_48() -> None:
    """A name that would make the id too long falls back to a date-prefixed hash."""
    value = intent_id(ASOF, "a" * 200, "VERYLONGSYMBOL" * 4, "sell")
    assert len(value) <= MAX_CLIENT_ORDER_ID
    assert value.startswith("20261123-h-")
    assert value == intent_id(ASOF, "a" * 200, "VERYLONGSYMBOL" * 4, "sell")


def test_bad_side_is_refused() -> None:
    """Only 'buy' and 'sell' are sides."""
    with pytest.raises(ValueError, match="side"):
        intent_id(ASOF, "momentum", "AAPL", "BUY")


@given(dates, names, symbols, sides)
def test_every_id_is_a_valid_client_order_id(
    asof: dt.date, strategy: str, symbol: str, side: str
) -> None:
    """Any strategy name and symbol give an id of at most 48 safe characters."""
    assert ID_RE.fullmatch(intent_id(asof, strategy, symbol, side))


@given(
    st.tuples(dates, st.sampled_from(["momentum", "x", "breakout"]), symbols, sides),
    st.tuples(dates, st.sampled_from(["momentum", "x", "breakout"]), symbols, sides),
)
def test_ids_differ_when_any_field_differs(
    a: tuple[dt.date, str, str, str], b: tuple[dt.date, str, str, str]
) -> None:
    """Two intents that differ in date, strategy, symbol or side get different ids."""
    if a != b:
        assert intent_id(*a) != intent_id(*b)


def test_each_field_changes_the_id() -> None:
    """Changing exactly one of the four fields changes the id."""
    base = (ASOF, "momentum", "AAPL", "buy")
    variants = [
        (ASOF + dt.timedelta(days=1), "momentum", "AAPL", "buy"),
        (ASOF, "ma_crossover", "AAPL", "buy"),
        (ASOF, "momentum", "AAP", "buy"),
        (ASOF, "momentum", "AAPL", "sell"),
    ]
    ids = {intent_id(*base), *(intent_id(*v) for v in variants)}
    assert len(ids) == 5


@pytest.mark.parametrize("terminal", [I.FILLED, I.REJECTED, I.CANCELED, I.EXPIRED])
@pytest.mark.parametrize("broker", list(B))
def test_terminal_intents_never_move(terminal: IntentStatus, broker: BrokerOrderStatus) -> None:
    """A terminal intent keeps its status whatever the broker says."""
    assert next_status(terminal, broker, 5, 10) is terminal


@pytest.mark.parametrize(
    ("current", "broker", "filled", "expected"),
    [
        (I.SUBMITTED, B.NEW, 0, I.ACCEPTED),
        (I.SUBMITTED, B.PENDING_NEW, 0, I.ACCEPTED),
        (I.UNKNOWN, B.ACCEPTED, 0, I.ACCEPTED),
        (I.NEW, B.ACCEPTED, 0, I.ACCEPTED),
        (I.ACCEPTED, B.PARTIALLY_FILLED, 4, I.PARTIALLY_FILLED),
        (I.ACCEPTED, B.ACCEPTED, 4, I.PARTIALLY_FILLED),
        (I.PARTIALLY_FILLED, B.PARTIALLY_FILLED, 10, I.FILLED),
        (I.PARTIALLY_FILLED, B.FILLED, 10, I.FILLED),
        (I.SUBMITTED, B.FILLED, 10, I.FILLED),
        (I.SUBMITTED, B.REJECTED, 0, I.REJECTED),
        (I.ACCEPTED, B.CANCELED, 0, I.CANCELED),
        (I.PARTIALLY_FILLED, B.CANCELED, 4, I.CANCELED),
        (I.PARTIALLY_FILLED, B.EXPIRED, 4, I.EXPIRED),
        (I.ACCEPTED, B.EXPIRED, 0, I.EXPIRED),
    ],
)
def test_transition_table(
    current: IntentStatus, broker: BrokerOrderStatus, filled: int, expected: IntentStatus
) -> None:
    """Broker states map onto intent states (partial when 0 < filled < qty and not terminal)."""
    assert next_status(current, broker, filled, 10) is expected
