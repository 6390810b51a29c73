"""System state (JSON key-value) and latched kill switches with their audit trail."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from actors.store import open_store
from actors.store.state import KillSwitchRecord, KillSwitchStore, SystemState
from daemon.store import Store

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 8, 14, 30, tzinfo=UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


# ---------------------------------------------------------------- SystemState


async def test_missing_key_returns_the_default(store: Store) -> None:
    """get() of an unset key returns None, or the default given."""
    state = SystemState(store)
    assert await state.get("nope") is None
    assert await state.get("nope", {"fallback": 1}) == {"fallback": 1}


@pytest.mark.parametrize(
    "value",
    [
        0,
        -3.25,
        "text with ünïcode",
        True,
        [1, "two", 3.0],
        {"nested": {"list": [1, 2], "flag": False}, "n": None},
    ],
)
async def test_value_round_trips_through_json(store: Store, value: Any) -> None:
    """set() then get() returns an equal JSON value."""
    state = SystemState(store)
    await state.set("key", value, at(0))
    assert await state.get("key") == value


async def test_stored_null_is_not_replaced_by_the_default(store: Store) -> None:
    """A key explicitly set to None returns None, not the default."""
    state = SystemState(store)
    await state.set("key", None, at(0))
    assert await state.get("key", "default") is None


async def test_set_overwrites_and_stamps_the_time(store: Store) -> None:
    """A second set() replaces the value and its updated_at."""
    state = SystemState(store)
    await state.set("equity_peak", 100_000.0, at(0))
    await state.set("equity_peak", 101_500.5, at(5), durable=True)
    assert await state.get("equity_peak") == 101_500.5
    rows = await store.fetchall("SELECT updated_at FROM system_state WHERE key = 'equity_peak'")
    assert [r["updated_at"] for r in rows] == [at(5).isoformat()]


async def test_unserialisable_value_writes_nothing(store: Store) -> None:
    """A value JSON cannot encode raises TypeError and leaves the old value."""
    state = SystemState(store)
    await state.set("key", [1], at(0))
    with pytest.raises(TypeError):
        await state.set("key", {1, 2}, at(1))
    assert await state.get("key") == [1]


# ---------------------------------------------------------------- KillSwitchStore


async def test_tripped_switch_is_active(store: Store) -> None:
    """set(active=True) shows in all() and active() with its reason, time and source."""
    switches = KillSwitchStore(store)
    await switches.set("drawdown", active=True, reason="-12% from peak", source="risk", at=at(0))
    expected = KillSwitchRecord(
        name="drawdown", active=True, reason="-12% from peak", since=at(0), source="risk"
    )
    assert await switches.all() == [expected]
    assert await switches.active() == [expected]


async def test_cleared_switch_is_listed_but_not_active(store: Store) -> None:
    """set(active=False) keeps the switch in all() but drops it from active()."""
    switches = KillSwitchStore(store)
    await switches.set("drawdown", active=True, reason="-12%", source="risk", at=at(0))
    await switches.set("drawdown", active=False, reason="operator reset", source="ctl", at=at(9))
    [rec] = await switches.all()
    assert (rec.active, rec.reason, rec.source, rec.since) == (
        False,
        "operator reset",
        "ctl",
        at(9),
    )
    assert await switches.active() == []


async def test_all_lists_switches_by_name(store: Store) -> None:
    """all() is ordered by name; active() keeps only the tripped ones."""
    switches = KillSwitchStore(store)
    await switches.set("reconcile", active=True, reason="mismatch", source="recon", at=at(0))
    await switches.set("broker", active=False, reason="ok", source="ctl", at=at(1))
    await switches.set("data", active=True, reason="stale", source="data", at=at(2))
    assert [r.name for r in await switches.all()] == ["broker", "data", "reconcile"]
    assert [r.name for r in await switches.active()] == ["data", "reconcile"]


async def test_every_change_is_audited(store: Store) -> None:
    """Each set() appends one kill_switch_events row, in order."""
    switches = KillSwitchStore(store)
    await switches.set("drawdown", active=True, reason="-12%", source="risk", at=at(0))
    await switches.set("drawdown", active=False, reason="reset", source="ctl", at=at(9))
    rows = await store.fetchall(
        "SELECT name, active, reason, source, at FROM kill_switch_events ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("drawdown", 1, "-12%", "risk", at(0).isoformat()),
        ("drawdown", 0, "reset", "ctl", at(9).isoformat()),
    ]


async def test_tripped_switch_stays_latched_across_restart(tmp_path: Path) -> None:
    """An active switch is still active after the store is closed and reopened."""
    path = tmp_path / "state" / "tradingd.db"
    s = await open_store(path)
    await KillSwitchStore(s).set("broker", active=True, reason="401", source="exec", at=at(0))
    await s.close()

    s = await open_store(path)
    try:
        assert [r.name for r in await KillSwitchStore(s).active()] == ["broker"]
    finally:
        await s.close()
