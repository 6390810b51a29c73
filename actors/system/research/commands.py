"""``tradingd sweep`` and ``tradingd walk-forward``: options to a plan, a plan to files.

The settings arrive with the backtest options applied (``--provider``, ``--csv``,
``--universe``, ``--strategies``, ``--capital``: ``actors.system.cli``). A bad
``--param``, range, objective, length, ``--workers`` with ``--scheduler`` or a
scheduler that does not answer is a ``ConfigError`` before any task runs (exit 78
in the CLI). Ctrl-C cancels what has not finished, writes the finished rows and
exits 130. Every combination failing exits 1 (the first error is shown).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Final, TextIO

from actors.system.config import Settings
from actors.system.research.cluster import check_choice, dask_client
from actors.system.research.grid import parse_params
from actors.system.research.sweep import Plan, SweepResult, check_plan, run_sweep, summary_lines
from daemon.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

EX_INTERRUPTED: Final = 130


def sweep(settings: Settings, args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """``tradingd sweep``: the grid, or an Optuna search with ``--search optuna``."""
    stream = stream or sys.stderr
    params = parse_params(args.param)
    plan = Plan(settings, args.start, args.end, params, args.out, args.objective)
    check_plan(plan)
    check_choice(args.workers, args.scheduler)
    if args.search == "optuna":
        from actors.system.research.search import run_search

        if args.trials is None or args.trials < 1:
            raise ConfigError("--trials", "--search optuna needs --trials N (N >= 1)")
        with _client(args) as client:
            result = run_search(plan, client, trials=args.trials, seed=args.seed, stream=stream)
    else:
        if args.trials is not None or args.seed is not None:
            raise ConfigError("--trials", "--trials and --seed go with --search optuna")
        with _client(args) as client:
            result = run_sweep(plan, client, stream=stream)
    return _finish(result, plan)


def walk_forward(settings: Settings, args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """``tradingd walk-forward``: choose on each training window, trade the next one."""
    stream = stream or sys.stderr
    from actors.system.research.walkforward import WalkForward, run_walk_forward, summary

    params = parse_params(args.param)
    plan = Plan(settings, args.start, args.end, params, args.out, args.objective)
    wf = WalkForward.from_options(plan, train=args.train, test=args.test)
    check_choice(args.workers, args.scheduler)
    with _client(args) as client:
        result = run_walk_forward(wf, client, stream=stream)
    for line in summary(result):
        print(line)
    if result.interrupted:
        print("interrupted: the finished windows are written", file=sys.stderr)
        return EX_INTERRUPTED
    return 0 if any(w.test is not None and w.test.error is None for w in result.windows) else 1


def _client(args: argparse.Namespace) -> AbstractContextManager[Client]:
    if not args.connect_timeout > 0:
        raise ConfigError("--connect-timeout", f"{args.connect_timeout:g}: must be positive")
    return dask_client(workers=args.workers, scheduler=args.scheduler, timeout=args.connect_timeout)


def _finish(result: SweepResult, plan: Plan) -> int:
    for line in summary_lines(result, plan):
        print(line)
    if result.interrupted:
        print(f"interrupted: {len(result.rows)} of {result.total} rows written", file=sys.stderr)
        return EX_INTERRUPTED
    if result.rows and all(r.outcome.error is not None for r in result.rows):
        first = result.rows[0].outcome.error
        print(f"tradingd: every combination failed: {first}", file=sys.stderr)
        return 1
    return 0
