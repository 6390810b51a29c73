"""The daily digest by e-mail after `run --once`, and the on-demand reports."""

from __future__ import annotations

import datetime as dt
import functools
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio

from actors.market.calendar import ExchangeCalendar
from actors.system.app import Daemon
from actors.system.config import Settings, load_settings
from daemon.clock import SimClock
from daemon.systemd import SystemdNotifier
from tests.actors.notifier import SmtpSink

ASOF = dt.date(2026, 11, 23)
CAL = ExchangeCalendar("XNYS")
NEXT = CAL.next_session(ASOF)


def environ(tmp_path: Path, smtp: SmtpSink) -> dict[str, str]:
    return {
        "TRADINGD_DAEMON__STATE_DIR": str(tmp_path / "state"),
        "TRADINGD_DAEMON__RUN_DIR": str(tmp_path / "run"),
        "TRADINGD_METRICS__PORT": "0",
        "TRADINGD_NOTIFY__SMTP_HOST": "127.0.0.1",
        "TRADINGD_NOTIFY__SMTP_PORT": str(smtp.port),
        "TRADINGD_NOTIFY__SMTP_SECURITY": "none",
        "TRADINGD_NOTIFY__MAIL_FROM": "tradingd@example.org",
        "TRADINGD_NOTIFY__MAIL_TO": "operator@example.org",
    }


def run_sessions(settings: Settings, env: dict[str, str], *sessions: dt.date) -> None:
    """``run --once`` an hour after the open of each session, a fresh daemon each time."""
    for session in sessions:
        clock = SimClock(CAL.session_open(session) + dt.timedelta(hours=1))
        daemon = Daemon(settings, environ=env, clock=clock, notifier=SystemdNotifier(None))
        assert anyio.run(functools.partial(daemon.run, once=True, asof=session)) == 0


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_run_once_mails_a_digest_with_funnel_trades_positions_metrics_and_chart(
    tmp_path: Path, smtp: SmtpSink
) -> None:
    """A cycle a session during market hours: the mailed HTML has every part; the first
    session's says the chart comes with the second, whose mail has it as an inline PNG."""
    env = environ(tmp_path, smtp)
    settings = load_settings(None, env)
    run_sessions(settings, env, ASOF, NEXT)
    assert len(smtp.messages) == 2
    message, second = smtp.messages
    assert str(message["Subject"]).startswith(f"tradingd {ASOF}: completed")
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    body = html.get_content()
    for needle in (
        "rsi_mean_reversion",  # funnel per strategy
        "ml_momentum",
        "Correlation",  # funnel stages
        "Executed",
        "Why no trade",
        "BUY",  # a trade with price and costs
        "Stop",  # positions with stop prices
        "Sharpe",  # performance metrics
        "Open orders",
        "Equity chart from the second session on.",
    ):
        assert needle.lower() in body.lower(), needle
    assert "<style" not in body.lower()
    assert "http://" not in body
    assert "https://" not in body
    assert not [part for part in message.walk() if part.get_content_type() == "image/png"]
    html = second.get_body(preferencelist=("html",))
    assert html is not None
    assert 'src="cid:equity"' in html.get_content()
    images = [part for part in second.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1
    assert images[0]["Content-ID"] == "<equity>"
    assert png_size(images[0].get_content()) == (900, 500)


def test_report_commands_rebuild_a_past_digest(tmp_path: Path, smtp: SmtpSink) -> None:
    """`tradingd report --out` writes the HTML and PNG of a past session; ctl prints text."""
    env = environ(tmp_path, smtp)
    config = tmp_path / "tradingd.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [daemon]
            state_dir = "{tmp_path / "state"}"
            run_dir = "{tmp_path / "run"}"
            [metrics]
            port = 0
            """
        )
    )
    settings = load_settings(None, env)
    run_sessions(settings, env, ASOF, NEXT)

    out = tmp_path / "reports"
    result = subprocess.run(
        [sys.executable, "-m", "actors", "report", "--out", str(out), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    html = (out / f"digest-{NEXT}.html").read_text()  # the last session's
    assert f'src="equity-{NEXT}.png"' in html
    assert png_size((out / f"equity-{NEXT}.png").read_bytes()) == (900, 500)

    daemon_proc = subprocess.Popen(
        [sys.executable, "-m", "actors", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**dict(__import__("os").environ), "TRADINGD_SCHEDULE__RUN_ON_START": "false"},
    )
    try:
        socket = str(tmp_path / "run" / "tradingd.sock")
        ctl = [sys.executable, "-m", "actors.system.ctl", "--socket", socket]
        for _ in range(600):
            if subprocess.run([*ctl, "ping"], capture_output=True, check=False).returncode == 0:
                break
        report = subprocess.run(
            [*ctl, "report", "--date", ASOF.isoformat(), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert report.returncode == 0, report.stderr
        body = json.loads(report.stdout)
        assert "funnel" in body["text"].lower()
        missing = subprocess.run(
            [*ctl, "report", "--date", "2026-11-20"], capture_output=True, text=True, check=False
        )
        assert missing.returncode == 1
        assert "no cycle recorded for 2026-11-20" in missing.stderr
    finally:
        daemon_proc.terminate()
        daemon_proc.wait(timeout=30)
