"""The peer benchmark's rule, settings and fill comparison (``peer_rule``, ``peer_vectorbt``).

Benchmarks are outside ``make test`` (``--ignore=tests/benchmarks``); these run when
named: ``pytest tests/benchmarks/test_peer_rule.py``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from actors.strategies.sizing import atr_position_size
from actors.system.config import load_settings
from tests.benchmarks import peer_rule
from tests.benchmarks.peer_rule import Fill, compare_fills, explained_by_ties, sma_ties
from tests.benchmarks.peer_vectorbt import Floats, rule_orders

D = dt.date(2025, 3, 3)


def test_the_budget_is_one_percent_of_25000_bit_for_bit() -> None:
    """Scaling capital up and the risk share down leaves the dollars risked exactly $250."""
    assert peer_rule.RISK_BUDGET == 25_000.0 * 0.01


def test_entry_size_is_tradings_sizing_of_the_budget() -> None:
    """An entry risks the budget at a 3 ATR stop, as tradingd sizes $25,000 at 1 %."""
    assert peer_rule.entry_size(100.0, 2.0) == atr_position_size(25_000.0, 100.0, 2.0) == 41


def test_the_stop_is_three_atr_below_the_fill_on_the_cent() -> None:
    """The protective stop is the fill less 3 ATR, rounded to the cent."""
    assert peer_rule.protective_stop(100.0, 1.234) == 96.3


def test_non_binding_settings_are_valid_and_take_effect() -> None:
    """Every override names a real setting, and the risk layer reads the values."""
    settings = load_settings(None, environ=peer_rule.settings_environ(peer_rule.NON_BINDING))
    risk = settings.cycle_risk
    assert risk.sizing_base == "strategy"
    assert risk.regime.heat_crisis == 1.0
    assert risk.correlation.min_multiplier == 1.0
    assert risk.limits.max_orders_per_day == 10**9
    assert settings.strategies.ma_crossover.capital == peer_rule.CAPITAL
    assert settings.broker.initial_cash == peer_rule.INITIAL_CASH


def test_compare_fills_counts_identical_fills_as_a_multiset() -> None:
    """Agreement is the fills both lists have, out of the longer list."""
    a = [Fill("X", "buy", D, 5), Fill("X", "buy", D, 5), Fill("Y", "sell", D, 3)]
    b = [Fill("X", "buy", D, 5), Fill("Y", "sell", D, 4)]
    agreement = compare_fills(a, b)
    assert (agreement.agree, agreement.total) == (1, 3)
    assert agreement.only_ours == [Fill("X", "buy", D, 5), Fill("Y", "sell", D, 3)]
    assert agreement.only_theirs == [Fill("Y", "sell", D, 4)]
    assert round(agreement.percent, 2) == 33.33


def _bars(low: float) -> dict[str, Floats]:
    n = 5
    column = np.ones((n, 1))
    return {
        "open": column * 100.0,
        "low": np.array([[99.0], [99.0], [99.0], [low], [99.0]]),
        "close": column * 100.0,
        "fast": np.array([[1.0], [1.0], [3.0], [3.0], [1.0]]),
        "slow": column * 2.0,
        "adx": column * 25.0,
        "atr": column * 2.0,
    }


def test_rule_orders_enter_the_bar_after_a_cross_and_exit_the_bar_after_it_ends() -> None:
    """A cross up at bar 2 buys at bar 3; fast below slow at bar 4 sells at bar 5 (none here)."""
    orders = rule_orders(_bars(low=99.0), np.ones((5, 1), dtype=bool))
    assert orders.entries[:, 0].tolist() == [False, False, False, True, False]
    assert orders.exits[:, 0].tolist() == [False, True, True, False, False]
    assert orders.size[3, 0] == 41
    fill = 100.0 * (1 + peer_rule.SLIPPAGE)
    stop = peer_rule.protective_stop(fill, 2.0)
    assert abs(fill * (1 - orders.sl_stop[3, 0]) - stop) < 1e-9
    assert not orders.same_session.any()


def test_an_entry_whose_own_session_reaches_its_stop_is_a_same_session_round_trip() -> None:
    """A low at the stop on the entry bar: no entry for vectorbt, a same-session stop."""
    fill = 100.0 * (1 + peer_rule.SLIPPAGE)
    orders = rule_orders(
        _bars(low=peer_rule.protective_stop(fill, 2.0)), np.ones((5, 1), dtype=bool)
    )
    assert not orders.entries.any()
    assert orders.same_session[3, 0]
    assert orders.size[3, 0] == 41


def _closes(values: list[float]) -> pd.DataFrame:
    days = pd.bdate_range("2024-01-01", periods=len(values))
    return pd.DataFrame({"symbol": "X", "date": days, "close": values})


def test_sma_ties_finds_sessions_where_the_averages_are_exactly_equal() -> None:
    """A flat history makes SMA20 == SMA100 on every session once both are defined."""
    frame = _closes([41.77] * 101)
    ties = sma_ties(frame, dt.date(2024, 1, 1))
    assert len(ties["X"]) == 2
    assert ties["X"][0] == frame["date"].iloc[99].date()


def test_sma_ties_finds_none_where_the_averages_differ_by_a_cent_share() -> None:
    """One cent more in the last close lifts SMA20 above SMA100: no tie there."""
    frame = _closes([41.77] * 99 + [41.78])
    assert sma_ties(frame, dt.date(2024, 1, 1)) == {}


def test_explained_by_ties_counts_differing_fills_after_a_tie_in_their_symbol() -> None:
    """Fills of a symbol with an earlier tie are explained; later ties or other symbols not."""
    agreement = compare_fills(
        [Fill("X", "buy", D, 56), Fill("Y", "buy", D, 1)], [Fill("X", "buy", D, 55)]
    )
    later = D + dt.timedelta(days=1)
    assert explained_by_ties(agreement, {"X": [D]}) == 2
    assert explained_by_ties(agreement, {"X": [later], "Y": [later]}) == 0
