"""systemd/tradingd.service: systemd's own verifier and security scorer, and the directives."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from actors.system.config import EX_CONFIG, SECRET_ENV, DaemonSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "tradingd.service"
INSTALLED_EXEC = "/opt/tradingd/venv/bin/tradingd"
INSTALLED_CREDENTIALS = "/etc/tradingd/credentials/"
MAX_EXPOSURE = 2.0


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> directive -> every value in order (systemd allows repeated keys)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"continuation lines are not used here: {raw!r}"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        reason = "systemd-analyze is not installed (Debian package systemd)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def verifiable_copy(directory: Path) -> Path:
    """The unit with ExecStart and the credential paths pointing at files that exist here."""
    console_script = Path(sys.executable).with_name("tradingd")
    assert os.access(console_script, os.X_OK), console_script
    credentials = directory / "credentials"
    credentials.mkdir()
    for name in SECRET_ENV:
        (credentials / name).write_text("", encoding="utf-8")
    original = UNIT.read_text(encoding="utf-8")
    copy = original.replace(INSTALLED_EXEC, str(console_script)).replace(
        INSTALLED_CREDENTIALS, f"{credentials}/"
    )
    # Only those paths differ: every changed line maps back to the original.
    old_lines, new_lines = original.splitlines(), copy.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert len(changed) == 1 + len(SECRET_ENV)
    for old, new in changed:
        assert old.startswith(("ExecStart=", "LoadCredential=")), old
        restored = new.replace(str(console_script), INSTALLED_EXEC).replace(
            f"{credentials}/", INSTALLED_CREDENTIALS
        )
        assert restored == old
    path = directory / "tradingd.service"
    path.write_text(copy, encoding="utf-8")
    return path


def analyze(systemd_analyze: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_verify_is_clean(systemd_analyze: str, tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit with nothing at all on stderr."""
    result = analyze(systemd_analyze, "verify", str(verifiable_copy(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_verify_catches_unsupported_directives(systemd_analyze: str, tmp_path: Path) -> None:
    """The stderr check is what catches Type=notify-reload, which exits 0 on systemd 252."""
    path = verifiable_copy(tmp_path)
    text = path.read_text(encoding="utf-8").replace("Type=notify\n", "Type=notify-reload\n")
    path.write_text(text, encoding="utf-8")
    result = analyze(systemd_analyze, "verify", str(path))
    if "notify-reload" not in result.stderr:
        pytest.skip("this systemd knows Type=notify-reload (>= 253)")
    assert result.returncode == 0  # the reason stderr must be checked


def test_verify_of_the_original_only_misses_the_installed_binary(systemd_analyze: str) -> None:
    """Unverified as shipped, the unit's only complaint is the not-yet-installed ExecStart."""
    result = analyze(systemd_analyze, "verify", str(UNIT))
    for line in result.stderr.splitlines():
        assert INSTALLED_EXEC in line, line


def test_security_exposure_at_most_two(systemd_analyze: str) -> None:
    """systemd-analyze security --offline=true scores the unit 2.0 or better."""
    result = analyze(systemd_analyze, "security", "--offline=true", str(UNIT))
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout[-2000:]
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


EXPECTED_SERVICE = {
    "Type": "notify",
    "NotifyAccess": "main",
    "ExecStart": f"{INSTALLED_EXEC} run",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "WatchdogSec": "60",
    "Restart": "on-failure",
    "RestartSec": "5",
    "RestartPreventExitStatus": "78",
    "TimeoutStartSec": "60",
    "TimeoutStopSec": "20",
    "KillMode": "mixed",
    "User": "tradingd",
    "Group": "tradingd",
    "StateDirectory": "tradingd",
    "StateDirectoryMode": "0700",
    "RuntimeDirectory": "tradingd",
    "RuntimeDirectoryMode": "0750",
    "UMask": "0077",
    "MemoryMax": "1G",
    "TasksMax": "256",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "DevicePolicy": "closed",
    "NoNewPrivileges": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "ProcSubset": "pid",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallErrorNumber": "EPERM",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RemoveIPC": "yes",
    "MemoryDenyWriteExecute": "no",
}


def test_service_has_every_required_directive(unit: dict[str, dict[str, list[str]]]) -> None:
    """Each single-valued [Service] directive the deployment relies on has its value."""
    service = unit["Service"]
    for key, value in EXPECTED_SERVICE.items():
        assert service.get(key) == [value], (key, service.get(key))
    assert "Environment" in service
    assert "TRADINGD_CONFIG=/etc/tradingd/tradingd.toml" in service["Environment"]


def test_unit_and_install_sections(unit: dict[str, dict[str, list[str]]]) -> None:
    """Start limits live in [Unit]; the unit is enabled into multi-user.target."""
    assert unit["Unit"]["StartLimitIntervalSec"] == ["600"]
    assert unit["Unit"]["StartLimitBurst"] == ["5"]
    assert "network-online.target" in unit["Unit"]["After"][0].split()
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "StartLimitIntervalSec" not in unit["Service"]


def test_system_call_filter(unit: dict[str, dict[str, list[str]]]) -> None:
    """An allow list of @system-service minus @privileged and @resources (@chown back)."""
    assert unit["Service"]["SystemCallFilter"] == [
        "@system-service",
        "~@privileged @resources",
        "@chown",
    ]


def test_credentials_match_the_daemon(unit: dict[str, dict[str, list[str]]]) -> None:
    """Every secret the daemon reads is loaded from /etc/tradingd/credentials with a fallback."""
    service = unit["Service"]
    loaded = dict(entry.split(":", 1) for entry in service["LoadCredential"])
    assert loaded == {name: f"{INSTALLED_CREDENTIALS}{name}" for name in SECRET_ENV}
    fallback = dict(entry.split(":", 1) for entry in service["SetCredential"])
    assert fallback == dict.fromkeys(SECRET_ENV, "\\n")


def test_fallback_and_empty_credentials_are_unset(tmp_path: Path) -> None:
    """The daemon reads an empty file and the "\\n" fallback as no secret at all."""
    (tmp_path / "alpaca_api_key").write_text("", encoding="utf-8")
    (tmp_path / "alpaca_secret_key").write_text("\n", encoding="utf-8")
    (tmp_path / "smtp_password").write_text("hunter2\n", encoding="utf-8")
    settings = load_settings(None, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert settings.secrets.alpaca_api_key is None
    assert settings.secrets.alpaca_secret_key is None
    assert settings.secrets.alphavantage_api_key is None
    assert settings.secrets.smtp_password is not None


def test_exec_start_is_the_interpreter_not_a_shell(unit: dict[str, dict[str, list[str]]]) -> None:
    """With NotifyAccess=main the main process must be the venv's Python console script."""
    (exec_start,) = unit["Service"]["ExecStart"]
    program = exec_start.split()[0]
    assert program.endswith("/venv/bin/tradingd")
    assert not any(shell in exec_start for shell in ("/bin/sh", "bash", "&&", ";"))


def test_stop_timeout_covers_the_daemon_shutdown(unit: dict[str, dict[str, list[str]]]) -> None:
    """TimeoutStopSec leaves the daemon's own shutdown budget (and 10 s) room before SIGKILL."""
    stop = float(unit["Service"]["TimeoutStopSec"][0])
    assert stop >= 10 + 2
    assert stop > DaemonSettings().shutdown_timeout_s


def test_restart_prevent_is_the_config_exit_code(unit: dict[str, dict[str, list[str]]]) -> None:
    """A configuration error (EX_CONFIG) is not restarted: a restart cannot fix it."""
    assert unit["Service"]["RestartPreventExitStatus"] == [str(EX_CONFIG)]


def test_no_network_lockdown_or_writable_extras(unit: dict[str, dict[str, list[str]]]) -> None:
    """It needs the internet and writes only its state and runtime directories."""
    service = unit["Service"]
    for key in ("IPAddressDeny", "PrivateNetwork", "ReadWritePaths", "LogsDirectory"):
        assert key not in service, key
    assert "DynamicUser" not in service
