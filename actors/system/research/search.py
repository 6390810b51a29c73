"""``tradingd sweep --search optuna --trials N``: Optuna proposes, Dask runs, the study resumes.

The search space is the ``--param`` grid: a list is a categorical choice, a range
``start:stop:step`` an integer or float distribution on that step. The study lives
in ``DIR/study.journal`` (Optuna's ``JournalStorage`` over a file), so a search
stopped half-way (Ctrl-C, a lost client) resumes when it is run again on the same
``DIR``: ``--trials`` is the total wanted, and only the trials not yet finished are
run. A directory holding a study of other parameters, dates or objective is refused.

Trials are asked in batches of one per worker, run as Dask tasks, and told as they
finish; the next batch is asked once the whole batch is told. The TPE sampler is
seeded with ``--seed`` plus the number of trials already in the study, so the same
command on the same cluster size proposes the same trials, resumed or not. A trial
whose combination fails, or whose objective is undefined (the Sharpe of a run that
never traded), is told as failed: the sampler learns nothing from it, and its row
keeps its metrics and error. Trials cut short by Ctrl-C are failed as
``interrupted`` (told without a result), not counted, and queued again for the
next run; so are trials a search that died left running (one search per ``DIR``
at a time).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO

from actors.system.research.cluster import worker_count
from actors.system.research.grid import Combination, Param, Value
from actors.system.research.progress import Progress
from actors.system.research.results import Row, best_row
from actors.system.research.sweep import (
    Job,
    Plan,
    SweepResult,
    check_plan,
    run_combinations,
    write_outputs,
)
from actors.system.research.tasks import Outcome
from daemon.errors import ConfigError

if TYPE_CHECKING:
    import optuna
    from distributed import Client
    from optuna.distributions import BaseDistribution

STUDY_FILE: Final = "study.journal"
STUDY_NAME: Final = "tradingd"
DEFAULT_SEED: Final = 20260101
_RESULT: Final = "metrics"


def run_search(
    plan: Plan,
    client: Client,
    *,
    trials: int,
    seed: int | None = None,
    stream: TextIO | None = None,
) -> SweepResult:
    """Run the trials still missing of ``trials``; write every finished trial's row."""
    check_plan(plan)
    plan.out.mkdir(parents=True, exist_ok=True)
    base_seed = DEFAULT_SEED if seed is None else seed
    study = open_study(plan)
    _requeue_stale(study)
    space = distributions(plan.params)
    remaining = trials - len(finished(study))
    progress = Progress(stream, max(0, remaining), "trials")
    interrupted = False
    while remaining > 0 and not interrupted:
        batch = _ask(study, space, base_seed, min(worker_count(client), remaining))
        interrupted = _run_batch(study, plan, client, batch, progress)
        remaining = trials - len(finished(study))
    progress.done()
    rows = rows_of(study, plan.keys)
    total = max(trials, len(rows))  # a study may hold more trials than asked for now
    write_outputs(plan, rows, title=f"Optuna search {plan.start} .. {plan.end}", total=total)
    return SweepResult(rows, best_row(rows, plan.objective), interrupted, total)


def distributions(params: Sequence[Param]) -> dict[str, BaseDistribution]:
    """The search space: lists categorical, ranges int or float on their step."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    space: dict[str, BaseDistribution] = {}
    for p in params:
        span = p.span
        if span is None:
            space[p.key] = CategoricalDistribution(list(p.values))
        elif p.is_int:
            space[p.key] = IntDistribution(int(span.start), int(span.last), step=int(span.step))
        else:
            space[p.key] = FloatDistribution(
                float(span.start), float(span.last), step=float(span.step)
            )
    return space


def open_study(plan: Plan) -> optuna.Study:
    """The study in ``plan.out`` (created on first use); refused if it searched something else."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = JournalStorage(JournalFileBackend(str(plan.out / STUDY_FILE)))
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=storage, direction="maximize", load_if_exists=True
    )
    identity = _identity(plan)
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", identity)
    elif stored != identity:
        raise ConfigError(
            "--out",
            f"{plan.out / STUDY_FILE} holds a search of other options ({json.dumps(stored)});"
            " give the same --param, --from, --to and --objective, or another --out",
        )
    return study


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count towards ``--trials``: told with a result (complete or failed).

    A trial Ctrl-C cut short, or one a dead search left running, was failed without
    a result (no ``metrics`` attribute): it does not count.
    """
    from optuna.trial import TrialState

    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.FAIL) and _RESULT in t.user_attrs
    ]


def rows_of(study: optuna.Study, keys: Sequence[str]) -> list[Row]:
    """One row per counted trial, by trial number, from what each trial keeps."""
    rows = []
    for t in sorted(finished(study), key=lambda t: t.number):
        combo: Combination = {k: _value(t.params[k]) for k in keys if k in t.params}
        outcome = Outcome(metrics=dict(t.user_attrs[_RESULT]), error=t.user_attrs.get("error"))
        rows.append(Row(combo, outcome, trial=t.number))
    return rows


def _identity(plan: Plan) -> dict[str, Any]:
    return {
        "params": {p.key: [str(v) for v in p.values] for p in plan.params},
        "from": str(plan.start),
        "to": str(plan.end),
        "objective": plan.objective,
    }


def _ask(
    study: optuna.Study, space: dict[str, BaseDistribution], seed: int, n: int
) -> list[optuna.trial.Trial]:
    from optuna.samplers import TPESampler

    study.sampler = TPESampler(seed=seed + len(study.get_trials(deepcopy=False)))
    return [study.ask(space) for _ in range(n)]


def _run_batch(
    study: optuna.Study,
    plan: Plan,
    client: Client,
    batch: list[optuna.trial.Trial],
    progress: Progress,
) -> bool:
    """Run one batch, telling each trial as it finishes; True when Ctrl-C cut it short."""
    combos = [{k: _value(trial.params[k]) for k in plan.keys} for trial in batch]
    told: set[int] = set()

    def tell(i: int, outcome: Outcome) -> None:
        _tell(study, batch[i], outcome, plan.objective)
        told.add(i)

    # A trial's own directory: the sampler may propose one combination twice in a batch.
    jobs = [
        Job(combo, plan.start, plan.end, plan.out / "runs" / f"trial-{trial.number:04d}")
        for combo, trial in zip(combos, batch, strict=True)
    ]
    outcomes = run_combinations(client, plan, jobs, progress=progress, listener=tell)
    interrupted = False
    for i, outcome in enumerate(outcomes):
        if i in told:
            continue
        if outcome is None:
            _interrupt(study, batch[i])
            interrupted = True
        else:  # refused by the settings before any task ran
            _tell(study, batch[i], outcome, plan.objective)
    return interrupted


def _tell(study: optuna.Study, trial: optuna.trial.Trial, outcome: Outcome, objective: str) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr(_RESULT, outcome.metrics)
    if outcome.error is not None:
        trial.set_user_attr("error", outcome.error)
    value = outcome.metrics.get(objective) if outcome.error is None else None
    if value is None:
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, float(value))


def _interrupt(study: optuna.Study, trial: optuna.trial.Trial) -> None:
    """Fail a trial Ctrl-C cut short, and queue its parameters for the next run."""
    from optuna.trial import TrialState

    study.tell(trial, state=TrialState.FAIL)
    study.enqueue_trial(dict(trial.params), skip_if_exists=False)


def _requeue_stale(study: optuna.Study) -> None:
    """Trials left running by a search that died: failed as interrupted and queued again."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(dict(t.params), skip_if_exists=False)


def _value(raw: Any) -> Value:
    if isinstance(raw, bool | int | float | str):
        return raw
    return str(raw)
