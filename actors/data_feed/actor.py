"""``DataFeed``: turns ``FetchSnapshot(run_id, asof)`` into a validated ``MarketSnapshot``.

The window is the ``history_days`` sessions ending at the session before
``asof`` (a strategy at session d sees bars through the close of d-1). Bars
come from the configured provider (remote ones through the store's bar cache)
or, in a backtest, from a ``PrecomputedMarket``; both paths make the same
decisions for the same session (a backtest's are lookups over the history marked
once, ``history_checks``, with ``validate`` for the few windows lookups cannot
answer). Validation removes bad bars (reported in the
snapshot's ``notes``), drops bad symbols with a recorded reason (a file the
provider could not read costs its symbols: ``bad_file``), and halts the cycle
only on a market-wide failure (the feed stale, or too much of the universe
failing). Every universe symbol with a good close gets it in ``last_prices``,
valid or not, so the cycle still checks a held symbol's stop. Indicators are
computed once for the valid symbols, in a worker thread, so the loop stays free.

A provider failure or a halt is an *answer* (``DataUnavailable``), not a
crash: the feed itself is healthy, the data is not.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import pandas as pd
import structlog

from actors.data_feed.history_checks import CheckedHistory
from actors.data_feed.indicators import compute_indicators
from actors.data_feed.market import MarketWindow, PrecomputedMarket, last_value, select_columns
from actors.data_feed.panel import BarPanel
from actors.data_feed.params import DataParams
from actors.data_feed.providers import BarProvider, provider_actions, provider_problems
from actors.data_feed.universe import Universe, load_universe
from actors.data_feed.validator import ValidationReport, validate
from actors.market.calendar import ExchangeCalendar
from actors.market.corporate_actions import CorporateAction
from actors.messages import (
    ApplySettings,
    CorporateActionsReport,
    DataUnavailable,
    FetchCorporateActions,
    FetchSnapshot,
    GetStatus,
    MarketSnapshot,
    SymbolRejected,
)
from actors.metrics import Metrics
from daemon.actor import Actor, handles
from daemon.errors import TradingdError

log = structlog.get_logger()

#: The longest indicator (SMA 100) plus one bar for the crossover's previous value.
MIN_BARS = 101


class DataFeed(Actor):
    def __init__(
        self,
        params: DataParams,
        provider: BarProvider,
        calendar: ExchangeCalendar,
        *,
        metrics: Metrics | None = None,
        market: PrecomputedMarket | None = None,
    ) -> None:
        self._params = params
        self._market = market
        self._provider = provider
        self._calendar = calendar
        self._metrics = metrics
        self._universe: Universe | None = None
        self._last: dict[str, Any] = {}
        self._checked: CheckedHistory | None = None

    async def on_start(self) -> None:
        self._universe = await anyio.to_thread.run_sync(load_universe, self._params.universe)
        for problem in self._universe.problems:
            log.warning("universe_problem", problem=problem)

    @handles(GetStatus)
    async def status(self, _msg: GetStatus) -> dict[str, Any]:
        universe = self._universe
        return {
            "provider": self._params.provider,
            "universe": len(universe.symbols) if universe else 0,
            **self._last,
        }

    @handles(ApplySettings)
    async def apply(self, msg: ApplySettings) -> None:
        data: DataParams = msg.settings.data
        if data != self._params:
            log.warning(
                "data_settings_changed_needs_restart",
                detail="data provider and universe are read at start; restart to apply",
            )

    @handles(FetchCorporateActions)
    async def corporate_actions(self, msg: FetchCorporateActions) -> CorporateActionsReport:
        """The provider's actions for the universe and the held symbols (in a backtest,
        its precomputed market's, with the closes as they printed)."""
        assert self._universe is not None
        symbols = list(dict.fromkeys([*self._universe.symbols, *msg.held]))
        start = msg.asof - dt.timedelta(days=msg.lookback_days)
        if self._market is not None:
            return self._market_actions(self._market, symbols, start, msg.asof)
        try:
            found = await provider_actions(self._provider, symbols, start, msg.asof)
        except TradingdError as exc:
            log.warning(
                "corporate_actions_unavailable", provider=self._provider.name, error=str(exc)
            )
            return CorporateActionsReport(error=f"provider {self._provider.name}: {exc}")
        return CorporateActionsReport(tuple(found), closes_before=await self._closes_before(found))

    def _market_actions(
        self, market: PrecomputedMarket, symbols: list[str], start: dt.date, asof: dt.date
    ) -> CorporateActionsReport:
        """A precomputed market's actions, and each split's close before its ex date."""
        found = tuple(market.actions_between(symbols, start, asof))
        closes: dict[str, float] = {}
        for a in found:
            if a.kind.rescales:
                before = self._calendar.previous_session(a.ex_date)
                close = market.raw_price(a.symbol, before, "close")
                if close is not None:
                    closes[a.action_id] = close
        return CorporateActionsReport(found, closes_before=closes)

    async def _closes_before(self, actions: list[CorporateAction]) -> dict[str, float]:
        """Each split's close before its ex date, as the provider gave it then (unadjusted)."""
        out: dict[str, float] = {}
        for a in actions:
            if not a.kind.rescales:
                continue
            before = self._calendar.previous_session(a.ex_date)
            try:
                frame = await self._provider.fetch(
                    [a.symbol], before - dt.timedelta(days=14), before
                )
            except TradingdError:
                continue
            closes = frame.loc[frame["symbol"] == a.symbol, "close"].dropna()
            if not closes.empty:
                out[a.action_id] = float(closes.iloc[-1])
        return out

    @handles(FetchSnapshot)
    async def fetch(self, msg: FetchSnapshot) -> MarketSnapshot | DataUnavailable:
        started = time.perf_counter()
        assert self._universe is not None
        symbols = list(self._universe.symbols)
        last_session = self._calendar.previous_session(msg.asof)
        window = self._calendar.sessions_back(last_session, self._params.history_days)
        if self._market is not None:
            return await self._from_market(msg, symbols, last_session, window, started)
        try:
            frame = await self._provider.fetch(symbols, window[0], window[-1])
            vix_series = await self._provider.volatility_index(window[0], window[-1])
        except TradingdError as exc:
            return self._unavailable(msg, f"provider {self._provider.name} failed: {exc}")
        problems = provider_problems(self._provider)
        try:
            report, indicators = await anyio.to_thread.run_sync(
                functools.partial(
                    _build,
                    frame,
                    symbols=symbols,
                    asof=msg.asof,
                    last_session=last_session,
                    window=window,
                    params=self._params,
                    problems=problems,
                )
            )
        except ValueError as exc:
            return self._unavailable(msg, f"bad data from {self._provider.name}: {exc}")
        vix_at = functools.partial(last_value, vix_series)
        return self._snapshot(
            msg, report, indicators, _Context(self._provider.name, vix_at, problems, started)
        )

    async def _from_market(
        self,
        msg: FetchSnapshot,
        symbols: list[str],
        last_session: dt.date,
        window: list[dt.date],
        started: float,
    ) -> MarketSnapshot | DataUnavailable:
        """A backtest's snapshot: a slice of the precomputed market, validated like live."""
        market = self._market
        assert market is not None
        wanted = self._params.validation
        if market.flags is None or market.validation != wanted:
            market = await anyio.to_thread.run_sync(market.prepared, wanted)
            self._market = market
        history = self._checked
        names = tuple(dict.fromkeys(symbols))
        if history is None or history.market is not market or history.names != names:
            history = await anyio.to_thread.run_sync(CheckedHistory.of, market, symbols)
            self._checked = history
        found = history.validate(
            msg.asof,
            history_days=self._params.history_days,
            expected_last_session=last_session,
            sessions=window,
            min_bars=MIN_BARS,
        )
        if found is None:  # a window the lookups cannot answer: validated in full
            found = self._validated_window(market, msg.asof, symbols, last_session, window)
        report, indicators = found
        context = _Context(market.provider, market.volatility_at, market.problems, started)
        return self._snapshot(msg, report, indicators, context)

    def _validated_window(
        self,
        market: PrecomputedMarket,
        asof: dt.date,
        symbols: list[str],
        last_session: dt.date,
        window: list[dt.date],
    ) -> tuple[ValidationReport, dict[str, Any]]:
        """``validate`` on the market's window for ``asof``, and its valid indicators."""
        return market_snapshot(
            market,
            symbols=symbols,
            asof=asof,
            last_session=last_session,
            window=window,
            history_days=self._params.history_days,
        )

    def _snapshot(
        self,
        msg: FetchSnapshot,
        report: ValidationReport,
        indicators: dict[str, Any],
        context: _Context,
    ) -> MarketSnapshot | DataUnavailable:
        """The answer to ``msg`` from a validation report (both paths)."""
        self._observe(report, report.panel, time.perf_counter() - context.started)
        if report.halt:
            return self._unavailable(
                msg, report.halt_reason or "data validation halted the cycle", report.rejected
            )
        last_session = self._calendar.previous_session(msg.asof)
        vix, vix_date = context.vix_at(last_session)
        notes = [*report.notes, *self._unclaimed(context.problems)]
        if vix is None:
            log.warning(
                "volatility_index_missing",
                provider=context.provider,
                detail="the regime detector falls back to its realized-volatility proxy",
            )
        for note in notes:
            log.info("data_repaired", run_id=msg.run_id, note=note)
        return MarketSnapshot(
            run_id=msg.run_id,
            asof=msg.asof,
            panel=report.panel,
            indicators=indicators,
            volatility_index=vix,
            rejected=report.rejected,
            provider=context.provider,
            last_prices=report.last_prices,
            volatility_index_date=vix_date,
            notes=tuple(notes),
        )

    def _unclaimed(self, problems: Mapping[str, str]) -> list[str]:
        """Notes for provider problems no universe symbol's rejection reports (e.g. VIX)."""
        assert self._universe is not None
        universe = set(self._universe.symbols)
        out = []
        for key, why in problems.items():
            if key in universe:
                continue
            if key == self._params.volatility_symbol:
                out.append(f"{key}: not read ({why}); the regime detector uses its proxy")
            else:
                out.append(f"{key}: not read ({why}); no universe symbol is named so")
        return out

    def _unavailable(
        self, msg: FetchSnapshot, reason: str, rejected: tuple[SymbolRejected, ...] = ()
    ) -> DataUnavailable:
        log.error("data_unavailable", run_id=msg.run_id, asof=str(msg.asof), reason=reason)
        self._last = {"last_asof": str(msg.asof), "last_result": "unavailable", "reason": reason}
        return DataUnavailable(msg.run_id, msg.asof, reason, rejected)

    def _observe(self, report: ValidationReport, panel: BarPanel, seconds: float) -> None:
        last_date = panel.last_date
        self._last = {
            "last_bar": str(last_date) if last_date else None,
            "valid_symbols": len(report.valid_symbols),
            "rejected_symbols": len(report.rejected),
            "last_result": "halt" if report.halt else "ok",
        }
        if self._metrics is None:
            return
        m = self._metrics
        m.data_fetch_seconds.observe(seconds)
        m.data_symbols.labels(status="valid").set(len(report.valid_symbols))
        m.data_symbols.labels(status="rejected").set(len(report.rejected))
        for rejection in report.rejected:
            m.data_rejections.labels(reason=rejection.reason_code).inc()
        if last_date is not None:
            midnight = dt.datetime.combine(last_date, dt.time(), dt.UTC)
            m.data_last_bar.set(midnight.timestamp())


@dataclass(frozen=True, slots=True)
class _Context:
    """Where a snapshot's bars came from: provider name, the VIX's last value on or
    before a session (and its date), problems, start time."""

    provider: str
    vix_at: Callable[[dt.date], tuple[float | None, dt.date | None]]
    problems: Mapping[str, str]
    started: float


def _build(
    frame: pd.DataFrame,
    *,
    symbols: list[str],
    asof: dt.date,
    last_session: dt.date,
    window: list[dt.date],
    params: DataParams,
    problems: dict[str, str],
) -> tuple[ValidationReport, dict[str, Any]]:
    """CPU work (worker thread): panel, validation, indicators for the valid symbols."""
    panel = BarPanel.from_long(frame).before(asof)
    report = validate(
        panel,
        universe=symbols,
        asof=asof,
        expected_last_session=last_session,
        sessions=window,
        min_bars=MIN_BARS,
        params=params.validation,
        problems=problems,
    )
    valid = report.panel
    indicators: dict[str, Any] = dict(compute_indicators(valid)) if valid.shape[1] else {}
    return report, indicators


def market_snapshot(
    market: PrecomputedMarket,
    *,
    symbols: list[str],
    asof: dt.date,
    last_session: dt.date,
    window: list[dt.date],
    history_days: int,
) -> tuple[ValidationReport, dict[str, Any]]:
    """A backtest session's validation report and indicators from a prepared market.

    What ``DataFeed`` answers for ``asof`` (a pure function of the market): the
    ``history_days`` sessions before ``asof`` validated in full as live validates them
    (``window`` the sessions expected, ending at ``last_session``), and the valid
    symbols' indicator rows. The feed's ``CheckedHistory`` lookups answer the same
    for the windows they can; this is the path for the others, and the ML prefit's.
    """
    if market.flags is None:
        raise ValueError("market_snapshot needs a prepared market (bar flags)")
    win = market.window(asof, history_days)
    report = validate(
        win.panel,
        universe=symbols,
        asof=asof,
        expected_last_session=last_session,
        sessions=window,
        min_bars=MIN_BARS,
        params=market.validation,
        problems=market.problems,
        flags=win.flags,
    )
    return report, _window_indicators(win, report)


def _window_indicators(win: MarketWindow, report: ValidationReport) -> dict[str, Any]:
    """The valid symbols' precomputed indicator rows.

    A symbol whose bar flags the window had to scan again (the history had removed
    the window's first good bar) gets its indicators computed on the window, so they
    match the bars the window kept, as the live path computes them.
    """
    if not report.valid_symbols:
        return {}
    out: dict[str, Any] = select_columns(win.indicators, win.panel, report.valid_symbols)
    again = [s for s in report.rescanned if s in set(report.valid_symbols)]
    if again:
        fresh = compute_indicators(report.panel.select(again))
        cols = [report.valid_symbols.index(s) for s in again]
        for key, arr in out.items():
            arr[:, cols] = fresh[key]
    return out
