"""``results.csv``: one row per combination, in grid (or trial) order.

Columns: the parameters (their dotted setting keys), then ``sharpe``, ``sortino``,
``cagr``, ``max_drawdown``, ``trades``, ``exposure``, ``fees`` as the run's
``stats.json`` has them, then ``error`` (empty for a run that finished). An Optuna
search puts its ``trial`` number first. Floats are written exactly (``repr``), an
undefined figure (the Sharpe of a flat curve) as an empty cell.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.system.research.grid import Combination, cell
from actors.system.research.tasks import METRICS, Outcome


@dataclass(frozen=True, slots=True)
class Row:
    """One combination and what its backtest gave."""

    combo: Combination
    outcome: Outcome
    trial: int | None = None

    def metric(self, name: str) -> float | None:
        """A metric of the row, None when the run failed or the figure is undefined."""
        if self.outcome.error is not None:
            return None
        value = self.outcome.metrics.get(name)
        return None if value is None else float(value)


def best_row(rows: Sequence[Row], objective: str) -> Row | None:
    """The row with the highest ``objective``; the first in order among equals."""
    best: tuple[float, Row] | None = None
    for row in rows:
        value = row.metric(objective)
        if value is not None and (best is None or value > best[0]):
            best = (value, row)
    return None if best is None else best[1]


def write_results(path: Path, keys: Sequence[str], rows: Sequence[Row]) -> None:
    """Write ``results.csv`` (``trial`` first when the rows come from a search)."""
    trials = any(r.trial is not None for r in rows)
    header = [*(["trial"] if trials else []), *keys, *METRICS, "error"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for r in rows:
            writer.writerow(
                [
                    *([str(r.trial)] if trials else []),
                    *(cell(r.combo.get(k)) for k in keys),
                    *(_metric_cell(r.outcome.metrics.get(m)) for m in METRICS),
                    r.outcome.error or "",
                ]
            )


def read_results(path: Path) -> list[dict[str, str]]:
    """``results.csv`` as dictionaries of its cells (for scripts and tests)."""
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _metric_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)
