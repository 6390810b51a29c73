"""``tradingd walk-forward``: choose on a training window, trade the next one out of sample.

Windows roll over ``[--from, --to]`` by the test length: window k trains on the
sessions of ``[from + k*test, from + k*test + train)`` and tests on the sessions of
the ``test`` that follows (the last test window ends at ``--to``, shorter if need
be). Lengths are calendar spans (``2y``, ``18m``, ``12w``, ``90d``) laid over the
trading sessions.

Every training window's grid runs at once on Dask (one task per window and
combination); each window's best combination by ``--objective`` (the first in grid
order among equals) is then backtested over its test window. No look-ahead: a
training backtest loads bars up to its last training session only
(``run_backtest`` loads through its last session), and the test window's run reads
only the history before each of its sessions, as every backtest does; its warm-up
history before the test window is in the past of that window.

The out-of-sample curve chains the test windows: each starts from the capital and
is rescaled to continue where the previous one ended (returns are chained, not
dollars added). The benchmark (``[backtest] benchmark``: SPY or the universe's
equal weight, bought at the close before each test window) is chained the same
way, so an equal weight is re-balanced at each window's start.

Writes ``DIR/windows.csv`` (window dates, chosen parameters, in-sample ``is_*`` and
out-of-sample ``oos_*`` metrics, error), ``DIR/equity.csv`` (date, window, equity,
benchmark), ``DIR/report.html``, and each run under ``DIR/windows/NN/``.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import pandas as pd

from actors.system.research.grid import Combination, cell, combination_id, combinations
from actors.system.research.progress import Progress
from actors.system.research.results import Row, best_row
from actors.system.research.sweep import Job, Plan, check_dates, check_plan, run_combinations
from actors.system.research.tasks import METRICS, Outcome
from daemon.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

_LENGTH = re.compile(r"\s*(\d+)\s*([ymwd])\s*")


@dataclass(frozen=True, slots=True)
class Length:
    """A calendar span: months and days (``2y`` is 24 months, ``12w`` 84 days)."""

    months: int
    days: int
    text: str

    def after(self, day: dt.date, times: int = 1) -> dt.date:
        """``day`` moved on by this span ``times`` times."""
        moved = pd.Timestamp(day) + pd.DateOffset(
            months=self.months * times, days=self.days * times
        )
        return moved.date()


def parse_length(text: str, option: str) -> Length:
    """``2y``, ``18m``, ``12w`` or ``90d``; a ``ConfigError`` naming the option otherwise."""
    match = _LENGTH.fullmatch(text.lower())
    if match is None or int(match[1]) == 0:
        raise ConfigError(option, f"{text!r}: expected a length such as 2y, 18m, 12w or 90d")
    n, unit = int(match[1]), match[2]
    months = {"y": 12 * n, "m": n}.get(unit, 0)
    days = {"w": 7 * n, "d": n}.get(unit, 0)
    return Length(months, days, text.strip())


@dataclass(frozen=True, slots=True)
class Window:
    """One step: the training sessions, then the test sessions right after them."""

    index: int
    train: list[dt.date]
    test: list[dt.date]

    @property
    def name(self) -> str:
        return f"{self.index:02d}"


def make_windows(
    sessions: Sequence[dt.date], start: dt.date, train: Length, test: Length
) -> list[Window]:
    """The rolling windows over ``sessions`` (the range's), the first anchored at ``start``."""
    out: list[Window] = []
    last = sessions[-1]
    k = 0
    while True:
        anchor = test.after(start, k)
        split = train.after(anchor)
        if split > last:
            return out
        stop = test.after(split)
        training = [s for s in sessions if anchor <= s < split]
        testing = [s for s in sessions if split <= s < stop]
        if training and testing:
            out.append(Window(len(out), training, testing))
        k += 1


@dataclass(frozen=True, slots=True)
class WalkForward:
    plan: Plan
    train: Length
    test: Length
    windows: list[Window]

    @classmethod
    def from_options(cls, plan: Plan, *, train: str, test: str) -> WalkForward:
        """Checked options: lengths, objective, dates, and at least one window."""
        check_plan(plan)
        train_len = parse_length(train, "--train")
        test_len = parse_length(test, "--test")
        sessions = check_dates(plan.settings, plan.start, plan.end)
        windows = make_windows(sessions, plan.start, train_len, test_len)
        if not windows:
            raise ConfigError(
                "--train",
                f"{plan.start} .. {plan.end} holds no {train_len.text} training window"
                f" followed by a {test_len.text} test window",
            )
        return cls(plan, train_len, test_len, windows)


@dataclass(frozen=True, slots=True)
class WindowResult:
    window: Window
    rows: list[Row]  # the training grid
    best: Row | None
    test: Outcome | None  # None: not run (no best, or interrupted)


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    wf: WalkForward
    windows: list[WindowResult]
    equity: list[tuple[str, int, float, float | None]]  # date, window, equity, benchmark
    interrupted: bool


def run_walk_forward(
    wf: WalkForward, client: Client, *, stream: TextIO | None = None
) -> WalkForwardResult:
    """Train every window's grid, test each window's best; write the files into ``DIR``."""
    plan = wf.plan
    plan.out.mkdir(parents=True, exist_ok=True)
    combos = combinations(plan.params)
    progress = Progress(stream, len(wf.windows) * (len(combos) + 1), "runs")
    train_jobs = [
        Job(c, w.train[0], w.train[-1], _train_dir(plan, w, c), report=False)
        for w in wf.windows
        for c in combos
    ]
    trained = run_combinations(client, plan, train_jobs, progress=progress)
    interrupted = any(o is None for o in trained)
    chosen: list[tuple[Window, list[Row], Row | None]] = []
    for n, w in enumerate(wf.windows):
        outcomes = trained[n * len(combos) : (n + 1) * len(combos)]
        rows = [Row(c, o) for c, o in zip(combos, outcomes, strict=True) if o is not None]
        best = None if len(rows) < len(combos) else best_row(rows, plan.objective)
        chosen.append((w, rows, best))
    tests: dict[int, Outcome | None] = {}
    if not interrupted:
        to_test = [(w, best) for w, _, best in chosen if best is not None]
        test_jobs = [
            Job(b.combo, w.test[0], w.test[-1], plan.out / "windows" / w.name / "test", curves=True)
            for w, b in to_test
        ]
        tested = run_combinations(client, plan, test_jobs, progress=progress)
        tests = {w.index: o for (w, _), o in zip(to_test, tested, strict=True)}
        interrupted = any(o is None for o in tested)
    progress.done()
    results = [WindowResult(w, rows, best, tests.get(w.index)) for w, rows, best in chosen]
    result = WalkForwardResult(wf, results, stitch(results), interrupted)
    write_files(result)
    return result


def _train_dir(plan: Plan, window: Window, combo: Combination) -> Path:
    return plan.out / "windows" / window.name / "train" / combination_id(combo)


def stitch(results: Sequence[WindowResult]) -> list[tuple[str, int, float, float | None]]:
    """The out-of-sample curve: each test window rescaled to continue the one before."""
    points: list[tuple[str, int, float, float | None]] = []
    level: float | None = None
    bench_level: float | None = None
    for r in results:
        test = r.test
        if test is None or test.error is not None or not test.equity or not test.initial_equity:
            continue
        initial = test.initial_equity
        scale = 1.0 if level is None else level / initial
        bench = dict(test.benchmark)
        bscale = 1.0 if bench_level is None else bench_level / initial
        # After the first window, its starting point is the previous window's last session.
        for day, value in test.equity[0 if level is None else 1 :]:
            b = bench.get(day)
            points.append((day, r.window.index, value * scale, None if b is None else b * bscale))
        level = test.equity[-1][1] * scale
        if test.benchmark:
            bench_level = test.benchmark[-1][1] * bscale
    return points


def write_files(result: WalkForwardResult) -> None:
    """windows.csv, equity.csv and report.html."""
    from actors.system.research.wf_report import walk_forward_report

    plan = result.wf.plan
    keys = plan.keys
    with (plan.out / "windows.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "window", "train_start", "train_end", "test_start", "test_end", *keys,
                *(f"is_{m}" for m in METRICS), *(f"oos_{m}" for m in METRICS), "error",
            ]
        )  # fmt: skip
        for r in result.windows:
            writer.writerow(window_row(r, keys))
    with (plan.out / "equity.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["date", "window", "equity", "benchmark"])
        for day, window, equity, bench in result.equity:
            writer.writerow([day, window, repr(equity), "" if bench is None else repr(bench)])
    (plan.out / "report.html").write_text(walk_forward_report(result))


def window_row(r: WindowResult, keys: Sequence[str]) -> list[str]:
    """One line of windows.csv."""
    w = r.window
    chosen = r.best.combo if r.best is not None else {}
    in_sample = r.best.outcome.metrics if r.best is not None else {}
    test = r.test
    out_sample = test.metrics if test is not None and test.error is None else {}
    return [
        str(w.index),
        w.train[0].isoformat(),
        w.train[-1].isoformat(),
        w.test[0].isoformat(),
        w.test[-1].isoformat(),
        *(cell(chosen.get(k)) for k in keys),
        *(_cell(in_sample.get(m)) for m in METRICS),
        *(_cell(out_sample.get(m)) for m in METRICS),
        window_error(r),
    ]


def window_error(r: WindowResult) -> str:
    """Why a window has no out-of-sample result ('' when it has one)."""
    if r.test is not None:
        return r.test.error or ""
    if r.best is None:
        if any(row.outcome.error is None for row in r.rows) or not r.rows:
            return "no combination gave an objective on the training window"
        return f"every training run failed: {r.rows[0].outcome.error}"
    return "not run (interrupted)"


def summary(result: WalkForwardResult) -> list[str]:
    """What the terminal shows when a walk-forward ends."""
    plan = result.wf.plan
    lines = [
        f"{len(result.wf.windows)} windows: train {result.wf.train.text}, test"
        f" {result.wf.test.text}, objective {plan.objective}"
    ]
    for r in result.windows:
        w = r.window
        chosen = ", ".join(f"{k}={cell(v)}" for k, v in (r.best.combo if r.best else {}).items())
        oos = r.test.metrics.get("total_return") if r.test and r.test.error is None else None
        shown = "n/a" if oos is None else f"{float(oos):+.2%}"
        lines.append(
            f"  {w.name} test {w.test[0]} .. {w.test[-1]}: {chosen or window_error(r)};"
            f" out of sample {shown}"
        )
    if result.equity:
        first, last = result.equity[0][2], result.equity[-1][2]
        lines.append(f"out-of-sample total return {last / first - 1:+.2%}")
    lines.append(f"written: {plan.out}/windows.csv, equity.csv, report.html, windows/")
    return lines


def _cell(value: object) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)
