"""What the kill switches did during a backtest, in the summary's words.

A latched switch (the drawdown ones, ``bad_data``...) stops new entries until an
operator resumes; in a backtest nobody does, so a switch that trips in year three
leaves the rest of the run without a trade. The summary says so, with the sessions
it covered, instead of leaving a flat equity curve unexplained.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from actors.store.state import KillSwitchRecord


def switch_lines(events: Sequence[KillSwitchRecord], sessions: Sequence[dt.date]) -> list[str]:
    """One line per trip: the switch, the date, why, and until when (or the run's end).

    ``events`` is the audit trail in order (trips and clears); ``sessions`` the run's.
    """
    lines: list[str] = []
    tripped: dict[str, KillSwitchRecord] = {}
    for event in events:
        if event.active:
            tripped.setdefault(event.name, event)
        elif event.name in tripped:
            since = tripped.pop(event.name)
            lines.append(_line(since, event.since.date(), sessions))
    lines.extend(_line(since, None, sessions) for since in tripped.values())
    return lines


def _line(since: KillSwitchRecord, until: dt.date | None, sessions: Sequence[dt.date]) -> str:
    start = since.since.date()
    covered = sum(1 for d in sessions if d >= start and (until is None or d < until))
    span = f"cleared {until}" if until is not None else "on to the end of the run"
    return (
        f"kill switch {since.name} tripped {start} ({since.source}): {since.reason};"
        f" {span}, {covered} sessions without new entries"
    )
