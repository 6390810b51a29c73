"""``heatmap.png``: a metric (Sharpe) over the parameter grid.

Two parameters: one heatmap, a cell per combination. More: one panel per pair of
parameters, each cell the best value over the other parameters' values (what the
pair can reach). One parameter: the metric per value as bars. A cell no run
filled (a failed combination, an undefined Sharpe, a point a search never tried)
stays blank. Drawn on an Agg canvas without pyplot, as ``actors.reports.charts``.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from actors.system.research.grid import Value, cell
from actors.system.research.results import Row

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DPI = 100
MAX_ANNOTATED_CELLS = 150


def heatmap_png(keys: Sequence[str], rows: Sequence[Row], metric: str = "sharpe") -> bytes:
    """The PNG of ``metric`` over the grid of ``keys``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pairs = list(itertools.combinations(range(len(keys)), 2))
    panels = max(1, len(pairs))
    cols = min(3, panels)
    lines = math.ceil(panels / cols)
    fig = Figure(figsize=(4.8 * cols, 4.0 * lines), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(lines, cols, i + 1) for i in range(panels)]
    label = _labels(keys)
    if len(keys) == 1:
        _bars(axes[0], keys[0], label[keys[0]], rows, metric)
    for ax, (i, j) in zip(axes, pairs, strict=False):
        _panel(ax, (keys[i], keys[j]), (label[keys[i]], label[keys[j]]), rows, metric)
    if len(keys) > 2:
        fig.suptitle(f"{metric}: best over the other parameters", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def pair_matrix(
    rows: Sequence[Row], x: str, y: str, metric: str
) -> tuple[list[Value], list[Value], npt.NDArray[np.float64]]:
    """Distinct values of ``x`` and ``y`` and the best ``metric`` per (y, x) cell (NaN: none)."""
    xs = _distinct(rows, x)
    ys = _distinct(rows, y)
    grid = np.full((len(ys), len(xs)), np.nan)
    for row in rows:
        value = row.metric(metric)
        if value is None or x not in row.combo or y not in row.combo:
            continue
        a, b = ys.index(row.combo[y]), xs.index(row.combo[x])
        if np.isnan(grid[a, b]) or value > grid[a, b]:
            grid[a, b] = value
    return xs, ys, grid


def _panel(
    ax: Axes, keys: tuple[str, str], labels: tuple[str, str], rows: Sequence[Row], metric: str
) -> None:
    y_key, x_key = keys
    xs, ys, grid = pair_matrix(rows, x_key, y_key, metric)
    finite = grid[np.isfinite(grid)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    image = ax.imshow(
        np.ma.masked_invalid(grid),
        cmap="RdYlGn",
        vmin=-bound or -1.0,
        vmax=bound or 1.0,
        aspect="auto",
        origin="lower",
    )
    ax.figure.colorbar(image, ax=ax, shrink=0.85, label=metric)
    ax.set_xticks(range(len(xs)), [cell(v) for v in xs], rotation=45 if len(xs) > 8 else 0)
    ax.set_yticks(range(len(ys)), [cell(v) for v in ys])
    ax.set_xlabel(labels[1])
    ax.set_ylabel(labels[0])
    ax.set_title(f"{metric} by {labels[0]} x {labels[1]}", fontsize=10)
    if grid.size <= MAX_ANNOTATED_CELLS:
        for (a, b), v in np.ndenumerate(grid):
            shown, color = (f"{v:.2f}", "black") if np.isfinite(v) else ("n/a", "#999")
            ax.text(b, a, shown, ha="center", va="center", fontsize=8, color=color)


def _bars(ax: Axes, key: str, label: str, rows: Sequence[Row], metric: str) -> None:
    values = _distinct(rows, key)
    best: list[float] = []
    for v in values:
        found = [m for r in rows if r.combo.get(key) == v and (m := r.metric(metric)) is not None]
        best.append(max(found) if found else math.nan)
    ax.bar(range(len(values)), best, color=["#2e7d32" if b >= 0 else "#c0392b" for b in best])
    ax.set_xticks(range(len(values)), [cell(v) for v in values])
    ax.set_xlabel(label)
    ax.set_ylabel(metric)
    ax.axhline(0.0, color="#555", linewidth=0.8)
    ax.set_title(f"{metric} by {label}", fontsize=10)


def _distinct(rows: Sequence[Row], key: str) -> list[Value]:
    seen: list[Value] = []
    for row in rows:
        if key in row.combo and row.combo[key] not in seen:
            seen.append(row.combo[key])
    if all(isinstance(v, int | float) for v in seen):
        return sorted(seen, key=_number)
    return seen


def _number(value: Any) -> float:
    return float(value)


def _labels(keys: Sequence[str]) -> dict[str, str]:
    """Each key by its shortest dotted suffix no other key ends with (``fast``)."""
    out: dict[str, str] = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if not any(o != key and (o == suffix or o.endswith("." + suffix)) for o in keys):
                out[key] = suffix
                break
        else:
            out[key] = key
    return out
