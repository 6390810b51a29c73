"""Submit backtests to Dask and gather their outcomes in the order they were given.

Each ``RunSpec`` is one task (``tasks.run_spec``). Outcomes are kept by position,
not by arrival, so a results table is in grid order whoever finished first: the
same rows locally, on a cluster and on a rerun. A worker that dies takes its
running and queued tasks with it; the scheduler gives them to another worker (up
to ``distributed.scheduler.allowed-failures`` times), and ``retries`` resubmits
a task that raised (a task raises only when something outside the backtest broke:
the backtest's own failures are its outcome's error). A task past both is a
failed row naming why.

Ctrl-C (``KeyboardInterrupt``) cancels every task not yet finished and returns
what finished, marked ``interrupted``, so the caller can still write its rows.
"""

from __future__ import annotations

from asyncio import CancelledError
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from actors.system.research.progress import Progress
from actors.system.research.tasks import Outcome, RunSpec, run_spec

if TYPE_CHECKING:
    from distributed import Client, Future

RETRIES: Final = 2
"""Resubmissions of a task that raised (on top of the scheduler's own for lost workers)."""

Listener = Callable[[int, Outcome], None]
"""Told of each outcome as it arrives: its position in the specs, and the outcome."""


@dataclass(frozen=True, slots=True)
class Gathered:
    """The outcome of each spec, by position (None: not finished when interrupted)."""

    outcomes: list[Outcome | None]
    interrupted: bool = False


def run_specs(
    client: Client,
    specs: Sequence[RunSpec],
    *,
    progress: Progress | None = None,
    listener: Listener | None = None,
    retries: int = RETRIES,
) -> Gathered:
    """Run every spec as a Dask task; the outcomes in the order of ``specs``."""
    from distributed import as_completed

    futures = [client.submit(run_spec, spec, pure=False, retries=retries) for spec in specs]
    position = {future.key: i for i, future in enumerate(futures)}
    outcomes: list[Outcome | None] = [None] * len(specs)
    try:
        for future in as_completed(futures):
            i = position[future.key]
            outcome = _outcome(future)
            outcomes[i] = outcome
            if progress is not None:
                progress.step(failed=outcome.error is not None)
            if listener is not None:
                listener(i, outcome)
    except KeyboardInterrupt:
        client.cancel([f for f in futures if not f.done()], reason="interrupted (Ctrl-C)")
        return Gathered(outcomes, interrupted=True)
    return Gathered(outcomes)


def _outcome(future: Future[Outcome]) -> Outcome:
    """The task's outcome, or a failed one naming why Dask gave up on it."""
    try:
        return future.result()
    except (Exception, CancelledError) as exc:  # KilledWorker, CancelledError, a lost task
        return Outcome.failed(f"{type(exc).__name__}: {exc}")
