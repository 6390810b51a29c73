"""``tradingd``: run the daemon, or check its configuration.

``run --once`` runs the cycle of ``--asof`` (default: ``trading_date`` of now,
see ``actors.market.calendar``). An ``--asof`` other than the current trading
date is refused (exit 2, one line, nothing placed: that date's signals would
trade at today's prices) unless ``--force``. A trading date whose cycle completed
is done: the run places nothing, prints one line naming the completed run and
when, and exits 0; ``--force`` re-runs exits and stop checks only,
``--force --allow-entries`` a whole cycle.

``check-config`` and ``run`` first check what the settings point to
(``actors.system.preflight``: the CSV folder exists, the Alpaca keys are there,
fit the account mode, and Alpaca accepts them); a failure exits 78 with one
line naming the key. When Alpaca cannot be asked, a warning line says so and
the command goes on.
Output piped into ``head`` ends quietly (exit 141, no traceback).

``TRADINGD_FAKE_NOW`` (an ISO 8601 instant with offset) starts the process's
clock at that instant, running forward at real speed: a test and drill hook,
logged as the warning ``fake_clock_in_use`` and refused (exit 78) for a
live-money broker account.

Exit codes: 0 success (a done date included); 1 a cycle run with ``--once`` did
not complete, or a fatal runtime error (the store, the socket), or a refused
``restore`` (the daemon is running, the backup is damaged); 2 usage, an
``--asof`` other than the current trading date without ``--force``, or a
backtest symbol the data does not have; 78 (EX_CONFIG) a bad configuration or
``TRADINGD_FAKE_NOW``, named in one line on stderr; 141 stdout was a pipe its
reader closed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from functools import partial
from pathlib import Path

import anyio
import structlog

from actors.system.config import EX_CONFIG, Settings, load_settings, render_check_config
from actors.system.ctl import guard_broken_pipe
from actors.system.preflight import KeysUnverified, preflight, verify_alpaca_keys
from daemon import __version__
from daemon.clock import FAKE_NOW_ENV, Clock, OffsetClock, WallClock, fake_now_from
from daemon.errors import ConfigError, FatalError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradingd", description="Multi-strategy daily US-equity trading daemon."
    )
    parser.add_argument("--version", action="version", version=f"tradingd {__version__}")
    sub = parser.add_subparsers(dest="command")
    # `tradingd` alone is `tradingd run`: the run options' defaults for it.
    parser.set_defaults(config=None, once=False, asof=None, force=False, allow_entries=False)

    run = sub.add_parser("run", help="run the daemon in the foreground (the default)")
    run.add_argument("--config", type=Path, help="TOML file (default: $TRADINGD_CONFIG)")
    run.add_argument("--once", action="store_true", help="run one cycle now, then exit")
    run.add_argument(
        "--asof",
        type=_date,
        help="with --once: the trading date to run (default and only date without --force:"
        " the current one)",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="with --once: run an --asof other than the current trading date, or re-run a"
        " date whose cycle completed (exits and stop checks only)",
    )
    run.add_argument(
        "--allow-entries",
        action="store_true",
        help="with --force: let the re-run place new entries too",
    )

    bt = sub.add_parser("backtest", help="replay history through the same actors")
    _backtest_options(bt, out="output directory (must be new)")

    sw = sub.add_parser("sweep", help="a backtest per parameter combination, on Dask")
    _backtest_options(sw, out="output directory (results.csv, heatmap.png, report.html, runs/)")
    _research_options(sw)
    sw.add_argument(
        "--search",
        choices=("grid", "optuna"),
        default="grid",
        help="every combination (grid, the default), or trials proposed by Optuna",
    )
    sw.add_argument("--trials", type=int, help="with --search optuna: the trials in total")
    sw.add_argument("--seed", type=int, help="with --search optuna: the sampler's seed")

    wf = sub.add_parser(
        "walk-forward", help="choose parameters on each training window, trade the next one"
    )
    _backtest_options(wf, out="output directory (windows.csv, equity.csv, report.html)")
    wf.add_argument("--train", required=True, help="training window length: 2y, 18m, 12w, 90d")
    wf.add_argument("--test", required=True, help="test window length (and the roll): 6m")
    _research_options(wf)

    # [backup]
    restore = sub.add_parser("restore", help="put a backup in place of the state database")
    restore.add_argument("file", type=Path, metavar="FILE", help="a tradingd-*.db backup")
    restore.add_argument("--config", type=Path, help="TOML file (default: $TRADINGD_CONFIG)")

    rep = sub.add_parser("report", help="write the digest of past sessions as HTML and PNG")
    rep.add_argument("--out", type=Path, required=True, help="output directory")
    rep.add_argument("--from", dest="start", type=_date, metavar="DATE")
    rep.add_argument("--to", dest="end", type=_date, metavar="DATE")
    rep.add_argument("--config", type=Path, help="TOML file (default: $TRADINGD_CONFIG)")

    rp = sub.add_parser("replay", help="re-run a past live session and show what differs")
    rp.add_argument("date", type=_date, metavar="DATE")
    rp.add_argument("--config", type=Path, help="TOML file (default: $TRADINGD_CONFIG)")
    rp.add_argument("--json", action="store_true", help="print the raw result")

    check = sub.add_parser("check-config", help="print the effective config and warnings")
    check.add_argument("--config", type=Path, help="TOML file (default: $TRADINGD_CONFIG)")
    return parser


def _backtest_options(parser: argparse.ArgumentParser, *, out: str) -> None:
    """The options of ``backtest``, which ``sweep`` and ``walk-forward`` share."""
    parser.add_argument("--from", dest="start", type=_date, required=True, metavar="DATE")
    parser.add_argument("--to", dest="end", type=_date, required=True, metavar="DATE")
    parser.add_argument("--config", type=Path, help="TOML file (default: $TRADINGD_CONFIG)")
    parser.add_argument("--provider", choices=("synthetic", "csv", "alpaca", "alphavantage"))
    parser.add_argument("--csv", type=Path, help="with --provider csv: a CSV file or folder")
    parser.add_argument("--universe", help="SYMBOL,SYMBOL,... or a CSV file with a symbol column")
    parser.add_argument("--strategies", help="only these strategies: name,name,...")
    parser.add_argument("--capital", type=float, help="total capital, split across the strategies")
    parser.add_argument("--out", type=Path, required=True, help=out)


def _research_options(parser: argparse.ArgumentParser) -> None:
    """What ``sweep`` and ``walk-forward`` add: the grid, the objective, the Dask cluster."""
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="a setting and its values: a list (strategies.ma_crossover.fast=10,20,30) or a"
        " range start:stop:step, stop included (10:50:10); one --param per setting",
    )
    parser.add_argument(
        "--objective",
        default="sharpe",
        help="what the best combination maximises: sharpe (default), sortino, cagr, max_drawdown",
    )
    parser.add_argument("--workers", type=int, help="local worker processes (default: a core each)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use this Dask cluster")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long --scheduler may take to answer and show a worker (default 10)",
    )


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def main(argv: list[str] | None = None) -> int:
    """Run ``tradingd``; returns the exit code (quietly 141 when stdout's reader is gone)."""
    return guard_broken_pipe(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command = args.command or "run"
    if command == "run":
        if getattr(args, "allow_entries", False) and not args.force:
            parser.error("--allow-entries needs --force (it only applies to a forced re-run)")
        if (args.asof or args.force) and not args.once:
            parser.error("--asof and --force need --once")
    config_path: Path | None = getattr(args, "config", None)
    # The fake clock is not a setting: keep it out of what load_settings (and reload) sees.
    environ = {k: v for k, v in os.environ.items() if k != FAKE_NOW_ENV}
    try:
        fake_now = fake_now_from(os.environ)
    except ValueError as exc:
        print(f"tradingd: {exc}", file=sys.stderr)
        return EX_CONFIG
    try:
        settings = load_settings(config_path, environ)
    except ConfigError as exc:
        print(f"tradingd: {exc}", file=sys.stderr)
        return EX_CONFIG
    if command == "check-config":
        if (problem := _preflight(settings)) is not None:
            return problem
        print(render_check_config(settings))
        return 0
    if command == "backtest":
        return _backtest(settings, args)
    if command in ("sweep", "walk-forward"):
        return _research(settings, args)
    if command == "replay":
        return _replay(settings, args.date, as_json=args.json)
    if command == "report":
        return _report(settings, args.out, args.start, args.end)
    if command == "restore":
        return _restore(settings, args.file)
    if fake_now is not None and settings.broker.live_trading:
        print(
            f"tradingd: {FAKE_NOW_ENV} is refused: the broker is a live-money account"
            " (a fake clock is for tests and drills only)",
            file=sys.stderr,
        )
        return EX_CONFIG
    if (problem := _preflight(settings)) is not None:
        return problem
    run = command == "run"
    if run and args.asof is not None and not args.force:
        refusal = _other_date(settings, args.asof, fake_now)
        if refusal is not None:
            print(f"tradingd: {refusal}", file=sys.stderr)
            return 2
    return _run(
        settings,
        config_path,
        environ,
        fake_now,
        once=getattr(args, "once", False),
        asof=args.asof if run else None,
        force=args.force if run else False,
        allow_entries=args.allow_entries if run else False,
    )


def _preflight(settings: Settings) -> int | None:
    """EX_CONFIG after one line naming the key when a preflight check fails, else None.

    Alpaca is asked whether it accepts the keys last; when it cannot be asked, a
    warning line says so and the command goes on (an outage is not a config error).
    """
    try:
        preflight(settings)
        anyio.run(verify_alpaca_keys, settings)
    except ConfigError as exc:
        print(f"tradingd: {exc}", file=sys.stderr)
        return EX_CONFIG
    except KeysUnverified as exc:
        print(f"tradingd: warning: {exc}", file=sys.stderr)
    return None


def _other_date(settings: Settings, asof: dt.date, fake_now: dt.datetime | None) -> str | None:
    """Why ``run --once --asof`` is refused (not the current trading date), or None."""
    from actors.market.calendar import ExchangeCalendar, trading_date

    calendar = ExchangeCalendar(settings.schedule.calendar)
    now = fake_now if fake_now is not None else dt.datetime.now(dt.UTC)
    current = trading_date(now, calendar)
    if asof == current:
        return None
    return (
        f"--asof {asof} is not the current trading date {current}"
        f" (now {now.astimezone(calendar.tz):%Y-%m-%d %H:%M %Z}): its signals would trade at"
        " today's prices; nothing placed (--force runs it anyway)"
    )


def _run(
    settings: Settings,
    config_path: Path | None,
    environ: dict[str, str],
    fake_now: dt.datetime | None,
    *,
    once: bool,
    asof: dt.date | None,
    force: bool,
    allow_entries: bool,
) -> int:
    from actors.system.app import Daemon  # imported here: check-config stays light
    from daemon.logging import configure_logging

    configure_logging(level=settings.daemon.log_level, json=settings.daemon.log_json)
    log = structlog.get_logger()
    clock: Clock = WallClock() if fake_now is None else OffsetClock.starting_at(fake_now)
    if fake_now is not None:
        log.warning("fake_clock_in_use", variable=FAKE_NOW_ENV, now=fake_now.isoformat())
    daemon = Daemon(settings, config_path=config_path, environ=environ, clock=clock)
    try:
        return anyio.run(
            lambda: daemon.run(once=once, asof=asof, force=force, allow_entries=allow_entries)
        )
    except (FatalError, ConfigError) as exc:
        return _fatal(exc)
    except BaseExceptionGroup as group:
        fatal = group.subgroup((FatalError, ConfigError))
        if fatal is None:
            raise
        return _fatal(_first_leaf(fatal))
    except KeyboardInterrupt:
        return 0


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception of ``group`` that is not itself a group."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _fatal(exc: BaseException) -> int:
    """One line on stderr for a fatal error; 78 for a configuration error, else 1."""
    structlog.get_logger().critical("daemon_fatal", error_type=type(exc).__name__, error=str(exc))
    print(f"tradingd: {exc}", file=sys.stderr)
    return EX_CONFIG if isinstance(exc, ConfigError) else 1


def _report(settings: Settings, out: Path, start: dt.date | None, end: dt.date | None) -> int:
    """``tradingd report``: one HTML digest (+ chart PNG) per completed session in range."""
    from actors.system.reports import write_reports
    from daemon.errors import Refusal
    from daemon.logging import configure_logging

    configure_logging(level="warning", json=False, stream=sys.stderr)
    try:
        written = anyio.run(lambda: write_reports(settings, out, start, end))
    except (Refusal, FatalError) as exc:
        print(f"tradingd: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def _replay(settings: Settings, day: dt.date, *, as_json: bool) -> int:
    """``tradingd replay DATE``: 0 when the replay matches live, 1 when it differs."""
    import json

    from actors.system.replay import render, replay
    from daemon.errors import Refusal
    from daemon.logging import configure_logging

    configure_logging(level="warning", json=False, stream=sys.stderr)
    try:
        result = anyio.run(lambda: replay(settings, day))
    except Refusal as exc:
        print(f"tradingd: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if as_json else render(result))
    return 0 if result["matches"] else 1


def _with_options(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with the backtest options of the command line applied."""
    from actors.system.backtest import apply_overrides

    if args.csv is not None:
        csv_params = settings.data.csv.model_copy(update={"path": args.csv})
        settings = settings.model_copy(
            update={"data": settings.data.model_copy(update={"csv": csv_params})}
        )
    return apply_overrides(
        settings,
        provider=args.provider,
        universe=args.universe,
        strategies=args.strategies,
        capital=args.capital,
    )


def _research(settings: Settings, args: argparse.Namespace) -> int:
    """``tradingd sweep`` / ``walk-forward``: exit 78 on a bad option, 130 on Ctrl-C."""
    from actors.system.research import commands
    from daemon.logging import configure_logging

    configure_logging(level="warning", json=False, stream=sys.stderr)
    try:
        settings = _with_options(settings, args)
        if args.command == "sweep":
            return commands.sweep(settings, args)
        return commands.walk_forward(settings, args)
    except ConfigError as exc:
        print(f"tradingd: {exc}", file=sys.stderr)
        return EX_CONFIG
    except KeyboardInterrupt:
        print("tradingd: interrupted", file=sys.stderr)
        return commands.EX_INTERRUPTED


def _backtest(settings: Settings, args: argparse.Namespace) -> int:
    from actors.system.backtest import MissingSymbols, run_backtest
    from actors.system.backtest_report import write_report
    from daemon.logging import configure_logging

    configure_logging(level="warning", json=False, stream=sys.stderr)
    try:
        settings = _with_options(settings, args)
        result = anyio.run(
            lambda: run_backtest(
                settings, start=args.start, end=args.end, out=args.out, progress=sys.stderr
            )
        )
        summary = anyio.run(lambda: write_report(result))
    except MissingSymbols as exc:
        print(f"tradingd: backtest: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"tradingd: {exc}", file=sys.stderr)
        return EX_CONFIG
    except FatalError as exc:
        print(f"tradingd: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def _restore(settings: Settings, backup: Path) -> int:
    """[backup] ``tradingd restore FILE``: refused (exit 1) while the daemon runs."""
    from actors.store.schema import MIGRATIONS
    from daemon.errors import StoreError
    from daemon.logging import configure_logging
    from daemon.store.backup import restore

    configure_logging(level="warning", json=False, stream=sys.stderr)
    db_path = settings.daemon.db_path
    try:
        previous = anyio.run(partial(restore, backup, db_path, migrations=MIGRATIONS))
    except StoreError as exc:
        print(f"tradingd: restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored {backup} to {db_path}")
    if previous is not None:
        print(f"the previous database is kept at {previous}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
