"""``tradingd backtest``: replay sessions through the very same actor graph on a SimClock.

For every session d in the range: the clock is set just after d's open, the
CycleRunner runs d's cycle exactly as live (strategies see bars through
the close of d-1, market orders fill at d's open with the reference system's
slippage and commission, in the simulated broker), then the clock moves past
d's close and the account is marked at the close. Nothing is re-implemented:
``actors.system.graph.simulated_graph`` builds the same actors the daemon runs.

Differences from live, all about speed, none about decisions: the market is
loaded once and its indicators computed once over the whole history
(``PrecomputedMarket``: causal indicators, sliced per session); the output
database is a scratch store (no fsync); per-run event files are not written; a
large universe's ML fits are made ahead in a worker process
(``actors.system.ml_prefit``: the same rows give the same model, checked by digest).

Runs are deterministic: the same inputs give byte-identical ``trades.csv``.
"""

from __future__ import annotations

import csv
import datetime as dt
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio

from actors.brokers.base import BrokerAccount, BrokerPosition
from actors.data_feed.market import PrecomputedMarket
from actors.data_feed.params import UniverseParams
from actors.data_feed.providers import BarProvider, make_provider
from actors.data_feed.universe import load_universe
from actors.market.calendar import ExchangeCalendar
from actors.messages import CycleCompleted
from actors.reports.backtest_stats import BacktestInputs, SessionClose
from actors.reports.switches import switch_lines
from actors.store.equity import EquityCloses
from actors.store.orders import OrderStore
from actors.store.state import KillSwitchStore
from actors.strategies.base import Strategy
from actors.strategies.ml_momentum import MlMomentum
from actors.system.backtest_report import write_stats
from actors.system.config import Settings
from actors.system.graph import Graph, simulated_graph
from actors.system.ml_prefit import PlanInputs, PrefitPool
from daemon.clock import SimClock
from daemon.errors import ConfigError, TradingdError
from daemon.store import Store

PREFIT_MIN_ROWS = 50_000
"""Symbols x ``train_window_days`` from which the ML fits are made ahead in a worker
process (below it a fit takes milliseconds, less than starting the worker)."""
PREFIT_WORKERS = 1
"""Worker processes for those fits: one core fits while the other replays."""
LoadedMarket = tuple[BarProvider, PrecomputedMarket]
"""What ``load_market`` returns and ``run_backtest(preloaded=...)`` takes."""


class MissingSymbols(TradingdError):
    """Universe symbols the data has no bars for: ``tradingd backtest`` exits 2 naming them.

    A backtest of a symbol the folder (or provider) does not have would run and
    trade nothing in it, and report that as a result.
    """

    def __init__(self, symbols: list[str], where: str, problems: dict[str, str]) -> None:
        why = "; ".join(f"{s}: {problems[s]}" for s in symbols if s in problems)
        listed = ", ".join(symbols)
        super().__init__(
            f"--universe: {where} has no bars for {listed}" + (f" ({why})" if why else "")
        )
        self.symbols = symbols


@dataclass
class BacktestResult:
    out: Path
    sessions: list[dt.date]
    equity: list[tuple[dt.date, float, float]] = field(default_factory=list)
    cycles: list[CycleCompleted] = field(default_factory=list)
    seconds: float = 0.0
    load_seconds: float = 0.0
    #: What the run modelled (fills, stops, corporate actions), for the report.
    model: list[str] = field(default_factory=list)
    #: What the kill switches did (``reports.switches.switch_lines``).
    switches: list[str] = field(default_factory=list)
    #: The account at each session's close (equity, cash, what the positions are worth).
    closes: list[SessionClose] = field(default_factory=list)
    #: The last close of each symbol held at the end, as the broker marked it.
    marks: dict[str, float] = field(default_factory=dict)
    #: What ``stats.json`` was computed from, and its figures (``backtest_report``).
    inputs: BacktestInputs | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def sessions_per_second(self) -> float:
        return len(self.sessions) / self.seconds if self.seconds > 0 else 0.0


def apply_overrides(
    settings: Settings,
    *,
    provider: str | None = None,
    universe: str | None = None,
    strategies: str | None = None,
    capital: float | None = None,
) -> Settings:
    """The settings with the command line's overrides; bad values name the option."""
    data = settings.data
    if provider is not None:
        if provider not in ("synthetic", "csv", "alpaca", "alphavantage"):
            raise ConfigError("--provider", f"unknown provider {provider!r}")
        data = data.model_copy(update={"provider": provider})
    if universe is not None:
        path = Path(universe)
        # A long symbol list is not a path (and stat() would fail: name too long).
        if "," not in universe and (path.suffix == ".csv" or path.is_file()):
            uni = UniverseParams(mode="csv", file=path)
        else:
            symbols = tuple(s.strip().upper() for s in universe.split(",") if s.strip())
            if not symbols:
                raise ConfigError("--universe", "no symbols given")
            uni = UniverseParams(symbols=symbols)
        data = data.model_copy(update={"universe": uni})
    strategies_params = settings.strategies
    if strategies is not None:
        wanted = {s.strip() for s in strategies.split(",") if s.strip()}
        known = set(type(strategies_params).model_fields)
        unknown = sorted(wanted - known)
        if unknown:
            raise ConfigError(
                "--strategies", f"unknown strategies {unknown}; known: {sorted(known)}"
            )
        strategies_params = strategies_params.model_copy(
            update={
                name: getattr(strategies_params, name).model_copy(
                    update={"enabled": name in wanted}
                )
                for name in known
            }
        )
    broker = settings.broker.model_copy(update={"kind": "sim"})
    if capital is not None:
        if capital <= 0:
            raise ConfigError("--capital", "must be positive")
        enabled = [n for n, p in strategies_params.items() if p.enabled] or ["_"]
        share = capital / len(enabled)
        strategies_params = strategies_params.model_copy(
            update={
                n: getattr(strategies_params, n).model_copy(update={"capital": share})
                for n, _ in strategies_params.items()
            }
        )
        broker = broker.model_copy(update={"initial_cash": capital})
    return settings.model_copy(
        update={"data": data, "strategies": strategies_params, "broker": broker}
    )


async def run_backtest(
    settings: Settings,
    *,
    start: dt.date,
    end: dt.date,
    out: Path,
    progress: TextIO | None = None,
    preloaded: LoadedMarket | None = None,
) -> BacktestResult:
    """Replay ``[start, end]``; writes ``backtest.db``, the CSVs and ``stats.json`` into ``out``.

    ``preloaded``: what ``load_market`` returned for the same settings and dates (a
    sweep's worker loads it once for all its backtests); else it is loaded here.
    """
    calendar, sessions = await _sessions(settings, start, end)
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "backtest.db"
    if db_path.exists():
        raise ConfigError("--out", f"{db_path} already exists; choose an empty directory")
    loading = time.perf_counter()
    if preloaded is None:
        preloaded = await _load_market(settings, calendar, sessions)
    provider, market = preloaded
    result = BacktestResult(
        out=out,
        sessions=sessions,
        load_seconds=time.perf_counter() - loading,
        model=model_lines(settings, market),
    )
    pool = await _prefit_pool(settings, market, calendar, sessions)
    try:
        graph = await simulated_graph(
            settings,
            store=db_path,
            scratch=True,
            calendar=calendar,
            clock=SimClock(calendar.session_open(sessions[0]) - dt.timedelta(hours=1)),
            provider=provider,
            market=market,
            strategy_overrides=_ml_override(settings, pool),
        )
        try:
            started = time.perf_counter()
            async with graph.running():
                await _drive(graph, result, _Progress(progress, len(sessions)))
            result.seconds = time.perf_counter() - started
            events = await KillSwitchStore(graph.store).events()
            result.switches = switch_lines(events, result.sessions)
            await _write_csvs(graph.store, result)
            await write_stats(
                graph.store,
                settings,
                result,
                provider=provider,
                market=market,
                base_session=calendar.previous_session(sessions[0]),
            )
        finally:
            await graph.close()
    finally:
        if pool is not None:
            await anyio.to_thread.run_sync(pool.close)
    return result


async def load_market(settings: Settings, start: dt.date, end: dt.date) -> LoadedMarket:
    """The provider and market ``run_backtest(settings, start=start, end=end)`` would load."""
    calendar, sessions = await _sessions(settings, start, end)
    return await _load_market(settings, calendar, sessions)


async def _sessions(
    settings: Settings, start: dt.date, end: dt.date
) -> tuple[ExchangeCalendar, list[dt.date]]:
    if end < start:
        raise ConfigError("--to", f"{end} is before --from {start}")
    calendar = ExchangeCalendar(settings.schedule.calendar)
    await anyio.to_thread.run_sync(calendar.load)
    sessions = calendar.sessions_between(start, end)
    if not sessions:
        raise ConfigError("--from/--to", f"no trading session between {start} and {end}")
    return calendar, sessions


async def _prefit_pool(
    settings: Settings,
    market: PrecomputedMarket,
    calendar: ExchangeCalendar,
    sessions: list[dt.date],
) -> PrefitPool | None:
    """The ML fits made ahead in a worker process, when they are worth one (big fits)."""
    ml = settings.strategies.ml_momentum
    universe = await anyio.to_thread.run_sync(load_universe, settings.data.universe)
    if not ml.enabled or len(universe.symbols) * ml.train_window_days < PREFIT_MIN_ROWS:
        return None
    if multiprocessing.current_process().daemon:
        return None  # a Dask worker: it may not start processes, and its cores are busy
    inputs = PlanInputs(
        market=market,
        calendar=calendar,
        sessions=sessions,
        symbols=list(universe.symbols),
        history_days=settings.data.history_days,
        params=ml,
    )
    return await anyio.to_thread.run_sync(lambda: PrefitPool(inputs, workers=PREFIT_WORKERS))


def _ml_override(settings: Settings, pool: PrefitPool | None) -> dict[str, Strategy]:
    if pool is None:
        return {}
    return {MlMomentum.name: MlMomentum(settings.strategies.ml_momentum, fits=pool)}


def model_lines(settings: Settings, market: PrecomputedMarket) -> list[str]:
    """What a run models, in the report's words: fills, stops, corporate actions."""
    lines = ["fills: market orders at each session's open, with slippage and commission"]
    if settings.orders.broker_stops:
        lines.append(
            "stops: resting at the simulated broker, filled during the session (at the"
            " open on a gap through the stop, else at the stop when the low reaches it)"
        )
    else:
        lines.append(
            "stops: checked once a day on the last close (orders.broker_stops = false):"
            " a gap down exits at the next cycle's open"
        )
    kinds: dict[str, int] = {}
    for action in market.actions:
        kinds[str(action.kind)] = kinds.get(str(action.kind), 0) + 1
    if kinds:
        listed = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
        lines.append(
            f"corporate actions, point in time: {listed}; the broker and the book apply"
            " each on its date, the history is as it was each day"
        )
    else:
        lines.append("corporate actions: none in the data")
    return lines


async def _load_market(
    settings: Settings, calendar: ExchangeCalendar, sessions: list[dt.date]
) -> tuple[BarProvider, PrecomputedMarket]:
    """The provider and every bar of the run (with its history window), loaded once."""
    universe = await anyio.to_thread.run_sync(load_universe, settings.data.universe)
    provider = make_provider(settings.data)
    first = calendar.sessions_back(
        calendar.previous_session(sessions[0]), settings.data.history_days
    )
    market = await PrecomputedMarket.load(
        provider,
        universe.symbols,
        first[0],
        sessions[-1],
        validation=settings.data.validation,
    )
    have = set(market.panel.symbols)
    missing = [s for s in universe.symbols if s not in have]
    if missing:
        data = settings.data
        folder = data.csv.path if data.provider == "csv" else None
        source = f"the CSV data {str(folder)!r}" if folder else f"the {data.provider} provider"
        where = f"{source} between {first[0]} and {sessions[-1]}"
        raise MissingSymbols(missing, where, dict(market.problems))
    return provider, market


async def _drive(graph: Graph, result: BacktestResult, bar: _Progress) -> None:
    """One cycle a session, each session's account marked at its close."""
    closes = EquityCloses(graph.store)
    for day in result.sessions:
        done = await graph.run_session(day, f"bt-{day:%Y%m%d}")
        result.cycles.append(done)
        account, positions = await _book(graph)
        result.equity.append((day, account.equity, account.cash))
        gross = sum(abs(p.market_value or 0.0) for p in positions)
        result.closes.append(SessionClose(day, account.equity, account.cash, gross, len(positions)))
        result.marks = {p.symbol: (p.market_value or 0.0) / p.qty for p in positions if p.qty}
        # The closing mark the daily-loss breaker compares the next session with.
        await closes.record(day, account.equity, "session_close", graph.clock.now())
        bar.step()
    bar.done()


async def _book(graph: Graph) -> tuple[BrokerAccount, list[BrokerPosition]]:
    """The account and its positions at the mark, read together when the broker can."""
    if graph.sim is not None:
        return await graph.sim.book()
    return await graph.broker.account(), await graph.broker.positions()


async def _write_csvs(store: Store, result: BacktestResult) -> None:
    rows = await OrderStore(store).trade_ledger()
    columns = [
        "run_id", "date", "strategy", "symbol", "action", "shares", "requested_price",
        "exec_price", "slippage_cost", "commission_cost", "total_cost", "notional", "intent_id",
    ]  # fmt: skip

    def write() -> None:
        with (result.out / "trades.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for r in rows:
                w.writerow([_fmt(r[c]) for c in columns])
        with (result.out / "equity.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["date", "equity", "cash"])
            for day, equity, cash in result.equity:
                w.writerow([day.isoformat(), f"{equity:.4f}", f"{cash:.4f}"])

    await anyio.to_thread.run_sync(write)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return "" if value is None else str(value)


class _Progress:
    """Sessions done, sessions per second and ETA, on one terminal line (TTY only)."""

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self._stream = stream if stream is not None and stream.isatty() else None
        self._total = total
        self._done = 0
        self._t0 = time.perf_counter()

    def step(self) -> None:
        self._done += 1
        if self._stream is None:
            return
        elapsed = time.perf_counter() - self._t0
        rate = self._done / elapsed if elapsed > 0 else 0.0
        eta = (self._total - self._done) / rate if rate > 0 else 0.0
        width = 30
        filled = int(width * self._done / self._total)
        self._stream.write(
            f"\r[{'#' * filled}{' ' * (width - filled)}] {self._done}/{self._total} sessions"
            f"  {rate:6.1f}/s  ETA {eta:5.0f}s"
        )
        self._stream.flush()

    def done(self) -> None:
        if self._stream is not None:
            self._stream.write("\n")
            self._stream.flush()


__all__ = [
    "BacktestResult",
    "LoadedMarket",
    "apply_overrides",
    "load_market",
    "model_lines",
    "run_backtest",
]
