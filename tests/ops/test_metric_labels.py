"""Metric labels stay bounded: only allowlisted label names, never a symbol or an order id."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing

import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from actors.data_feed.params import DEFAULT_UNIVERSE
from actors.metrics import LABEL_ALLOWLIST, Metrics
from tests.ops.tradingd_harness import REJECTING_VALIDATION, Daemon, running_daemon, workdir

# Shapes of unbounded identifiers: a run or order id carries a date (20261118-...),
# a broker id a long hex tail (sim-179ff7412b2fb98e), a UUID both.
ID_LIKE = re.compile(r"\d{8}|[0-9a-fA-F]{10,}|[0-9a-f]{8}-[0-9a-f]{4}-")
TOKEN_SPLIT = re.compile(r"[\s\-_.:/,;=|]+")
MAX_SERIES_PER_FAMILY = 300


@pytest.fixture(scope="module")
def driven() -> Iterator[tuple[Daemon, list[Sample], set[str]]]:
    """A real daemon after three cycles and an operator pause; its tradingd_ samples and ids."""
    with workdir() as work, running_daemon(work, extra_config=REJECTING_VALIDATION) as daemon:
        daemon.run_cycles()
        assert daemon.ctl("pause-entries").returncode == 0
        samples = [
            sample
            for family in text_string_to_metric_families(daemon.scrape())
            if family.name.startswith("tradingd_")
            for sample in family.samples
        ]
        yield daemon, samples, identifiers(daemon)


def identifiers(daemon: Daemon) -> set[str]:
    """Order, broker-order and run ids the daemon actually created."""
    with closing(sqlite3.connect(daemon.workdir / "state" / "tradingd.db")) as db:
        ids = {
            str(value)
            for row in db.execute("SELECT client_order_id, broker_order_id FROM sim_orders")
            for value in row
            if value
        }
        ids |= {str(row[0]) for row in db.execute("SELECT run_id FROM cycles")}
    assert ids, "the cycles placed no orders: the id check would prove nothing"
    return ids


def test_declared_label_names_are_allowlisted() -> None:
    """Every metric registered by daemon.metrics declares only allowlisted label names."""
    metrics = [m for m in vars(Metrics()).values() if isinstance(m, MetricWrapperBase)]
    assert len(metrics) > 20
    for metric in metrics:
        names = set(metric._labelnames)
        assert names <= LABEL_ALLOWLIST, f"{metric}: {sorted(names - LABEL_ALLOWLIST)}"


def test_scraped_label_names_are_allowlisted(driven: tuple[Daemon, list[Sample], set[str]]) -> None:
    """Every label on every tradingd_ series of a real scrape is in LABEL_ALLOWLIST."""
    _, samples, _ = driven
    seen = {name for sample in samples for name in sample.labels}
    # The scrape must exercise the labelled families, or the check is vacuous.
    assert seen >= {"actor", "outcome", "status", "strategy", "stage", "reason", "switch", "regime"}
    for sample in samples:
        extra = set(sample.labels) - LABEL_ALLOWLIST
        assert extra == set(), f"{sample.name}{sample.labels}: {sorted(extra)}"


def test_no_label_value_is_a_symbol_or_an_id(driven: tuple[Daemon, list[Sample], set[str]]) -> None:
    """No label value is a universe symbol, an order/run id, or shaped like one."""
    _, samples, ids = driven
    symbols = set(DEFAULT_UNIVERSE)
    for sample in samples:
        for name, value in sample.labels.items():
            where = f"{sample.name}{{{name}={value!r}}}"
            assert value not in symbols, f"symbol in {where}"
            assert not set(TOKEN_SPLIT.split(value)) & symbols, f"symbol in {where}"
            assert not any(i in value for i in ids), f"id in {where}"
            assert not ID_LIKE.search(value), f"id-shaped value in {where}"


def test_series_per_family_stay_bounded(driven: tuple[Daemon, list[Sample], set[str]]) -> None:
    """No metric family grows beyond a small, fixed number of series."""
    _, samples, _ = driven
    per_family = Counter(
        re.sub(r"_(total|created|bucket|sum|count)$", "", sample.name) for sample in samples
    )
    assert per_family
    worst = per_family.most_common(1)[0]
    assert worst[1] <= MAX_SERIES_PER_FAMILY, worst
