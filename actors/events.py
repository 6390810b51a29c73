"""Kinds of entries in the per-run event file (``daemon.logging.EventLog``)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Kinds of entries in the per-run event file (the reference system's names)."""

    SIGNAL_GENERATED = "SIGNAL_GENERATED"
    SIGNAL_REJECTED = "SIGNAL_REJECTED"
    ORDER_INTENT_CREATED = "ORDER_INTENT_CREATED"
    ORDER_SUBMITTED = "ORDER_SUBMITTED"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_REJECTED = "ORDER_REJECTED"
    RECONCILIATION_CHECK = "RECONCILIATION_CHECK"
    KILL_SWITCH_TRIGGERED = "KILL_SWITCH_TRIGGERED"
    KILL_SWITCH_CLEARED = "KILL_SWITCH_CLEARED"
    STRATEGY_DISABLED = "STRATEGY_DISABLED"
    RISK_LIMIT_HIT = "RISK_LIMIT_HIT"
    ERROR = "ERROR"
    CYCLE_STARTED = "CYCLE_STARTED"
    CYCLE_COMPLETED = "CYCLE_COMPLETED"
    DATA_REJECTED = "DATA_REJECTED"
