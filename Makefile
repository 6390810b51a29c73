# tradingd — two commands do all set-up on a fresh Debian 12 machine with Python 3.11:
#   make run    create .venv, install, start the daemon on the embedded default
#   make test   install what the tests need, then ruff, mypy --strict, pytest
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# systemd-python builds only against libsystemd-dev; the stamp names the extras
# installed, so the venv is completed when `make system-deps` adds the library.
SYSTEMD_EXTRA = $(shell pkg-config --exists libsystemd 2>/dev/null && echo ",systemd")
STAMP  = $(VENV)/.installed-test$(subst $(comma),-,$(SYSTEMD_EXTRA))
comma := ,

.PHONY: run test lint typecheck pytest bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test$(SYSTEMD_EXTRA)]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tradingd run

# System packages the tests use: libsystemd-dev/pkg-config (systemd-python),
# Debian's prometheus (promtool and a real server). Installed when we are root
# with apt; otherwise tests that need them fail under CI=true and skip locally.
system-deps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  for p in libsystemd-dev pkg-config prometheus systemd shellcheck openssl; do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	fi

test: system-deps
	$(MAKE) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict daemon actors

pytest: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[test,bench]"
	$(BIN)/python -m tests.benchmarks.run

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
