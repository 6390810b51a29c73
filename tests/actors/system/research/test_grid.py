"""``--param`` parsing: lists and ranges, ints and floats, keys and values checked by the model."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import pytest

from actors.system.config import (
    SecretSettings,
    Settings,
    environment_secrets,
    load_settings,
    with_values,
)
from actors.system.research.grid import (
    MAX_COMBINATIONS,
    Span,
    cell,
    combination_id,
    combinations,
    parse_param,
    parse_params,
)
from actors.system.research.search import distributions
from actors.system.research.sweep import Job, Plan, spec_for
from daemon.errors import ConfigError

FAST = "strategies.ma_crossover.fast"
ENTRY = "strategies.rsi_mean_reversion.rsi_entry"


def test_a_list_keeps_integers_as_integers() -> None:
    """``fast=10,20,30`` is three ints, in the order given."""
    p = parse_param(f"{FAST}=10,20,30")
    assert p.values == (10, 20, 30)
    assert all(type(v) is int for v in p.values)
    assert p.span is None


def test_a_range_includes_its_stop() -> None:
    """``10:50:10`` is 10..50 inclusive and remembers its span."""
    p = parse_param(f"{FAST}=10:50:10")
    assert p.values == (10, 20, 30, 40, 50)
    assert p.span == Span(10, 50, 10)


def test_a_range_stops_at_the_last_step_below_stop() -> None:
    """``10:45:10`` ends at 40: the stop is included only when it falls on the step."""
    assert parse_param(f"{FAST}=10:45:10").values == (10, 20, 30, 40)


def test_float_ranges_are_exact_decimals() -> None:
    """``0.1:0.3:0.1`` is 0.1, 0.2, 0.3 (not 0.30000000000000004)."""
    p = parse_param("strategies.momentum.threshold=0.1:0.3:0.1")
    assert p.values == (0.1, 0.2, 0.3)
    assert p.span == Span(0.1, 0.3, 0.1)


def test_a_float_setting_takes_integers_as_floats() -> None:
    """An RSI entry of ``30`` is the float 30.0 (the setting's type), ``35.5`` stays."""
    assert parse_param(f"{ENTRY}=30,35.5").values == (30.0, 35.5)
    assert parse_param(f"{ENTRY}=30:40:5").span == Span(30.0, 40.0, 5.0)


def test_booleans_and_words_are_values_too() -> None:
    """``true,false`` for a switch, names for a choice."""
    assert parse_param("strategies.momentum.enabled=true,false").values == (True, False)
    assert parse_param("data.provider=synthetic,csv").values == ("synthetic", "csv")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (f"{FAST}x=1,2", "no setting 'fastx'"),
        ("strategies.ma_crossover=1", "is a section"),
        ("strategies.nope.fast=1", "no setting 'nope'"),
        ("secrets.alpaca_api_key=x", "no setting 'secrets'"),
        (f"{FAST}=10.5", "10.5"),
        (f"{FAST}=1:5:0.5", "integer steps"),
        (f"{FAST}=5:1:1", "stop is below start"),
        (f"{FAST}=1:5:0", "step must be positive"),
        (f"{FAST}=a:b:c", "expected numbers"),
        (f"{FAST}=10,,20", "empty value"),
        (f"{FAST}=10,10", "twice"),
        ("data.provider=synthetic,ftp", "'ftp'"),
        (f"{ENTRY}=nan", "finite"),
        ("fast", "KEY=VALUES"),
        (f"{FAST}=", "KEY=VALUES"),
    ],
)
def test_a_bad_param_names_the_key_and_the_value(text: str, named: str) -> None:
    """Every refusal is a ConfigError that says what is wrong with what."""
    with pytest.raises(ConfigError) as err:
        parse_param(text)
    assert named in str(err.value)
    assert err.value.key.startswith("--param")


def test_the_grid_runs_the_last_parameter_fastest() -> None:
    """Grid order: the first --param slowest, as nested loops in the order given."""
    params = parse_params([f"{FAST}=5,10", "strategies.ma_crossover.slow=20,40"])
    assert [tuple(c.values()) for c in combinations(params)] == [
        (5, 20), (5, 40), (10, 20), (10, 40),
    ]  # fmt: skip


def test_a_key_given_twice_or_a_huge_grid_is_refused() -> None:
    """One --param per key; more than MAX_COMBINATIONS combinations is a typo."""
    with pytest.raises(ConfigError, match="given twice"):
        parse_params([f"{FAST}=5", f"{FAST}=6"])
    with pytest.raises(ConfigError, match="combinations"):
        parse_params([f"{FAST}=2:1000:1", "strategies.ma_crossover.slow=3:1000:1"])
    assert MAX_COMBINATIONS == 10_000
    with pytest.raises(ConfigError, match="at least one"):
        parse_params([])


def test_a_combination_id_depends_on_the_values_only() -> None:
    """The same values give the same run directory, whatever the order of the keys."""
    a = combination_id({FAST: 5, "strategies.ma_crossover.slow": 20})
    b = combination_id({"strategies.ma_crossover.slow": 20, FAST: 5})
    assert a == b
    assert a != combination_id({FAST: 5, "strategies.ma_crossover.slow": 40})
    assert len(a) == 12


def test_a_combination_goes_through_the_model_like_a_config_file() -> None:
    """Bounds and cross-checks apply per combination, naming the key and the value."""
    settings = Settings()
    assert with_values(settings, {FAST: 7}).strategies.ma_crossover.fast == 7
    with pytest.raises(ConfigError, match=r"greater than or equal to 2.*given 1"):
        with_values(settings, {FAST: 1})
    with pytest.raises(ConfigError, match=r"fast: must be less than .*slow \(150 >= 100\)"):
        with_values(settings, {FAST: 150})
    with pytest.raises(ConfigError, match="unknown key"):
        with_values(settings, {"strategies.ma_crossover.nope": 1})


def test_cells_are_exact() -> None:
    """results.csv writes floats by repr and booleans in lower case."""
    assert [cell(0.1 + 0.2), cell(True), cell(10), cell(None)] == [
        "0.30000000000000004", "true", "10", "",
    ]  # fmt: skip


def test_the_search_space_follows_the_params() -> None:
    """Lists are categorical; int and float ranges keep their step."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params = parse_params(
        [f"{FAST}=5:15:5", f"{ENTRY}=25:35:2.5", "strategies.ma_crossover.slow=20,40"]
    )
    space = distributions(params)
    assert space[FAST] == IntDistribution(5, 15, step=5)
    assert space[ENTRY] == FloatDistribution(25.0, 35.0, step=2.5)
    assert space["strategies.ma_crossover.slow"] == CategoricalDistribution([20, 40])


def test_a_task_carries_the_combination_but_no_secret(tmp_path: Path) -> None:
    """The settings sent to a worker have the combination applied and the secrets cleared."""
    settings = load_settings(None, {"ALPACA_API_KEY": "PKTEST", "ALPACA_SECRET_KEY": "s3cret"})
    assert settings.secrets.alpaca_api_key is not None
    plan = Plan(settings, dt.date(2025, 1, 2), dt.date(2025, 3, 31), [], tmp_path)
    job = Job({FAST: 7}, plan.start, plan.end, tmp_path / "runs" / "x")
    spec = spec_for(plan, job, "session")
    assert spec.settings.strategies.ma_crossover.fast == 7
    assert spec.settings.secrets == SecretSettings()
    assert "s3cret" not in pickle.dumps(spec).decode("latin-1")
    worker = environment_secrets({"ALPACA_API_KEY": "PKWORKER"})
    assert worker.alpaca_api_key is not None
    assert worker.alpaca_api_key.get_secret_value() == "PKWORKER"
