"""Tests for ``actors.risk.cash``."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.risk.cash import CashLedger


def _ledger() -> CashLedger:
    return CashLedger({"a": 60_000, "b": 40_000}, account_cash=100_000)


def test_available_is_the_allocation_when_idle() -> None:
    """With nothing committed or reserved a strategy may use its whole allocation."""
    ledger = _ledger()
    assert ledger.available("a") == 60_000
    assert ledger.available("b") == 40_000


def test_committed_positions_reduce_availability() -> None:
    """Open positions' cost comes off the strategy's allocation."""
    ledger = CashLedger({"a": 60_000}, account_cash=100_000, committed={"a": 50_000})
    assert ledger.available("a") == 10_000


def test_account_cash_caps_availability() -> None:
    """A strategy never gets more than the account's unreserved cash."""
    ledger = CashLedger({"a": 60_000, "b": 40_000}, account_cash=50_000)
    assert ledger.reserve("b", 30_000)
    assert ledger.available("a") == 20_000


def test_reserve_exactly_available_succeeds() -> None:
    """Reserving exactly what is available works; one cent more does not."""
    ledger = _ledger()
    assert not ledger.reserve("a", 60_000.01)
    assert ledger.reserve("a", ledger.available("a"))
    assert ledger.available("a") == 0
    assert not ledger.reserve("a", 0.01)


def test_refused_reserve_changes_nothing() -> None:
    """A refused reservation leaves the ledger as it was."""
    ledger = _ledger()
    before = ledger.state()
    assert not ledger.reserve("a", 70_000)
    assert ledger.state() == before


def test_strategies_cannot_overdraw_each_other() -> None:
    """One strategy's reservations never use another's allocation."""
    ledger = _ledger()
    assert ledger.reserve("a", 60_000)
    assert ledger.available("b") == 40_000
    assert not ledger.reserve("a", 1)


def test_unknown_strategy_has_nothing() -> None:
    """A strategy without an allocation can reserve nothing."""
    ledger = _ledger()
    assert ledger.available("zzz") == 0
    assert not ledger.reserve("zzz", 1)


def test_release_returns_the_reservation() -> None:
    """Releasing a cancelled order's reservation makes it available again."""
    ledger = _ledger()
    ledger.reserve("a", 10_000)
    ledger.release("a", 10_000)
    assert ledger.reserved("a") == 0
    assert ledger.available("a") == 60_000


def test_release_more_than_reserved_is_an_error() -> None:
    """Releasing more than was reserved is a bug and raises."""
    ledger = _ledger()
    ledger.reserve("a", 100)
    with pytest.raises(ValueError, match="reserved"):
        ledger.release("a", 100.01)


def test_commit_turns_a_reservation_into_a_position() -> None:
    """A fill spends the actual cost from cash and adds it to the committed amount."""
    ledger = _ledger()
    ledger.reserve("a", 10_000)
    ledger.commit("a", reserved=10_000, cost=9_990.5)
    assert ledger.reserved("a") == 0
    assert ledger.committed("a") == 9_990.5
    assert ledger.account_cash == 100_000 - 9_990.5
    assert ledger.available("a") == 60_000 - 9_990.5


def test_sale_frees_cost_and_adds_proceeds() -> None:
    """A sale frees the cost basis, adds the proceeds to cash and the gain to its own money."""
    ledger = CashLedger({"a": 60_000}, account_cash=40_000, committed={"a": 20_000})
    ledger.record_sale("a", cost_basis=20_000, proceeds=22_000)
    assert ledger.committed("a") == 0
    assert ledger.account_cash == 62_000
    assert ledger.realized("a") == 2_000
    assert ledger.available("a") == 62_000


def test_a_losing_strategy_cannot_spend_the_others_headroom() -> None:
    """A realised loss shrinks the loser's buying power; idle account cash does not cover it."""
    ledger = CashLedger(
        {"loser": 25_000, "idle": 25_000}, account_cash=40_000, realized={"loser": -10_000}
    )
    assert ledger.available("loser") == 15_000
    assert not ledger.reserve("loser", 15_000.01)
    assert ledger.reserve("loser", 15_000)
    assert ledger.available("idle") == 25_000


def test_a_loss_booked_by_a_sale_is_the_losers_alone() -> None:
    """Selling at a loss takes the loss out of that strategy's own money only."""
    ledger = CashLedger({"a": 50_000, "b": 50_000}, account_cash=80_000, committed={"a": 20_000})
    ledger.record_sale("a", cost_basis=20_000, proceeds=12_000)
    assert ledger.available("a") == 42_000
    assert ledger.available("b") == 50_000


def test_state_round_trips() -> None:
    """CashLedger(**ledger.state()) restores an equal ledger."""
    ledger = _ledger()
    ledger.reserve("a", 1_234.56)
    ledger.commit("a", 1_234.56, 1_230.0)
    ledger.reserve("b", 99.99)
    restored = CashLedger(**ledger.state())
    assert restored.state() == ledger.state()
    assert restored.available("a") == ledger.available("a")


def test_amounts_are_kept_in_cents() -> None:
    """Sub-cent amounts round to the cent, so ten dimes make exactly a dollar."""
    ledger = CashLedger({"a": 1.0}, account_cash=1.0)
    for _ in range(10):
        assert ledger.reserve("a", 0.1)
    assert ledger.reserved("a") == 1.0
    assert ledger.available("a") == 0.0


@pytest.mark.parametrize("amount", [-1.0, math.nan, math.inf])
def test_bad_amounts_are_errors(amount: float) -> None:
    """Negative or non-finite amounts raise instead of corrupting the ledger."""
    with pytest.raises(ValueError, match="finite"):
        _ledger().reserve("a", amount)


def test_negative_allocation_is_an_error() -> None:
    """A negative allocation is refused at construction."""
    with pytest.raises(ValueError, match="allocation of a"):
        CashLedger({"a": -1.0}, account_cash=0)


amounts = st.floats(min_value=0, max_value=200_000, allow_nan=False)
ops = st.lists(
    st.tuples(st.sampled_from(["reserve", "release", "commit"]), st.sampled_from("abc"), amounts),
    max_size=60,
)


@given(
    st.dictionaries(st.sampled_from("abc"), amounts, min_size=1),
    st.floats(min_value=0, max_value=300_000, allow_nan=False),
    ops,
)
def test_reservations_never_exceed_cash_or_allocation(
    allocations: dict[str, float], cash: float, steps: list[tuple[str, str, float]]
) -> None:
    """No sequence of reserves, releases and exact commits overdraws the account or a strategy."""
    ledger = CashLedger(allocations, account_cash=cash)
    for op, strategy, amount in steps:
        if op == "reserve":
            before = ledger.available(strategy)
            ok = ledger.reserve(strategy, amount)
            assert ok == (round(amount * 100) <= round(before * 100))
        elif op == "release":
            ledger.release(strategy, min(amount, ledger.reserved(strategy)))
        else:
            held = min(amount, ledger.reserved(strategy))
            ledger.commit(strategy, reserved=held, cost=held)
        assert ledger.total_reserved <= ledger.account_cash
        for s in "abc":
            assert ledger.reserved(s) <= ledger.allocation(s)
            assert ledger.reserved(s) + ledger.committed(s) <= ledger.allocation(s) + 1e-6
            assert ledger.available(s) >= 0
