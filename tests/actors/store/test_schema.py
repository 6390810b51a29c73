"""The schema's indexes: the reads of every session search them, not whole tables."""

from __future__ import annotations

import pytest

from actors.store.corporate_actions import (
    BARS_DUE_SQL,
    CREDIT_DUE_SQL,
    UNADJUSTED_SQL,
    UNAPPLIED_SQL,
)
from actors.store.sim_broker import OWED_SQL
from daemon.store import Store

DAY = "2026-06-15"


async def _plan(store: Store, sql: str) -> list[str]:
    rows = await store.fetchall("EXPLAIN QUERY PLAN " + sql, (DAY,) * sql.count("?"))
    return [str(r["detail"]) for r in rows]


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        (UNAPPLIED_SQL, "corporate_actions_unapplied"),
        (BARS_DUE_SQL, "corporate_actions_bars_due"),
        (CREDIT_DUE_SQL, "corporate_actions_uncredited"),
        (UNADJUSTED_SQL, "corporate_actions_ex_date"),
        (OWED_SQL, "sim_corporate_actions_owed"),
    ],
)
async def test_a_session_read_of_corporate_actions_uses_its_index(
    store: Store, sql: str, index: str
) -> None:
    """Each per-session corporate-action query reads its index, never the whole table."""
    plan = await _plan(store, sql)
    assert any(f"USING INDEX {index}" in step for step in plan), plan
    assert not any(step.startswith("SCAN") and "INDEX" not in step for step in plan), plan
