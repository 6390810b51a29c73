"""A daemon pointed at the fake Alpaca trading server: the shared set-up of the crash tests."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actors.data_feed.params import DEFAULT_UNIVERSE
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.market.calendar import ExchangeCalendar
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer


def synthetic_closes(first_session: str) -> dict[str, float]:
    """The default universe's closes on the session before ``first_session``."""
    calendar = ExchangeCalendar("XNYS")
    last = calendar.previous_session(dt.date.fromisoformat(first_session))
    bars = SyntheticProvider().generate(list(DEFAULT_UNIVERSE), last, last)
    return {str(s): float(c) for s, c in zip(bars["symbol"], bars["close"], strict=True)}


@contextlib.contextmanager
def priced_fake(first_session: str, *args: Any, **kwargs: Any) -> Iterator[FakeAlpacaTradingServer]:
    """A running fake trading server that knows a price for every default symbol."""
    with FakeAlpacaTradingServer(*args, prices=synthetic_closes(first_session), **kwargs) as server:
        yield server


@contextlib.contextmanager
def alpaca_workdir(fake: FakeAlpacaTradingServer, prefix: str) -> Iterator[Path]:
    """A short-path work dir whose ``tradingd.toml`` trades through ``fake``; removed after."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    (path / "tradingd.toml").write_text(
        textwrap.dedent(
            f"""
            [daemon]
            state_dir = "{path / "state"}"
            run_dir = "{path / "run"}"
            log_json = true
            [metrics]
            port = 0
            [schedule]
            run_on_start = false
            catch_up = false
            [broker]
            kind = "alpaca"
            base_url = "{fake.url}"
            timeout_s = 5.0
            [risk]
            # many small orders (sized on each strategy's capital, not the portfolio):
            # crash tests need orders to land kills between
            sizing_base = "strategy"
            [data.synthetic]
            # the market the fake is priced from (synthetic_closes): without actions
            corporate_actions_per_year = 0.0
            """
        )
    )
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
