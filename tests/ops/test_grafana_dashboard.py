"""ops/grafana/tradingd.json: importable, and every panel query has data in a real Prometheus."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.ops.tradingd_harness import (
    REJECTING_VALIDATION,
    REPO,
    Daemon,
    exported_series_names,
    referenced_metrics,
    require_tool,
    running_daemon,
    stop_process,
    workdir,
)

DASHBOARD = REPO / "ops" / "grafana" / "tradingd.json"
DATASOURCE_UID = "${DS_PROMETHEUS}"

# Grafana's built-in interval variables, as Grafana would expand them for a short range.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}
VARIABLE = re.compile(r"\$\{?(\w+)\}?")

PROMETHEUS_START_S = 30.0
DATA_WAIT_S = 40.0


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Panels, including those nested in collapsed rows; rows themselves are left out."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title / refId, PromQL with Grafana's variables substituted) for every target."""
    out = []
    for panel in all_panels(dashboard):
        for target in panel["targets"]:
            out.append((f"{panel['title']} / {target['refId']}", expand(target["expr"])))
    return out


def expand(expr: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in GRAFANA_VARIABLES, f"unknown dashboard variable ${name} in {expr!r}"
        return GRAFANA_VARIABLES[name]

    return VARIABLE.sub(sub, expr)


# ---------------------------------------------------------------------- static checks


def test_dashboard_is_valid_json_with_datasource_variable() -> None:
    """The dashboard parses, has schemaVersion ~38 and a DS_PROMETHEUS datasource variable."""
    dashboard = load_dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 39
    assert dashboard["title"]
    assert dashboard["uid"]
    assert dashboard.get("id") is None, "an exported id breaks import into another Grafana"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables["DS_PROMETHEUS"]
    assert ds["type"] == "datasource"
    assert ds["query"] == "prometheus"


def test_every_panel_uses_the_datasource_variable_and_has_queries() -> None:
    """Every panel and target points at ${DS_PROMETHEUS}; every target has a PromQL expr."""
    dashboard = load_dashboard()
    panels = all_panels(dashboard)
    assert len(panels) >= 14
    ids = [p["id"] for p in dashboard["panels"]] + [
        p["id"] for row in dashboard["panels"] for p in row.get("panels", [])
    ]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "duplicate panel titles"
    for panel in panels:
        title = panel["title"]
        assert panel["datasource"]["uid"] == DATASOURCE_UID, title
        assert panel["datasource"]["type"] == "prometheus", title
        assert panel["targets"], f"{title}: no targets"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), title
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{title}: duplicate refIds"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{title}: a target without expr"
            assert target["datasource"]["uid"] == DATASOURCE_UID, title


def test_dashboard_covers_the_required_views() -> None:
    """Every view the runbook names (funnel, rejections, ... regime) has a panel query."""
    exprs = " ".join(expr for _, expr in queries(load_dashboard()))
    for metric in (
        "tradingd_signals",
        "tradingd_data_rejections_total",
        "tradingd_kill_switch_active",
        "tradingd_portfolio_value_dollars",
        "tradingd_daily_pnl_ratio",
        "tradingd_heat_ratio",
        "tradingd_heat_limit_ratio",
        "tradingd_orders_total",
        "tradingd_reconciliation_passed",
        "tradingd_reconciliation_discrepancies",
        "tradingd_cycle_duration_seconds_bucket",
        "tradingd_cycles_total",
        "tradingd_actor_up",
        "tradingd_actor_restarts_total",
        "tradingd_actor_mailbox_depth",
        "tradingd_event_loop_lag_max_seconds",
        "tradingd_data_last_bar_timestamp_seconds",
        "tradingd_regime",
    ):
        assert metric in exprs, f"no panel queries {metric}"
    assert "histogram_quantile(" in exprs


def test_dashboard_only_uses_metrics_the_daemon_exports() -> None:
    """Every tradingd_* name in a panel query exists in daemon.metrics."""
    exported = exported_series_names()
    for where, expr in queries(load_dashboard()):
        assert referenced_metrics(expr) - exported == set(), where


# ---------------------------------------------------------------------- integration


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read().decode())


@contextmanager
def running_prometheus(binary: str, work: Path, target: str) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping ``target`` every second; yields its base URL."""
    config = work / "prometheus.yml"
    config.write_text(
        textwrap.dedent(
            f"""
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: tradingd
                static_configs:
                  - targets: ["{target}"]
            """
        )
    )
    port = free_port()
    log_path = work / "prometheus.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PROMETHEUS_START_S
        while True:
            assert popen.poll() is None, "prometheus exited: " + log_path.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "prometheus not ready: " + log_path.read_text()
            time.sleep(0.2)
        yield base
    finally:
        stop_process(popen)


def wait_target_up(base: str) -> None:
    deadline = time.monotonic() + PROMETHEUS_START_S
    while True:
        targets = get_json(f"{base}/api/v1/targets")["data"]["activeTargets"]
        healths = [t["health"] for t in targets if t["labels"]["job"] == "tradingd"]
        if healths == ["up"]:
            return
        assert time.monotonic() < deadline, f"tradingd target never up: {targets}"
        time.sleep(0.3)


def query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = get_json(url)
    except urllib.error.HTTPError as exc:  # 400 on a PromQL error: report it, no retry
        pytest.fail(f"query rejected: {expr}\n{exc.read().decode()}")
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.mark.slow
def test_every_panel_query_returns_data_from_a_real_prometheus() -> None:
    """A real daemon runs three cycles while a real Prometheus scrapes it; every panel has data."""
    prometheus = require_tool("prometheus", "prometheus")
    panel_queries = queries(load_dashboard())
    with (
        workdir() as work,
        running_daemon(work, extra_config=REJECTING_VALIDATION) as daemon,
        running_prometheus(prometheus, work, f"127.0.0.1:{daemon.metrics_port}") as base,
    ):
        wait_target_up(base)
        drive(daemon)
        empty = wait_for_data(base, panel_queries)
        assert empty == [], "panel queries without data:\n" + "\n".join(empty)


def drive(daemon: Daemon) -> None:
    """Three consecutive sessions, then an operator pause, so every labelled series exists."""
    daemon.run_cycles()
    paused = daemon.ctl("pause-entries")
    assert paused.returncode == 0, paused.stderr


def wait_for_data(base: str, panel_queries: list[tuple[str, str]]) -> list[str]:
    """Poll until every query has a result (rate() needs two scrapes); the ones still empty."""
    pending = list(panel_queries)
    deadline = time.monotonic() + DATA_WAIT_S
    while pending and time.monotonic() < deadline:
        pending = [(where, expr) for where, expr in pending if not query(base, expr)]
        if pending:
            time.sleep(0.5)
    return [f"{where}: {expr}" for where, expr in pending]
