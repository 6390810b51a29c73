"""One count of orders everywhere (issue 14), through the real ``tradingd`` and ``tradectl``.

The daemon runs one cycle a day over six sessions of the synthetic market, on the
simulated broker, restarted between days, alternately during the session (09:47)
and after the previous close (16:30 the day before, New York time: after the close
the trading date is the next session). Each day the operator asks for the
plan, runs the cycle, then reads the funnel, the orders, the cycle's summary and
a real scrape of ``/metrics``; every one of them must tell the same number:

- the plan's orders are the orders the cycle placed (strategy, symbol, side, qty);
- the summary says "N orders placed (B buys, S sells)" with those N, B and S;
- ``tradingd_orders_total`` (summed over statuses) is N in that day's process;
- the funnel's ``executed`` (signals that became orders) is the plan's ENTRY and
  EXIT orders (STOP exits are the stop-loss rule's, not a strategy signal's).

The protective stops resting at the broker are orders of their own, told apart
by their stop price (``tradectl orders`` shows it) and left out of every count
above.
"""

from __future__ import annotations

import datetime as dt
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client.parser import text_string_to_metric_families

from actors.market.calendar import ExchangeCalendar
from tests.test_cli_surprises import ctl_json, running, workdir

__all__ = ["workdir"]  # the fixture, used by name

NEW_YORK = ZoneInfo("America/New_York")
CAL = ExchangeCalendar("XNYS")
SESSIONS = CAL.sessions_between(dt.date(2026, 11, 16), dt.date(2026, 11, 23))
Key = tuple[str, str, str, int]


def orders_total(port: int) -> float:
    """``tradingd_orders_total`` summed over its labels, from a real scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "tradingd_orders":
            total += sum(s.value for s in family.samples if s.name == "tradingd_orders_total")
    return total


def one_day(workdir: Path, session: dt.date, *, after_close: bool) -> dict[str, Any]:
    """Plan, cycle, funnel, orders and metrics of the daemon trading ``session``.

    During the session: at 09:47 that day; after the close: at 16:30 the session
    before (the trading date after the close is the next session).
    """
    if after_close:
        now = dt.datetime.combine(CAL.previous_session(session), dt.time(16, 30), NEW_YORK)
    else:
        now = dt.datetime.combine(session, dt.time(9, 47), NEW_YORK)
    with running(workdir, now.isoformat()):
        plan = ctl_json(workdir, "plan")
        done = ctl_json(workdir, "run-cycle", "--wait")
        assert done["status"] == "completed", done
        funnel = ctl_json(workdir, "funnel")["funnel"]
        orders = ctl_json(workdir, "orders", "--asof", str(session))["orders"]
        port = int(ctl_json(workdir, "status")["metrics_port"])
        total = orders_total(port)
    return {"plan": plan, "done": done, "funnel": funnel, "orders": orders, "total": total}


def test_every_count_of_orders_agrees_day_after_day(workdir: Path) -> None:
    kinds: Counter[str] = Counter()
    for i, session in enumerate(SESSIONS):
        day = one_day(workdir, session, after_close=i % 2 == 1)
        assert day["plan"]["asof"] == str(session), day["plan"]
        planned = day["plan"]["orders"]
        market = [o for o in day["orders"] if o["stop_price"] is None]
        key = ("strategy", "symbol", "side", "qty")
        want: Counter[Key] = Counter(tuple(o[k] for k in key) for o in planned)
        got: Counter[Key] = Counter(tuple(o[k] for k in key) for o in market)
        assert got == want, f"{session}: plan {sorted(want)} vs placed {sorted(got)}"
        assert all(o["status"] != "REJECTED" for o in market), market

        buys = sum(1 for o in planned if o["side"] == "buy")
        sells = len(planned) - buys
        summary = f"{len(planned)} orders placed ({buys} buy{'s' if buys != 1 else ''},"
        summary += f" {sells} sell{'s' if sells != 1 else ''}),"
        assert day["done"]["reason"].startswith(summary), (session, day["done"]["reason"])
        assert day["total"] == len(planned), (session, day["total"], len(planned))

        from_signals = sum(1 for o in planned if o["kind"] in ("ENTRY", "EXIT"))
        assert sum(f["executed"] for f in day["funnel"]) == from_signals, day["funnel"]
        kinds.update(o["kind"] for o in planned)
    # The six days exercise the counts with entries and exits, not only with zeros.
    assert kinds["ENTRY"] > 0, kinds
    assert kinds["EXIT"] + kinds["STOP"] > 0, kinds
