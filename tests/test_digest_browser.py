"""The daily digest in a real browser: headless Chromium at a phone's and a desktop's width.

The digest is the real one: three sessions of the daemon (``run --once`` on the demo's
synthetic market, heat limits raised so that later sessions trade too) leave a state
database with trades, positions, their stops resting at the broker and a three-point
equity curve; then rows a live day would add are written through the store classes:
daily closes in the bar cache (``BarCache``, as the Alpaca provider caches them, one
of them after the session, which the digest must not use) for all but one position, and
open orders for a dozen symbols, one of them long. ``digest_data`` builds the digest
from that store, ``render_digest`` renders it, and the HTML is written to a file (the
chart beside it, as ``tradingd report`` writes it) and opened in Chromium through
selenium and chromedriver at 390 x 844 and 1280 x 800: the page never scrolls sideways
(``document.documentElement.scrollWidth <= window.innerWidth``) and loads nothing but
its own file and chart.

Chromium, chromedriver (Debian's ``chromium`` and ``chromium-driver``, which ``make
test`` installs as root) and selenium (the test extra) are needed: missing, the test
fails under ``CI=true`` and skips elsewhere.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pandas as pd
import pytest

from actors.market.calendar import ExchangeCalendar
from actors.messages import IntentKind, IntentStatus
from actors.notifier.digest import DigestData, render_digest
from actors.notifier.digest_data import digest_data, find_cycle
from actors.store import open_store
from actors.store.bars import BarCache
from actors.store.orders import OrderStore
from actors.system.app import Daemon
from actors.system.config import load_settings
from daemon.clock import SimClock
from daemon.systemd import SystemdNotifier
from tests.fakes.browser import headless_chromium

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CAL = ExchangeCalendar("XNYS")
FIRST = dt.date(2026, 11, 18)
SESSIONS = (FIRST, CAL.next_session(FIRST), CAL.next_session(CAL.next_session(FIRST)))
LAST = SESSIONS[-1]
LONG_SYMBOL = "BRK.B-WHEN-ISSUED-20261120-CLASS-B-SHARES"
OPEN_SYMBOLS = (
    "AAPL",
    "MSFT",
    "GOOGL",
    "AMZN",
    "META",
    "NVDA",
    "TSLA",
    "JPM",
    "XOM",
    "KO",
    "PEP",
    LONG_SYMBOL,
)
SIZES = ((390, 844), (1280, 800))


@dataclass(frozen=True)
class Built:
    """The digests of the first and the last session, and what the test wrote."""

    first: DigestData
    last: DigestData
    closes: dict[str, float]  # symbol -> its close on LAST (the mark the digest must use)
    unmarked: str  # the position with no close in the cache
    resting: set[str]  # symbols with a protective stop resting at the broker


def _run_sessions(state: Path) -> None:
    env = {
        "TRADINGD_DAEMON__STATE_DIR": str(state / "state"),
        "TRADINGD_DAEMON__RUN_DIR": str(state / "run"),
        "TRADINGD_METRICS__PORT": "0",
        # The default limits stop buying after the first session; these let later ones trade.
        "TRADINGD_RISK__REGIME__HEAT_LOW": "0.6",
        "TRADINGD_RISK__REGIME__HEAT_NORMAL": "0.6",
        "TRADINGD_RISK__REGIME__HEAT_HIGH": "0.6",
    }
    settings = load_settings(None, env)
    for session in SESSIONS:
        clock = SimClock(CAL.session_open(session) + dt.timedelta(hours=1))
        daemon = Daemon(settings, environ=env, clock=clock, notifier=SystemdNotifier(None))
        assert anyio.run(functools.partial(daemon.run, once=True, asof=session)) == 0


async def _seed_and_build(db: Path) -> Built:
    store = await open_store(db)
    try:
        orders = OrderStore(store)
        held = [p for p in await orders.positions() if float(p["shares"]) > 0]
        assert len(held) >= 3, held
        unmarked = str(held[-1]["symbol"])
        closes = {
            str(p["symbol"]): round(float(p["avg_price"]) * 1.05, 2)
            for p in held
            if p["symbol"] != unmarked
        }
        after = CAL.next_session(LAST)
        bars = [
            (symbol, day, close)
            for symbol, close in closes.items()
            for day, close in ((CAL.previous_session(LAST), close - 1), (LAST, close), (after, 1.0))
        ]
        frame = pd.DataFrame(
            {
                "symbol": [b[0] for b in bars],
                "date": pd.to_datetime([b[1] for b in bars]),
                **{k: [b[2] for b in bars] for k in ("open", "high", "low", "close")},
                "volume": [1e6] * len(bars),
            }
        )
        assert await BarCache(store).put("alpaca", frame) == len(bars)
        last = await find_cycle(store, asof=LAST)
        at = CAL.session_open(LAST) + dt.timedelta(hours=2)
        momentum = await orders.strategy_id("momentum")
        for n, symbol in enumerate(OPEN_SYMBOLS):
            row, _ = await orders.create_intent(
                intent_id=f"open-{n}",
                run_id=last.run_id,
                asof=LAST,
                strategy_id=momentum,
                strategy="momentum",
                symbol=symbol,
                side="buy" if n % 3 else "sell",
                qty=10 + n,
                kind=IntentKind.ENTRY,
                reference_price=100.0,
                at=at,
            )
            if n % 2:
                await orders.update_status(row.intent_id, IntentStatus.ACCEPTED, at=at)
        resting = {r.symbol for r in await orders.open_intents() if r.resting}
        return Built(
            first=await digest_data(store, await find_cycle(store, asof=FIRST)),
            last=await digest_data(store, last),
            closes=closes,
            unmarked=unmarked,
            resting=resting,
        )
    finally:
        await store.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    state = tmp_path_factory.mktemp("digest-browser")
    _run_sessions(state)
    return anyio.run(_seed_and_build, state / "state" / "tradingd.db")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium() as driver:
        yield driver


def _write(data: DigestData, directory: Path) -> Path:
    """The digest's HTML as a file, with its chart beside it (as ``tradingd report`` does)."""
    html = render_digest(data).html
    assert html is not None
    if data.equity_png is not None:
        (directory / "equity.png").write_bytes(data.equity_png)
        html = html.replace('src="cid:equity"', 'src="equity.png"')
    page = directory / "digest.html"
    page.write_text(html, encoding="utf-8")
    return page


_MEASURE = """
const img = document.querySelector('img');
return {
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
  image: img ? {loaded: img.complete && img.naturalWidth > 0,
                right: img.getBoundingClientRect().right} : null,
  resources: performance.getEntriesByType('resource').map(e => e.name),
};
"""


@pytest.mark.parametrize("session", ["first", "last"])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_digest_fits_the_window_in_chromium(
    browser: WebDriver, built: Built, tmp_path: Path, session: str, width: int, height: int
) -> None:
    """No horizontal overflow of the page at 390 px and 1280 px; the chart loads and fits;
    nothing but the page's own files is loaded."""
    data = built.first if session == "first" else built.last
    page = _write(data, tmp_path)
    browser.set_window_size(width, height)
    browser.get(page.as_uri())
    measured = browser.execute_script(_MEASURE)
    assert measured["innerWidth"] == width
    assert measured["scrollWidth"] <= measured["innerWidth"], measured
    assert all(url.startswith("file://") for url in measured["resources"]), measured
    if data.equity_png is None:
        assert measured["image"] is None
    else:
        assert measured["image"]["loaded"], measured
        assert measured["image"]["right"] <= width, measured


def test_the_realistic_digest_has_every_part(built: Built) -> None:
    """The last session's digest has trades, positions, open orders and a chart."""
    data = built.last
    assert data.trades
    assert len(data.positions) >= 3
    assert len(data.open_orders) == len(OPEN_SYMBOLS)
    assert data.equity_points == len(SESSIONS)
    assert data.equity_png is not None
    html = render_digest(data).html
    assert html is not None
    assert LONG_SYMBOL in html
    assert not re.search(r"https?://", html)


def test_positions_are_marked_at_the_latest_cached_close(built: Built) -> None:
    """Last close = the latest close known on or before the session: the cache's, or the one
    the cycle saw (not a later one, not the average price); P&L = (close - avg) x shares."""
    assert {p["symbol"] for p in built.last.positions} == {*built.closes, built.unmarked}
    for p in built.last.positions:
        if p["symbol"] == built.unmarked:
            # not in the cache: marked at the last close the cycle itself saw (the session
            # before; the synthetic provider never writes the cache)
            assert p["last_price"] is not None
            assert p["last_date"] < LAST.isoformat()
            mark = (p["last_price"] - float(p["avg_price"])) * float(p["shares"])
            assert p["unrealized_pnl"] == pytest.approx(mark)
            continue
        close = built.closes[p["symbol"]]
        assert (p["last_price"], p["last_date"]) == (close, LAST.isoformat())
        expected = (close - float(p["avg_price"])) * float(p["shares"])
        assert p["unrealized_pnl"] == pytest.approx(expected)
        assert p["unrealized_pnl"] != 0
    text = render_digest(built.last).text
    line = next(r for r in text.split("POSITIONS")[1].splitlines() if f" {built.unmarked} " in r)
    assert "—" not in line.split()[4:6]  # marked, at the cycle's own close


def test_open_orders_are_ours_not_the_stops_resting_at_the_broker(built: Built) -> None:
    """The open-orders section lists our open intents only; the resting stops stay with
    their positions."""
    assert built.resting  # the daemon left protective stops resting at the broker
    listed = [o["symbol"] for o in built.last.open_orders]
    assert listed == list(OPEN_SYMBOLS)
    assert {o["status"] for o in built.last.open_orders} == {"NEW", "ACCEPTED"}
    message = render_digest(built.last)
    assert message.html is not None
    section = message.html.split(">Open orders</h2>")[1].split("</table>")[0]
    assert section.count("<tr>") == 1 + len(OPEN_SYMBOLS)
    cells = ("momentum", "MSFT", "BUY", "11", "0", "ACCEPTED")
    assert re.search("<tr>" + "".join(rf"<td[^>]*>{c}</td>" for c in cells) + "</tr>", section)
    text = message.text.split("OPEN ORDERS\n")[1].split("\n\n")[0].splitlines()
    assert len(text) == 2 + len(OPEN_SYMBOLS)
    assert text[3].split() == list(cells)


def test_the_first_session_has_no_chart_yet(built: Built) -> None:
    """One point of equity: no image, and the digest says when the chart starts."""
    message = render_digest(built.first)
    assert built.first.equity_points == 1
    assert message.images == ()
    assert message.html is not None
    assert "<img" not in message.html
    assert "Equity chart from the second session on." in message.html
    assert "Equity chart from the second session on." in message.text


@pytest.mark.parametrize("session", ["first", "last"])
def test_the_subject_counts_the_rows_of_the_tables(built: Built, session: str) -> None:
    """The subject's N trades and M open orders are the rows of those tables."""
    data = built.first if session == "first" else built.last
    message = render_digest(data)
    assert message.html is not None
    match = re.search(r": \w+, (\d+) trades?(?:, (\d+) open orders?)?", message.subject)
    assert match is not None, message.subject
    trades = message.html.split(">Trades</h2>")[1].split("</table>")[0]
    assert int(match[1]) == trades.count("<tr>") - 1 == len(data.trades) > 0
    assert int(match[2] or 0) == len(data.open_orders)
