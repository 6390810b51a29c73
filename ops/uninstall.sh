#!/usr/bin/env bash
# Remove what ops/install.sh installed.
#
#   sudo ops/uninstall.sh [--prefix /opt/tradingd] [--config-dir /etc/tradingd]
#                         [--user tradingd] [--purge] [--root DIR] [--dry-run]
#
# Always: stop and disable tradingd, remove the unit (and install.sh's drop-in)
# and the virtualenv PREFIX/venv.
# Kept unless --purge: CONFIG_DIR (config and credentials), /var/lib/tradingd
# (the state database: positions, order intents, the model) and the user/group.
# With --purge they are deleted too. Back the state up first
# (docs/DEPLOY.md, "Backups").
#
# --root DIR works on a fake root (tests): every path is prefixed with DIR and
# the commands that change the host (systemctl, userdel, groupdel) are printed
# instead of run. --dry-run prints every step and changes nothing.
set -euo pipefail

readonly DEFAULT_USER=tradingd
readonly UNIT_NAME=tradingd.service
readonly UNIT_DIR=/etc/systemd/system
readonly STATE_DIR=/var/lib/tradingd

prefix=/opt/tradingd
config_dir=/etc/tradingd
user=$DEFAULT_USER
root=""
dry_run=0
purge=0

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

die() {
    printf 'uninstall.sh: %s\n' "$*" >&2
    exit 1
}

say() {
    printf '==> %s\n' "$*"
}

# A change to files (done in the fake root too); only printed with --dry-run.
run() {
    if ((dry_run)); then
        printf 'would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# A change to the host itself: only done on a real uninstall.
host_run() {
    if ((dry_run)) || [[ -n $root ]]; then
        printf 'would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# The same, where failing is fine (the unit or user may be gone already).
host_run_ok() {
    host_run "$@" || echo "(ignored: $* failed)"
}

at() {
    printf '%s%s' "$root" "$1"
}

need_value() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --prefix) need_value "$@"; prefix=$2; shift 2 ;;
    --config-dir) need_value "$@"; config_dir=$2; shift 2 ;;
    --user) need_value "$@"; user=$2; shift 2 ;;
    --root) need_value "$@"; root=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --purge) purge=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done

# Everything removed below is derived from these: refuse anything that could
# make an `rm -rf` reach beyond what install.sh created.
for path in "$prefix" "$config_dir"; do
    [[ $path == /* && $path != / && $path != *..* ]] ||
        die "not an absolute directory other than /: $path"
done
[[ $user =~ ^[a-z_][a-z0-9_-]*$ ]] || die "not a valid user name: $user"
if [[ -n $root ]]; then
    [[ $root == /* && $root != / ]] || die "--root needs an absolute directory other than /"
    root=${root%/}
fi
if ((!dry_run)) && [[ -z $root && $EUID -ne 0 ]]; then
    die "run me as root (or with --root DIR / --dry-run)"
fi

# --- the service -----------------------------------------------------------------------
say "stopping and disabling $UNIT_NAME"
host_run_ok systemctl disable --now "$UNIT_NAME"

unit=$UNIT_DIR/$UNIT_NAME
dropin_dir=$UNIT_DIR/$UNIT_NAME.d
say "removing $unit"
run rm -f "$(at "$unit")"
if [[ -d $(at "$dropin_dir") ]]; then
    if ((purge)); then
        run rm -rf "$(at "$dropin_dir")"
    else
        # Only install.sh's drop-in: an operator's `systemctl edit` override is kept.
        run rm -f "$(at "$dropin_dir/10-install.conf")"
        run rmdir --ignore-fail-on-non-empty "$(at "$dropin_dir")"
    fi
fi
host_run systemctl daemon-reload
host_run_ok systemctl reset-failed "$UNIT_NAME"

# --- the code --------------------------------------------------------------------------
say "removing the virtualenv $prefix/venv"
run rm -rf "$(at "$prefix/venv")"
if [[ -d $(at "$prefix") ]]; then
    run rmdir --ignore-fail-on-non-empty "$(at "$prefix")"
fi

# --- configuration, state, user --------------------------------------------------------
if ((!purge)); then
    cat <<EOF

tradingd is uninstalled. Kept (remove them with --purge):
  $config_dir         configuration and credentials
  $STATE_DIR      state: database, model, event files
  user and group $user
EOF
    exit 0
fi

say "purging $config_dir (configuration and credentials)"
run rm -rf "$(at "$config_dir")"
say "purging $STATE_DIR (state database)"
run rm -rf "$(at "$STATE_DIR")"
say "removing user and group $user"
host_run_ok userdel "$user"
host_run_ok groupdel "$user"
echo
echo "tradingd is uninstalled and purged."
