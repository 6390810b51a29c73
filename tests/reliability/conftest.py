"""Fixtures of the tests that run the daemon's graph on AlpacaBroker against the fake
Alpaca server (``tests/reliability/alpaca_graph.py`` has the helpers). A module that
needs another ``settings`` or ``fake`` defines its own, which takes precedence."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from actors.data_feed.params import DEFAULT_UNIVERSE
from actors.data_feed.providers.synthetic import SyntheticProvider
from actors.system.config import Settings, load_settings
from tests.fakes.alpaca_trading_server import FakeAlpacaTradingServer
from tests.reliability.alpaca_graph import SESSIONS, make_fake
from tests.reliability.harness import CAL


@pytest.fixture(scope="module")
def settings() -> Settings:
    # Sized on each strategy's capital: many small orders, which is what the broker faults
    # and the resting stops need (sized on the portfolio, the default, the first session
    # places only a few large ones). The market without corporate actions: the fake is
    # priced from its closes, adjusted as of the last session (the split tests put their
    # actions in on purpose, through tests/fakes/acting_market.py).
    env = {
        "TRADINGD_RISK__SIZING_BASE": "strategy",
        "TRADINGD_DATA__SYNTHETIC__CORPORATE_ACTIONS_PER_YEAR": "0",
    }
    return load_settings(None, env)


@pytest.fixture(scope="module")
def closes(settings: Settings) -> pd.DataFrame:
    """The synthetic closes, for the fake's fill prices."""
    provider = SyntheticProvider(settings.data.synthetic)
    first = CAL.previous_session(SESSIONS[0])
    return provider.generate(list(DEFAULT_UNIVERSE), first, SESSIONS[-1])


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTradingServer]:
    with make_fake() as server:
        yield server
