"""configure_logging output, secret redaction and the per-run EventLog."""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from structlog.testing import capture_logs

from actors.events import EventType
from daemon.logging import REDACTED, EventLog, RedactSecrets, configure_logging, register_secret

FAKE_SECRET = "AKFAKESECRET123"
LATE_SECRET = "LATEFAKESECRET456"
NAMED_VALUE = "plain-value-under-api-key"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Leave structlog's global configuration as other tests expect it."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_line_has_timestamp_level_event_and_bound_fields() -> None:
    """Each JSON line carries a UTC ISO timestamp, level, event and the bound fields."""
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    structlog.get_logger().bind(actor="engine", run_id="run-1").info("cycle_started", symbols=3)
    [line] = _json_lines(out)
    assert line["timestamp"].endswith(("Z", "+00:00"))
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() == timedelta(0)
    assert line["level"] == "info"
    assert line["event"] == "cycle_started"
    assert (line["actor"], line["run_id"], line["symbols"]) == ("engine", "run-1", 3)


def test_contextvars_are_merged() -> None:
    """Fields bound with structlog.contextvars appear on every line."""
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    structlog.contextvars.bind_contextvars(run_id="run-ctx")
    structlog.get_logger().info("hello")
    assert _json_lines(out)[0]["run_id"] == "run-ctx"


def test_level_filters_lower_levels() -> None:
    """Events below the configured level are dropped."""
    out = io.StringIO()
    configure_logging(level="warning", json=True, stream=out)
    log = structlog.get_logger()
    log.info("quiet")
    log.warning("loud")
    assert [line["event"] for line in _json_lines(out)] == ["loud"]


def test_unknown_level_is_rejected() -> None:
    """An unknown level name raises ValueError naming it."""
    with pytest.raises(ValueError, match="verbose"):
        configure_logging(level="verbose", stream=io.StringIO())


def test_non_tty_stream_defaults_to_json() -> None:
    """json=None renders JSON when the stream is not a terminal."""
    out = io.StringIO()
    configure_logging(stream=out)
    structlog.get_logger().info("auto")
    assert _json_lines(out)[0]["event"] == "auto"


def test_tty_stream_defaults_to_console() -> None:
    """json=None renders console text when the stream is a terminal."""
    out = _FakeTTY()
    configure_logging(stream=out)
    structlog.get_logger().info("auto", actor="engine")
    text = out.getvalue()
    assert "auto" in text
    assert "actor=engine" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_console_renderer_when_json_false() -> None:
    """json=False renders key=value console lines without colour codes."""
    out = io.StringIO()
    configure_logging(json=False, stream=out)
    structlog.get_logger().warning("order_rejected", symbol="AAPL")
    text = out.getvalue()
    assert "order_rejected" in text
    assert "symbol=AAPL" in text
    assert "warning" in text
    assert "\x1b[" not in text


def test_secret_never_reaches_json_output() -> None:
    """A secret is redacted as a field, in a message, nested, in exceptions and by key name."""
    out = io.StringIO()
    configure_logging(json=True, stream=out, secrets=[FAKE_SECRET])
    log = structlog.get_logger()
    log.info("field", key_id=FAKE_SECRET)
    log.info(f"connecting with {FAKE_SECRET} to paper")
    log.info("nested", request={"headers": {"x": [f"Bearer {FAKE_SECRET}"]}}, ids=(FAKE_SECRET,))
    try:
        raise RuntimeError(f"auth failed for {FAKE_SECRET}")
    except RuntimeError:
        log.exception("broker_error")
    log.info("by_key", api_key=NAMED_VALUE, Authorization="Basic abc", password=None)
    text = out.getvalue()
    assert FAKE_SECRET not in text
    assert NAMED_VALUE not in text
    lines = _json_lines(out)
    assert lines[0]["key_id"] == REDACTED
    assert lines[1]["event"] == f"connecting with {REDACTED} to paper"
    assert lines[2]["request"] == {"headers": {"x": [f"Bearer {REDACTED}"]}}
    assert lines[2]["ids"] == [REDACTED]
    assert "RuntimeError: auth failed for ***" in lines[3]["exception"]
    assert lines[4]["api_key"] == REDACTED
    assert lines[4]["Authorization"] == REDACTED
    assert lines[4]["password"] == REDACTED


def test_exception_object_as_field_is_redacted() -> None:
    """A non-string value whose text contains a secret is replaced by its redacted text."""
    out = io.StringIO()
    configure_logging(json=True, stream=out, secrets=[FAKE_SECRET])
    structlog.get_logger().error("failed", error=ValueError(f"bad key {FAKE_SECRET}"))
    assert _json_lines(out)[0]["error"] == f"bad key {REDACTED}"


def test_secret_registered_after_configure_is_redacted() -> None:
    """register_secret() after configure_logging() applies to later lines."""
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    log = structlog.get_logger()
    register_secret(LATE_SECRET)
    log.info("late", value=f"x{LATE_SECRET}y")
    assert _json_lines(out)[0]["value"] == f"x{REDACTED}y"


def test_console_output_redacts_exception_text() -> None:
    """The console renderer also only sees redacted exception text."""
    out = io.StringIO()
    configure_logging(json=False, stream=out, secrets=[FAKE_SECRET])
    try:
        raise RuntimeError(f"auth failed for {FAKE_SECRET}")
    except RuntimeError:
        structlog.get_logger().exception("broker_error")
    text = out.getvalue()
    assert "auth failed for ***" in text
    assert FAKE_SECRET not in text


def test_redactor_masks_longest_secret_and_ignores_short_ones() -> None:
    """Overlapping secrets are masked whole; values shorter than four characters are ignored."""
    redactor = RedactSecrets(["abcd", "abcdefgh", "xyz"])
    event = redactor(None, "info", {"event": "abcdefgh abcd xyz", "n": 5, "ok": True})
    assert event == {"event": "*** *** xyz", "n": 5, "ok": True}


def test_redactor_masks_secret_named_keys_case_insensitively() -> None:
    """Keys containing password/secret/api_key/token/authorization are masked at any depth."""
    redactor = RedactSecrets()
    event = redactor(
        None,
        "info",
        {"event": "e", "cfg": {"ALPACA_SECRET_KEY": "v", "RefreshToken": 1, "user": "bob"}},
    )
    assert event["cfg"] == {"ALPACA_SECRET_KEY": REDACTED, "RefreshToken": REDACTED, "user": "bob"}


def test_capture_logs_sees_bound_fields() -> None:
    """Code logging through structlog can be asserted on as event dicts."""
    with capture_logs() as logs:
        structlog.get_logger().bind(actor="risk").warning("risk_limit_hit", limit="gross")
    assert logs == [
        {"actor": "risk", "limit": "gross", "event": "risk_limit_hit", "log_level": "warning"}
    ]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_event_log_appends_parseable_lines(tmp_path: Path) -> None:
    """write() appends one JSON object per call with ts, run_id, event_type and fields."""
    log = EventLog(tmp_path / "events")
    at = datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    await log.write("20240301-abc", EventType.CYCLE_STARTED, at, symbols=3)
    await log.write("20240301-abc", EventType.ORDER_SUBMITTED, at, order={"qty": 10})
    lines = _lines(tmp_path / "events" / "events_20240301-abc.jsonl")
    assert lines == [
        {
            "ts": "2024-03-01T14:30:00+00:00",
            "run_id": "20240301-abc",
            "event_type": "CYCLE_STARTED",
            "symbols": 3,
        },
        {
            "ts": "2024-03-01T14:30:00+00:00",
            "run_id": "20240301-abc",
            "event_type": "ORDER_SUBMITTED",
            "order": {"qty": 10},
        },
    ]


async def test_event_log_write_many_appends_what_write_would(tmp_path: Path) -> None:
    """write_many() appends the lines write() would, in the order given."""
    at = datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    one, many = EventLog(tmp_path / "one"), EventLog(tmp_path / "many")
    entries = [
        (EventType.SIGNAL_GENERATED, at, {"symbol": "AAPL"}),
        (EventType.SIGNAL_REJECTED, at + timedelta(seconds=1), {"symbol": "MSFT", "why": "x"}),
    ]
    for event, when, fields in entries:
        await one.write("r1", event, when, **fields)
    await many.write_many("r1", entries)
    await many.write_many("r2", [])
    assert many.path_for("r1").read_bytes() == one.path_for("r1").read_bytes()
    assert not many.path_for("r2").exists()


async def test_event_log_write_many_checks_every_entry_before_writing(tmp_path: Path) -> None:
    """One bad entry (a naive time) refuses the whole batch: nothing is written."""
    log = EventLog(tmp_path)
    no_fields: dict[str, Any] = {}
    good = (EventType.ERROR, datetime.now(UTC), no_fields)
    with pytest.raises(ValueError, match="timezone-aware"):
        await log.write_many("r1", [good, (EventType.ERROR, datetime(2024, 1, 1), no_fields)])
    assert not log.path_for("r1").exists()


async def test_event_log_permissions(tmp_path: Path) -> None:
    """The event directory is 0o700 and event files are 0o600."""
    log = EventLog(tmp_path / "events")
    await log.write("r1", EventType.ERROR, datetime.now(UTC))
    assert stat.S_IMODE(log.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.path_for("r1").stat().st_mode) == 0o600


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "", "..", ".", "run id", "r\x00", "r1\n"])
async def test_event_log_rejects_bad_run_id(tmp_path: Path, run_id: str) -> None:
    """A run_id outside [A-Za-z0-9_.-] raises ValueError naming it and writes nothing."""
    log = EventLog(tmp_path / "events")
    with pytest.raises(ValueError, match="invalid run_id"):
        await log.write(run_id, EventType.ERROR, datetime.now(UTC))
    assert list(tmp_path.rglob("*.jsonl")) == []


async def test_event_log_rejects_naive_time_and_reserved_fields(tmp_path: Path) -> None:
    """A naive timestamp or a field named ts/run_id/event_type raises ValueError."""
    log = EventLog(tmp_path)
    with pytest.raises(ValueError, match="timezone-aware"):
        await log.write("r1", EventType.ERROR, datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="event_type"):
        await log.write("r1", EventType.ERROR, datetime.now(UTC), event_type="x")


async def test_event_log_redacts_secrets(tmp_path: Path) -> None:
    """Event fields pass through the same secret redaction as log lines."""
    register_secret(FAKE_SECRET)
    log = EventLog(tmp_path)
    await log.write(
        "r1",
        EventType.ORDER_REJECTED,
        datetime.now(UTC),
        reason=f"401 for key {FAKE_SECRET}",
        request={"api_key": NAMED_VALUE},
    )
    text = log.path_for("r1").read_text()
    assert FAKE_SECRET not in text
    assert NAMED_VALUE not in text
    [line] = _lines(log.path_for("r1"))
    assert line["reason"] == f"401 for key {REDACTED}"
    assert line["request"] == {"api_key": REDACTED}


async def test_event_log_concurrent_writes_stay_whole(tmp_path: Path) -> None:
    """Many concurrent writes produce exactly one intact line each."""
    log = EventLog(tmp_path)
    at = datetime.now(UTC)

    async def write(seq: int) -> None:
        await log.write("r1", EventType.SIGNAL_GENERATED, at, seq=seq)

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(write, i)
    assert sorted(line["seq"] for line in _lines(log.path_for("r1"))) == list(range(50))


async def test_event_log_prune_removes_only_old_event_files(tmp_path: Path) -> None:
    """prune() deletes event files older than the cutoff and leaves others alone."""
    log = EventLog(tmp_path)
    now = datetime(2024, 6, 1, tzinfo=UTC)
    for run_id in ("old", "new"):
        await log.write(run_id, EventType.CYCLE_COMPLETED, now)
    other = tmp_path / "notes.txt"
    other.write_text("keep")
    old_mtime = (now - timedelta(days=40)).timestamp()
    os.utime(log.path_for("old"), (old_mtime, old_mtime))
    os.utime(other, (old_mtime, old_mtime))
    new_mtime = (now - timedelta(days=1)).timestamp()
    os.utime(log.path_for("new"), (new_mtime, new_mtime))
    assert log.prune(now - timedelta(days=30)) == 1
    assert not log.path_for("old").exists()
    assert log.path_for("new").exists()
    assert other.exists()


def test_event_types_match_reference_names() -> None:
    """EventType values are the reference system's upper-case names."""
    assert {e.value for e in EventType} >= {
        "SIGNAL_GENERATED",
        "ORDER_FILLED",
        "KILL_SWITCH_TRIGGERED",
        "DATA_REJECTED",
    }
    assert all(e.value == e.name for e in EventType)


async def test_event_write_failure_is_logged_not_raised(tmp_path: Path) -> None:
    """A write the disk refuses is logged and counted; the caller carries on."""
    log = EventLog(tmp_path / "events")
    target = log.path_for("run1")
    target.mkdir()  # a directory where the file should be: the append fails with OSError
    with capture_logs() as logs:
        await log.write("run1", EventType.CYCLE_COMPLETED, datetime.now(UTC), status="ok")
    assert log.write_failures == 1
    assert [e["event"] for e in logs] == ["event_file_write_failed"]
