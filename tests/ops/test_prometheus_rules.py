"""ops/prometheus: promtool accepts config and rules; rule unit tests pass and cover every alert."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.ops.tradingd_harness import (
    REPO,
    exported_series_names,
    referenced_metrics,
    require_tool,
)

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML belongs in the [test] extra
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("PyYAML not installed (pip install pyyaml)", allow_module_level=True)

PROM_DIR = REPO / "ops" / "prometheus"
CONFIG = PROM_DIR / "prometheus.yml"
RULES = PROM_DIR / "alerts.yml"
RULE_TESTS = PROM_DIR / "alerts_test.yml"

EXPECTED_ALERTS = {
    "TradingdDown",
    "TradingdAbsent",
    "NoSuccessfulCycleOnTradingDay",
    "KillSwitchActive",
    "ReconciliationFailing",
    "ReconciliationStale",
    "ActorCrashLoop",
    "NotificationsFailing",
    "EventLoopLag",
    "WatchdogMissed",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool", "prometheus")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def test_promtool_check_config(promtool: str) -> None:
    """`promtool check config` accepts prometheus.yml (and the rule file it loads)."""
    result = run(promtool, "check", "config", str(CONFIG.relative_to(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules(promtool: str) -> None:
    """`promtool check rules` accepts alerts.yml."""
    result = run(promtool, "check", "rules", str(RULES.relative_to(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass(promtool: str) -> None:
    """`promtool test rules` passes alerts_test.yml."""
    result = run(promtool, "test", "rules", str(RULE_TESTS.relative_to(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_targets_the_daemon() -> None:
    """prometheus.yml scrapes job tradingd on 127.0.0.1:9464 every 15s and loads alerts.yml."""
    config = load(CONFIG)
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["tradingd"]
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "15s"
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == ["127.0.0.1:9464"]


def test_every_alert_has_severity_for_and_annotations() -> None:
    """Each alert has `for:`, a severity label and summary/description annotations."""
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= EXPECTED_ALERTS
    assert len({r["alert"] for r in rules}) == len(rules), "duplicate alert names"
    for rule in rules:
        assert rule.get("for"), f"{rule['alert']}: no for:"
        assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description"} <= set(rule.get("annotations", {})), rule["alert"]


def test_every_alert_has_firing_and_quiet_test_cases() -> None:
    """alerts_test.yml has, for every alert, a case where it fires and one where it does not."""
    firing: set[str] = set()
    quiet: set[str] = set()
    tests = load(RULE_TESTS)
    assert tests["rule_files"] == ["alerts.yml"]
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - firing == set(), "alerts without a firing case"
    assert names - quiet == set(), "alerts without a not-firing case"
    assert (firing | quiet) - names == set(), "test cases for alerts that do not exist"


def test_rules_only_use_metrics_the_daemon_exports() -> None:
    """Every tradingd_* name in alerts.yml exists in daemon.metrics (a typo never fires)."""
    exported = exported_series_names()
    for rule in alert_rules():
        unknown = referenced_metrics(rule["expr"]) - exported
        assert unknown == set(), f"{rule['alert']} uses metrics tradingd does not export"
