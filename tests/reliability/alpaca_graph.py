"""The daemon's graph on AlpacaBroker against the fake Alpaca server: shared helpers.

``SESSIONS`` the sessions the tests run, ``make_fake`` the fake with its rate window
shifted, ``alpaca(fake)`` the broker factory, ``day`` one priced session,
``assert_one_order_per_intent``. The fixtures (``settings``, ``closes``, ``fake``) are
in this folder's conftest.py.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pandas as pd

from actors.brokers.alpaca import AlpacaBroker
from actors.brokers.base import Broker
from actors.data_feed.providers import BarProvider
from actors.messages import CycleStatus
from daemon.clock import SimClock
from daemon.store import Store
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer, FillMode
from tests.reliability.harness import CAL, BrokerFactory, Graph

SESSIONS = CAL.sessions_between(dt.date(2026, 11, 16), dt.date(2026, 11, 25))
TIMEOUT_S = 1.0


def make_fake(fill_mode: FillMode = "immediate") -> FakeAlpacaTradingServer:
    """The fake, its 60 s rate window shifted so a 429's reset is at most ~1 s away.

    The broker honours ``X-Ratelimit-Reset`` (it pauses until then); with the
    fake's own window a single 429 would stall the cycle for up to a minute.
    """
    return FakeAlpacaTradingServer(fill_mode=fill_mode, wallclock=lambda: time.time() - 59.0)


def alpaca(fake: FakeAlpacaTradingServer) -> BrokerFactory:
    def build(_store: Store, _clock: SimClock, _provider: BarProvider) -> Broker:
        return AlpacaBroker(
            fake.api_key,
            fake.secret_key,
            base_url=fake.url,
            timeout_s=TIMEOUT_S,
            backoff_s=0.05,
        )

    return build


async def day(
    g: Graph, fake: FakeAlpacaTradingServer, closes: pd.DataFrame, session: dt.date
) -> tuple[CycleStatus, str, list[str]]:
    """Price the fake at the previous close, run the session; status, reason, new POST ids."""
    prev = pd.Timestamp(CAL.previous_session(session))
    rows = closes.loc[closes["date"] == prev]
    fake.prices.update(
        {str(s): float(c) for s, c in zip(rows["symbol"], rows["close"], strict=True)}
    )
    before = fake.order_posts
    done = await g.run_day(session)
    posts = fake.requests_to("POST", "/v2/orders")[before:]
    assert g.all_running(), g.sup.states()
    return done.status, done.reason, [str(p.client_order_id) for p in posts]


def assert_one_order_per_intent(fake: FakeAlpacaTradingServer, max_posts: int = 1) -> Counter[str]:
    """No client order id has more than one order at the broker (nor more POSTs than allowed)."""
    posts = Counter(str(r.client_order_id) for r in fake.requests_to("POST", "/v2/orders"))
    for cid, count in posts.items():
        assert fake.orders_for(cid) <= 1, cid
        assert count <= max_posts, f"{cid} POSTed {count} times"
    return posts
