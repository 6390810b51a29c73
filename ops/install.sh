#!/usr/bin/env bash
# Install tradingd as a systemd service on Debian/Ubuntu, from a checkout.
#
#   sudo ops/install.sh [--prefix /opt/tradingd] [--config-dir /etc/tradingd]
#                       [--user tradingd] [--python /usr/bin/python3]
#                       [--skip-apt] [--skip-venv] [--no-start] [--root DIR] [--dry-run]
#
# Steps (docs/DEPLOY.md walks through the same ones):
#   1. apt packages python3-venv python3-dev gcc libsystemd-dev pkg-config (--skip-apt);
#   2. system group and user (no login shell, home /var/lib/tradingd);
#   3. virtualenv PREFIX/venv with this checkout installed, extra [systemd] (--skip-venv),
#      on a system Python >= 3.11 (not one under /home or /root: the unit's
#      ProtectHome=yes hides those from the service);
#   4. CONFIG_DIR/tradingd.toml from ops/tradingd.example.toml, only if absent
#      (an operator's config is never overwritten), 0640 root:GROUP, with
#      [control] group = GROUP so members of the group can use tradectl;
#   5. CONFIG_DIR/credentials/ (0700 root) with the four credential files,
#      created empty (0600) if absent;
#   6. the unit as /etc/systemd/system/tradingd.service (+ a drop-in when
#      --prefix, --config-dir or --user differ from the defaults);
#   7. systemctl daemon-reload; systemctl enable --now tradingd (--no-start: neither).
#
# Running it again changes nothing an operator set: config and credential files
# are kept, the unit and the venv are brought up to date with the checkout.
#
# --root DIR installs into a fake root (tests): every path is prefixed with DIR
# and the commands that change the host (apt-get, groupadd, useradd, chown,
# systemctl) are printed instead of run. --dry-run prints every step and
# changes nothing.
set -euo pipefail

readonly DEFAULT_PREFIX=/opt/tradingd
readonly DEFAULT_CONFIG_DIR=/etc/tradingd
readonly DEFAULT_USER=tradingd
readonly UNIT_NAME=tradingd.service
readonly UNIT_DIR=/etc/systemd/system
readonly STATE_DIR=/var/lib/tradingd
readonly RUNTIME_DIR=/run/tradingd
readonly CREDENTIALS=(alpaca_api_key alpaca_secret_key alphavantage_api_key smtp_password)
readonly APT_PACKAGES=(python3-venv python3-dev gcc libsystemd-dev pkg-config)

prefix=$DEFAULT_PREFIX
config_dir=$DEFAULT_CONFIG_DIR
user=$DEFAULT_USER
python=/usr/bin/python3
root=""
dry_run=0
skip_apt=0
skip_venv=0
no_start=0

checkout=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly checkout

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

die() {
    printf 'install.sh: %s\n' "$*" >&2
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

# A change to the host itself: only done on a real install.
host_run() {
    if ((dry_run)) || [[ -n $root ]]; then
        printf 'would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# An absolute path inside the (possibly fake) root.
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
    --python) need_value "$@"; python=$2; shift 2 ;;
    --root) need_value "$@"; root=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --skip-apt) skip_apt=1; shift ;;
    --skip-venv) skip_venv=1; shift ;;
    --no-start) no_start=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done

for path in "$prefix" "$config_dir"; do
    [[ $path == /* && $path != / ]] || die "not an absolute directory other than /: $path"
done
[[ $user =~ ^[a-z_][a-z0-9_-]*$ ]] || die "not a valid user name: $user"
if [[ -n $root ]]; then
    [[ $root == /* && $root != / ]] || die "--root needs an absolute directory other than /"
    root=${root%/}
fi
[[ -f $checkout/pyproject.toml && -f $checkout/systemd/$UNIT_NAME ]] ||
    die "run me from a tradingd checkout ($checkout has no pyproject.toml)"
if ((!dry_run)) && [[ -z $root && $EUID -ne 0 ]]; then
    die "run me as root (or with --root DIR / --dry-run)"
fi

group=$user
venv=$prefix/venv
umask 022

# The service runs with ProtectHome=yes: an interpreter under /home, /root or
# /run/user (pyenv, conda, a user's build) is invisible to it and the unit fails
# with status 203/EXEC.
check_interpreter_home() {
    case $1/ in
    /home/* | /root/* | /run/user/*)
        die "$2 lives in $1, which ProtectHome=yes hides from the service;" \
            "use a system Python (--python /usr/bin/python3)" ;;
    esac
}

# --- 1. system packages ----------------------------------------------------------------
if ((skip_apt)); then
    say "apt packages: skipped (--skip-apt)"
else
    say "apt packages: ${APT_PACKAGES[*]}"
    host_run apt-get update -qq
    host_run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${APT_PACKAGES[@]}"
fi

# --- 2. system user and group ----------------------------------------------------------
say "system user and group: $user"
if [[ -z $root ]] && getent group "$group" >/dev/null; then
    echo "group $group exists"
else
    host_run groupadd --system "$group"
fi
if [[ -z $root ]] && getent passwd "$user" >/dev/null; then
    echo "user $user exists"
else
    host_run useradd --system --gid "$group" --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "tradingd trading daemon" "$user"
fi

# --- 3. virtualenv ---------------------------------------------------------------------
if ((skip_venv)); then
    say "virtualenv: skipped (--skip-venv)"
else
    say "virtualenv: $venv"
    if [[ -x $(at "$venv")/bin/python ]]; then
        echo "virtualenv exists; updating it"
        venv_home=$(sed -n 's/^home *= *//p' "$(at "$venv")/pyvenv.cfg")
        check_interpreter_home "$venv_home" "the virtualenv's Python (remove $venv to rebuild it)"
    else
        if ((dry_run)) && [[ ! -x $python ]]; then
            echo "($python is not installed yet; apt-get installs it)"
        else
            [[ -x $python ]] || die "no Python at $python (--python PATH)"
            "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
                die "$python is older than Python 3.11"
            base=$("$python" -c 'import os, sys; print(os.path.realpath(sys.base_prefix))')
            check_interpreter_home "$base" "$python"
        fi
        run mkdir -p "$(at "$prefix")"
        run "$python" -m venv "$(at "$venv")"
    fi
    run "$(at "$venv")/bin/pip" install --quiet --upgrade pip
    # Dependencies first, then this checkout itself again even if its version did
    # not change, so that re-running the script after `git pull` upgrades the code.
    # setuptools' scratch directory build/ (git-ignored) is cleared before and after:
    # a module deleted upstream would otherwise linger there and be installed.
    run rm -rf "$checkout/build"
    run "$(at "$venv")/bin/pip" install --quiet "${checkout}[systemd]"
    run "$(at "$venv")/bin/pip" install --quiet --force-reinstall --no-deps "$checkout"
    run rm -rf "$checkout/build"
fi

# --- 4. configuration ------------------------------------------------------------------
config=$config_dir/tradingd.toml
say "configuration: $config"
run mkdir -p "$(at "$config_dir")"
run chmod 0750 "$(at "$config_dir")"
host_run chown "root:$group" "$(at "$config_dir")"
if [[ -e $(at "$config") ]]; then
    echo "$config exists; kept as it is"
else
    tmp_config=$(at "$config_dir")/.tradingd.toml.new
    # The example sets every key to its default; install.sh only opens the control
    # socket to the group, so that its members can use tradectl.
    run cp "$checkout/ops/tradingd.example.toml" "$tmp_config"
    if grep -q '^# group = ' "$checkout/ops/tradingd.example.toml"; then
        run sed -i "s/^# group = .*/group = \"$group\"                # set by install.sh: members may use tradectl/" \
            "$tmp_config"
    else
        echo "warning: no '# group = ' line in the example; set [control] group yourself" >&2
    fi
    run chmod 0640 "$tmp_config"
    host_run chown "root:$group" "$tmp_config"
    run mv "$tmp_config" "$(at "$config")"
fi

# --- 5. credentials --------------------------------------------------------------------
credentials_dir=$config_dir/credentials
say "credentials: $credentials_dir"
run mkdir -p "$(at "$credentials_dir")"
run chmod 0700 "$(at "$credentials_dir")"
host_run chown root:root "$(at "$credentials_dir")"
for name in "${CREDENTIALS[@]}"; do
    file=$(at "$credentials_dir/$name")
    if [[ -e $file ]]; then
        echo "$credentials_dir/$name exists; kept"
    else
        # Empty means unset to the daemon; the operator writes the key in later.
        run install -m 0600 /dev/null "$file"
        host_run chown root:root "$file"
    fi
done

# --- 6. systemd unit -------------------------------------------------------------------
unit=$UNIT_DIR/$UNIT_NAME
say "systemd unit: $unit"
run mkdir -p "$(at "$UNIT_DIR")"
if cmp -s "$checkout/systemd/$UNIT_NAME" "$(at "$unit")"; then
    echo "$unit is up to date"
else
    run install -m 0644 "$checkout/systemd/$UNIT_NAME" "$(at "$unit")"
fi

# The unit names the default paths and user; anything else goes into a drop-in so
# that the unit file itself stays identical to systemd/tradingd.service.
dropin=$UNIT_DIR/$UNIT_NAME.d/10-install.conf
overrides=()
if [[ $prefix != "$DEFAULT_PREFIX" ]]; then
    overrides+=("ExecStart=" "ExecStart=$venv/bin/tradingd run")
fi
if [[ $user != "$DEFAULT_USER" ]]; then
    overrides+=("User=$user" "Group=$group")
fi
if [[ $config_dir != "$DEFAULT_CONFIG_DIR" ]]; then
    overrides+=("Environment=TRADINGD_CONFIG=$config")
    overrides+=("LoadCredential=")
    for name in "${CREDENTIALS[@]}"; do
        overrides+=("LoadCredential=$name:$credentials_dir/$name")
    done
fi
if ((${#overrides[@]})); then
    tmp_dropin=$(mktemp)
    trap 'rm -f "$tmp_dropin"' EXIT
    {
        echo "# Written by ops/install.sh for its non-default options; it rewrites this file."
        echo "[Service]"
        printf '%s\n' "${overrides[@]}"
    } >"$tmp_dropin"
    if cmp -s "$tmp_dropin" "$(at "$dropin")"; then
        echo "$dropin is up to date"
    else
        say "drop-in: $dropin"
        run mkdir -p "$(at "$UNIT_DIR/$UNIT_NAME.d")"
        run install -m 0644 "$tmp_dropin" "$(at "$dropin")"
    fi
elif [[ -e $(at "$dropin") ]]; then
    say "drop-in: removing $dropin (all options are the defaults now)"
    run rm -f "$(at "$dropin")"
fi

host_run systemctl daemon-reload
if ((no_start)); then
    say "not enabled or started (--no-start)"
else
    say "enabling and starting $UNIT_NAME"
    host_run systemctl enable --now "$UNIT_NAME"
fi

# --- next steps ------------------------------------------------------------------------
cat <<EOF

tradingd is installed. Next steps (docs/DEPLOY.md has the details):
  1. Edit $config (it starts on the synthetic market and the simulated broker);
     check it as the service will see it (effective settings, secrets masked, warnings):
       sudo env CREDENTIALS_DIRECTORY=$credentials_dir STATE_DIRECTORY=$STATE_DIR \\
         $venv/bin/tradingd check-config --config $config
  2. Put the keys in the credential files (the bare value, no quotes; an empty file
     means "not set"), e.g. sudoedit $credentials_dir/alpaca_api_key:
$(printf '       %s\n' "${CREDENTIALS[@]/#/$credentials_dir/}")
  3. Apply: sudo systemctl reload tradingd for config edits; after changing a credential
     file: sudo systemctl restart tradingd (systemd copies credentials only at start)
EOF
if ((no_start)); then
    echo "     (not started yet: sudo systemctl enable --now tradingd)"
fi
cat <<EOF
  4. Let operators steer it: sudo usermod -aG $group OPERATOR (then log in again), and
       $venv/bin/tradectl --socket $RUNTIME_DIR/tradingd.sock status
  5. Watch it: systemctl status tradingd; journalctl -u tradingd -f;
       curl -s 127.0.0.1:9464/metrics | head
EOF
