"""ops/install.sh and ops/uninstall.sh, run in a fake root (--root) that leaves the host alone."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from actors.system.config import SECRET_ENV

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "ops" / "install.sh"
UNINSTALL = REPO / "ops" / "uninstall.sh"
UNIT = REPO / "systemd" / "tradingd.service"
EXAMPLE = REPO / "ops" / "tradingd.example.toml"
HOST_COMMANDS = ("apt-get", "groupadd", "useradd", "userdel", "groupdel", "systemctl", "chown")


@pytest.fixture
def fake_path(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose host-changing commands only log that they were called."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    log = tmp_path / "host-commands.log"
    for name in HOST_COMMANDS:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 0\n', encoding="utf-8")
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return env, log


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


def run_script(
    script: Path, env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def install(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_script(
        INSTALL, env, "--root", str(root), "--skip-apt", "--skip-venv", "--no-start", *args
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` with its mode and, for files, its content."""
    tree: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        content = path.read_bytes() if path.is_file() else None
        tree[str(path.relative_to(root))] = (mode(path), content)
    return tree


def test_scripts_parse_and_are_executable() -> None:
    """bash -n accepts both scripts, which are executable and use strict mode."""
    for script in (INSTALL, UNINSTALL):
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
        assert os.access(script, os.X_OK), script
        assert "set -euo pipefail" in script.read_text(encoding="utf-8")


def test_shellcheck_is_clean() -> None:
    """shellcheck finds nothing in either script (skipped where it is not installed)."""
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI") == "true":
            pytest.fail("shellcheck missing: `make test` installs it as root with apt")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        [shellcheck, str(INSTALL), str(UNINSTALL)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_install_lays_out_files_with_their_modes(
    root: Path, fake_path: tuple[dict[str, str], Path]
) -> None:
    """Config 0640, credentials dir 0700 with empty 0600 files, the unit byte-identical."""
    env, log = fake_path
    result = install(root, env)
    config_dir = root / "etc" / "tradingd"
    assert mode(config_dir) == 0o750
    assert mode(config_dir / "tradingd.toml") == 0o640
    credentials = config_dir / "credentials"
    assert mode(credentials) == 0o700
    assert sorted(p.name for p in credentials.iterdir()) == sorted(SECRET_ENV)
    for name in SECRET_ENV:
        assert mode(credentials / name) == 0o600
        assert (credentials / name).stat().st_size == 0
    unit = root / "etc" / "systemd" / "system" / "tradingd.service"
    assert unit.read_bytes() == UNIT.read_bytes()
    assert mode(unit) == 0o644
    assert not (root / "etc" / "systemd" / "system" / "tradingd.service.d").exists()
    assert not (root / "opt").exists()  # --skip-venv
    # Host commands are printed, never run.
    assert not log.exists()
    out = result.stdout
    assert "would run: useradd --system --gid tradingd --home-dir /var/lib/tradingd" in out
    assert "would run: groupadd --system tradingd" in out
    assert "would run: systemctl daemon-reload" in out
    assert f"would run: chown root:tradingd {config_dir}" in out
    assert "enable" not in "".join(line for line in out.splitlines() if "would run" in line)


def test_config_is_the_example_with_the_control_group(
    root: Path, fake_path: tuple[dict[str, str], Path]
) -> None:
    """The installed config is the example plus `[control] group`, and check-config accepts it."""
    env, _ = fake_path
    install(root, env)
    config = root / "etc" / "tradingd" / "tradingd.toml"
    installed = config.read_text(encoding="utf-8").splitlines()
    example = EXAMPLE.read_text(encoding="utf-8").splitlines()
    assert len(installed) == len(example)
    changed = [(a, b) for a, b in zip(example, installed, strict=True) if a != b]
    assert len(changed) == 1
    assert changed[0][0].startswith("# group = ")
    assert tomllib.loads(config.read_text(encoding="utf-8"))["control"]["group"] == "tradingd"
    check = subprocess.run(
        [str(Path(sys.executable).with_name("tradingd")), "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("TRADINGD_")},
    )
    assert check.returncode == 0, check.stderr
    assert '"group": "tradingd"' in check.stdout


def test_second_run_keeps_config_and_credentials(
    root: Path, fake_path: tuple[dict[str, str], Path]
) -> None:
    """A re-run changes nothing when nothing changed, never overwrites config or keys."""
    env, _ = fake_path
    install(root, env)
    before = snapshot(root)
    result = install(root, env)
    assert snapshot(root) == before
    assert "exists; kept as it is" in result.stdout
    assert "is up to date" in result.stdout

    config = root / "etc" / "tradingd" / "tradingd.toml"
    key = root / "etc" / "tradingd" / "credentials" / "alpaca_api_key"
    unit = root / "etc" / "systemd" / "system" / "tradingd.service"
    config.write_text("[data]\nprovider = 'csv'\n", encoding="utf-8")
    key.write_text("PKTEST\n", encoding="utf-8")
    unit.write_text("[Service]\nExecStart=/bin/false\n", encoding="utf-8")
    install(root, env)
    assert config.read_text(encoding="utf-8") == "[data]\nprovider = 'csv'\n"
    assert key.read_text(encoding="utf-8") == "PKTEST\n"
    assert mode(key) == 0o600
    assert unit.read_bytes() == UNIT.read_bytes()  # the unit follows the checkout


def test_non_default_options_go_into_a_drop_in(
    root: Path, tmp_path: Path, fake_path: tuple[dict[str, str], Path]
) -> None:
    """--prefix/--config-dir/--user leave the unit as shipped and add a drop-in that verifies."""
    env, _ = fake_path
    prefix = tmp_path / "prefix"
    (prefix / "venv" / "bin").mkdir(parents=True)
    (prefix / "venv" / "bin" / "tradingd").symlink_to(Path(sys.executable).with_name("tradingd"))
    install(root, env, "--prefix", str(prefix), "--config-dir", "/etc/td", "--user", "tdbot")
    unit_dir = root / "etc" / "systemd" / "system"
    assert (unit_dir / "tradingd.service").read_bytes() == UNIT.read_bytes()
    dropin = (unit_dir / "tradingd.service.d" / "10-install.conf").read_text(encoding="utf-8")
    lines = dropin.splitlines()
    assert lines[1] == "[Service]"
    assert lines[2:] == [
        "ExecStart=",
        f"ExecStart={prefix}/venv/bin/tradingd run",
        "User=tdbot",
        "Group=tdbot",
        "Environment=TRADINGD_CONFIG=/etc/td/tradingd.toml",
        "LoadCredential=",
        *(f"LoadCredential={name}:/etc/td/credentials/{name}" for name in SECRET_ENV),
    ]
    config = root / "etc" / "td" / "tradingd.toml"
    assert tomllib.loads(config.read_text(encoding="utf-8"))["control"]["group"] == "tdbot"
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze is not None:
        result = subprocess.run(
            [systemd_analyze, "verify", str(unit_dir / "tradingd.service")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
    # Back to the defaults: the drop-in goes away.
    install(root, env)
    assert not (unit_dir / "tradingd.service.d" / "10-install.conf").exists()


def test_dry_run_changes_nothing(root: Path, fake_path: tuple[dict[str, str], Path]) -> None:
    """--dry-run prints every step, venv and apt included, and writes nothing."""
    env, log = fake_path
    result = run_script(INSTALL, env, "--root", str(root), "--dry-run")
    assert list(root.iterdir()) == []
    assert not log.exists()
    out = result.stdout
    assert "would run: apt-get update" in out
    assert f"would run: /usr/bin/python3 -m venv {root}/opt/tradingd/venv" in out
    assert "would run: systemctl enable --now tradingd.service" in out
    assert f"would run: install -m 0644 {UNIT}" in out


def test_bad_options_are_refused(root: Path, fake_path: tuple[dict[str, str], Path]) -> None:
    """Unknown options, relative or root paths and odd user names stop the script at once."""
    env, _ = fake_path
    for script in (INSTALL, UNINSTALL):
        for args in (
            ["--bogus"],
            ["--prefix", "relative/dir"],
            ["--prefix", "/"],
            ["--user", "Bad User"],
            ["--root", "/"],
            ["--prefix"],
        ):
            result = run_script(script, env, "--root", str(root), *args, check=False)
            assert result.returncode != 0, (script.name, args)
            assert result.stderr.strip(), (script.name, args)
    assert list(root.iterdir()) == []


def test_help_prints_usage(fake_path: tuple[dict[str, str], Path]) -> None:
    """--help prints the usage block of each script and exits 0."""
    env, _ = fake_path
    assert "--skip-venv" in run_script(INSTALL, env, "--help").stdout
    assert "--purge" in run_script(UNINSTALL, env, "--help").stdout


def installed_with_state(root: Path, env: dict[str, str]) -> None:
    install(root, env)
    (root / "opt" / "tradingd" / "venv" / "bin").mkdir(parents=True)
    (root / "opt" / "tradingd" / "venv" / "bin" / "python").write_text("", encoding="utf-8")
    state = root / "var" / "lib" / "tradingd"
    state.mkdir(parents=True)
    (state / "tradingd.db").write_bytes(b"SQLite format 3\x00")
    dropin_dir = root / "etc" / "systemd" / "system" / "tradingd.service.d"
    dropin_dir.mkdir()
    (dropin_dir / "override.conf").write_text("[Service]\nNice=5\n", encoding="utf-8")


def test_uninstall_keeps_config_and_state(
    root: Path, fake_path: tuple[dict[str, str], Path]
) -> None:
    """Without --purge: unit and venv go; config, credentials, state, user and overrides stay."""
    env, log = fake_path
    installed_with_state(root, env)
    result = run_script(UNINSTALL, env, "--root", str(root))
    assert not (root / "etc" / "systemd" / "system" / "tradingd.service").exists()
    assert not (root / "opt" / "tradingd").exists()
    assert (root / "etc" / "tradingd" / "tradingd.toml").exists()
    assert (root / "etc" / "tradingd" / "credentials" / "alpaca_api_key").exists()
    assert (root / "var" / "lib" / "tradingd" / "tradingd.db").exists()
    override = root / "etc" / "systemd" / "system" / "tradingd.service.d" / "override.conf"
    assert override.exists()
    assert not log.exists()
    assert "would run: systemctl disable --now tradingd.service" in result.stdout
    assert "userdel" not in result.stdout
    # Uninstalling twice is fine.
    run_script(UNINSTALL, env, "--root", str(root))


def test_uninstall_purge_removes_everything(
    root: Path, fake_path: tuple[dict[str, str], Path]
) -> None:
    """--purge also removes config, credentials, state, the drop-ins and (printed) the user."""
    env, log = fake_path
    installed_with_state(root, env)
    result = run_script(UNINSTALL, env, "--root", str(root), "--purge")
    assert not (root / "etc" / "tradingd").exists()
    assert not (root / "var" / "lib" / "tradingd").exists()
    assert not (root / "etc" / "systemd" / "system" / "tradingd.service.d").exists()
    assert not (root / "opt" / "tradingd").exists()
    assert "would run: userdel tradingd" in result.stdout
    assert "would run: groupdel tradingd" in result.stdout
    assert not log.exists()


def test_uninstall_dry_run_changes_nothing(
    root: Path, fake_path: tuple[dict[str, str], Path]
) -> None:
    """uninstall --dry-run --purge prints the removals and leaves every file in place."""
    env, _ = fake_path
    installed_with_state(root, env)
    before = snapshot(root)
    result = run_script(UNINSTALL, env, "--root", str(root), "--purge", "--dry-run")
    assert snapshot(root) == before
    assert f"would run: rm -rf {root}/var/lib/tradingd" in result.stdout


def test_refuses_a_python_hidden_by_protect_home(
    root: Path, tmp_path: Path, fake_path: tuple[dict[str, str], Path]
) -> None:
    """A venv on an interpreter under /root or /home (pyenv) would not start: refused."""
    env, _ = fake_path
    fake_python = tmp_path / "python3"
    # Answers both probes: the version check (exit 0) and sys.base_prefix (printed).
    fake_python.write_text("#!/bin/sh\necho /root/.pyenv/versions/3.11.7\n", encoding="utf-8")
    fake_python.chmod(0o755)
    result = run_script(
        INSTALL,
        env,
        *("--root", str(root), "--skip-apt", "--no-start", "--python", str(fake_python)),
        check=False,
    )
    assert result.returncode == 1
    assert "ProtectHome=yes" in result.stderr
    assert not (root / "opt").exists()
