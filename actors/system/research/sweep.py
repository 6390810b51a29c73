"""``tradingd sweep``: every combination of the grid, one backtest each, on Dask.

Writes into ``DIR``: ``runs/<combination id>/`` (each combination's own backtest, as
``tradingd backtest`` leaves it: ``stats.json``, ``report.html``, ``equity.csv``,
``trades.csv``, ``backtest.db``), ``results.csv``
(``actors.system.research.results``), ``heatmap.png`` and ``report.html``. A rerun
on the same ``DIR`` runs everything again and writes the same rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from actors.market.calendar import ExchangeCalendar
from actors.system.config import SecretSettings, Settings, with_values
from actors.system.research.grid import Combination, Param, combination_id, combinations
from actors.system.research.heatmap import heatmap_png
from actors.system.research.progress import Progress
from actors.system.research.report import sweep_report
from actors.system.research.results import Row, best_row, write_results
from actors.system.research.runner import Listener, run_specs
from actors.system.research.tasks import OBJECTIVES, Outcome, RunSpec
from daemon.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client


@dataclass(frozen=True, slots=True)
class Plan:
    """What a sweep (or a search) runs: the base settings, the dates, the grid, where."""

    settings: Settings
    start: dt.date
    end: dt.date
    params: list[Param]
    out: Path
    objective: str = "sharpe"

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]


@dataclass(frozen=True, slots=True)
class SweepResult:
    rows: list[Row]
    best: Row | None
    interrupted: bool
    total: int


def check_plan(plan: Plan) -> None:
    """The objective is known and the dates hold sessions: refused before any task runs."""
    check_objective(plan.objective)
    check_dates(plan.settings, plan.start, plan.end)


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ConfigError("--objective", f"{objective!r}: one of {', '.join(OBJECTIVES)}")


def check_dates(settings: Settings, start: dt.date, end: dt.date) -> list[dt.date]:
    """The sessions of ``[start, end]``; ``ConfigError`` naming the option when there are none."""
    if end < start:
        raise ConfigError("--to", f"{end} is before --from {start}")
    calendar = ExchangeCalendar(settings.schedule.calendar)
    calendar.load()
    sessions = calendar.sessions_between(start, end)
    if not sessions:
        raise ConfigError("--from/--to", f"no trading session between {start} and {end}")
    return sessions


def run_sweep(
    plan: Plan,
    client: Client,
    *,
    stream: TextIO | None = None,
    listener: Listener | None = None,
) -> SweepResult:
    """Run the whole grid; write results.csv, heatmap.png and report.html into ``plan.out``."""
    check_plan(plan)
    combos = combinations(plan.params)
    plan.out.mkdir(parents=True, exist_ok=True)
    progress = Progress(stream, len(combos), "combinations")
    jobs = grid_jobs(plan, combos)
    outcomes = run_combinations(client, plan, jobs, progress=progress, listener=listener)
    progress.done()
    rows = [Row(c, o) for c, o in zip(combos, outcomes, strict=True) if o is not None]
    interrupted = len(rows) < len(combos)
    write_outputs(plan, rows, title=f"Sweep {plan.start} .. {plan.end}", total=len(combos))
    return SweepResult(rows, best_row(rows, plan.objective), interrupted, len(combos))


@dataclass(frozen=True, slots=True)
class Job:
    """One combination over one date range, run into ``run_dir``."""

    combo: Combination
    start: dt.date
    end: dt.date
    run_dir: Path
    curves: bool = False
    report: bool = True


def grid_jobs(plan: Plan, combos: Sequence[Combination]) -> list[Job]:
    """The sweep's jobs: every combination over the plan's dates, in ``DIR/runs/<id>``."""
    return [Job(c, plan.start, plan.end, plan.out / "runs" / combination_id(c)) for c in combos]


def spec_for(plan: Plan, job: Job, session: str) -> RunSpec:
    """The task of one job: the plan's settings with the combination applied (validated as
    a config file is: ``ConfigError`` when refused), without the secrets, which stay on
    this machine (a worker reads its own, ``tasks.run_spec``)."""
    settings = with_values(plan.settings, job.combo)
    return RunSpec(
        settings.model_copy(update={"secrets": SecretSettings()}),
        job.start,
        job.end,
        job.run_dir,
        session=session,
        curves=job.curves,
        report=job.report,
    )


def run_combinations(
    client: Client,
    plan: Plan,
    jobs: Sequence[Job],
    *,
    progress: Progress | None = None,
    listener: Listener | None = None,
) -> list[Outcome | None]:
    """Each job's outcome, by position; None where an interruption left it unrun.

    A combination the settings refuse (``fast >= slow``, a value out of bounds) is
    a failed outcome at once, without a task. The jobs of one call share their
    markets in each worker (one ``session``).
    """
    session = uuid.uuid4().hex
    outcomes: list[Outcome | None] = [None] * len(jobs)
    specs: list[RunSpec] = []
    where: list[int] = []
    for i, job in enumerate(jobs):
        try:
            specs.append(spec_for(plan, job, session))
        except ConfigError as exc:
            outcomes[i] = Outcome.failed(str(exc))
            if progress is not None:
                progress.step(failed=True)
            continue
        where.append(i)

    def told(n: int, outcome: Outcome) -> None:
        if listener is not None:
            listener(where[n], outcome)

    gathered = run_specs(client, specs, progress=progress, listener=told)
    for n, outcome in enumerate(gathered.outcomes):
        outcomes[where[n]] = outcome
    return outcomes


def write_outputs(plan: Plan, rows: Sequence[Row], *, title: str, total: int) -> None:
    """results.csv, heatmap.png and report.html of ``rows`` into ``plan.out``."""
    write_results(plan.out / "results.csv", plan.keys, rows)
    png = heatmap_png(plan.keys, rows, "sharpe")
    (plan.out / "heatmap.png").write_bytes(png)
    best = best_row(rows, plan.objective)
    failed = sum(1 for r in rows if r.outcome.error is not None)
    summary = [
        f"{plan.start} .. {plan.end}; {len(rows)} of {total} combinations finished"
        + (f", {failed} failed" if failed else ""),
        *(f"{p.key}: {', '.join(str(v) for v in p.values)}" for p in plan.params),
        f"objective: {plan.objective}",
    ]
    html = sweep_report(
        title=title,
        summary=summary,
        keys=plan.keys,
        rows=rows,
        best=best,
        objective=plan.objective,
        heatmap=png,
    )
    (plan.out / "report.html").write_text(html)


def summary_lines(result: SweepResult, plan: Plan) -> list[str]:
    """What the terminal shows when a sweep ends."""
    lines = [f"{len(result.rows)} of {result.total} combinations finished"]
    failed = [r for r in result.rows if r.outcome.error is not None]
    if failed:
        lines.append(f"{len(failed)} failed (their error is in results.csv); the first:")
        lines.append(f"  {failed[0].outcome.error}")
    if result.best is not None:
        value = result.best.metric(plan.objective)
        shown = ", ".join(f"{k}={v}" for k, v in result.best.combo.items())
        lines.append(f"best {plan.objective} {value:.3f}: {shown}")
    lines.append(f"written: {plan.out}/results.csv, heatmap.png, report.html, runs/")
    return lines
