"""``report.html`` of a sweep, a search and a walk-forward: one self-contained page each.

The images are embedded (base64), so the page can be mailed or opened from any
folder; tables scroll sideways inside their box, so the page itself fits a phone.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

from actors.system.research.grid import cell
from actors.system.research.results import Row
from actors.system.research.tasks import METRICS

_STYLE = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1000px;margin:16px auto;padding:0 12px;
color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th{border-bottom:2px solid #333}
tr.best td{background:#e8f5e9;font-weight:bold}
td.error{text-align:left;color:#b71c1c;white-space:normal;min-width:240px}
img{max-width:100%;height:auto}
"""


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body``."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table(
    headers: Sequence[str],
    body: Sequence[Sequence[Any]],
    *,
    marked: int | None = None,
    error_column: int | None = None,
) -> str:
    """A table in a sideways-scrolling box; row ``marked`` highlighted, every cell escaped."""
    out = ['<div class="scroll"><table><tr>']
    out += [f"<th>{html.escape(h)}</th>" for h in headers]
    out.append("</tr>")
    for n, row in enumerate(body):
        out.append('<tr class="best">' if n == marked else "<tr>")
        for i, value in enumerate(row):
            attr = ' class="error"' if i == error_column else ""
            out.append(f"<td{attr}>{html.escape(str(value))}</td>")
        out.append("</tr>")
    out.append("</table></div>")
    return "".join(out)


def fmt(value: Any, kind: str = "num") -> str:
    """A metric for people: ratios to 2 places, fractions as percentages, dollars whole."""
    if value is None or value == "":
        return "n/a"
    number = float(value)
    if kind == "pct":
        return f"{number:+.2%}"
    if kind == "usd":
        return f"${number:,.0f}"
    if kind == "int":
        return str(int(number))
    return f"{number:.2f}"


METRIC_KINDS = {
    "sharpe": "num",
    "sortino": "num",
    "cagr": "pct",
    "max_drawdown": "pct",
    "trades": "int",
    "exposure": "pct",
    "fees": "usd",
    "total_return": "pct",
}


def metric_cells(metrics: dict[str, Any]) -> list[str]:
    return [fmt(metrics.get(m), METRIC_KINDS[m]) for m in METRICS]


def sweep_report(
    *,
    title: str,
    summary: Sequence[str],
    keys: Sequence[str],
    rows: Sequence[Row],
    best: Row | None,
    objective: str,
    heatmap: bytes,
) -> str:
    """The sweep's page: what ran, the best combination, the heatmap, every row."""
    trials = any(r.trial is not None for r in rows)
    headers = [*(["trial"] if trials else []), *keys, *METRICS, "error"]
    body = [
        [
            *([str(r.trial)] if trials else []),
            *(cell(r.combo.get(k)) for k in keys),
            *metric_cells(r.outcome.metrics if r.outcome.error is None else {}),
            r.outcome.error or "",
        ]
        for r in rows
    ]
    marked = next((i for i, r in enumerate(rows) if r is best), None)
    if best is None:
        best_html = f"<p>No combination gave a {html.escape(objective)}.</p>"
    else:
        best_html = table(
            ["setting", "value"], [[k, cell(best.combo.get(k))] for k in keys]
        ) + table(list(METRICS), [metric_cells(best.outcome.metrics)])
    parts = [
        "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in summary) + "</ul>",
        f"<h2>Best by {html.escape(objective)}</h2>",
        best_html,
        f"<h2>{html.escape('Sharpe over the grid')}</h2>",
        image(heatmap, "heatmap of the Sharpe ratio over the parameters"),
        "<h2>Every combination</h2>",
        table(headers, body, marked=marked, error_column=len(headers) - 1),
    ]
    return page(title, "".join(parts))
