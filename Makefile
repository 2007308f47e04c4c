# Smart Attendance: the README's two commands live here (`make run`, `make test`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Python keeps compiled modules (__pycache__, and pytest's rewritten test modules) even where
# the shell says not to: without them every test worker and every server process a test
# starts compiles Flask, SQLAlchemy and the project from source again (a third of
# `make test-fast`).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install system-deps run test test-fast lint format bench eval clean

install: $(STAMP)

# System packages the tests use: libfaketime (the midnight test runs a server on a shifted
# clock), Xvfb (the client's window is opened on a virtual screen), Chromium and its driver
# (the dashboard's browser tests), nginx (the reverse proxy of deploy/, tests/test_nginx.py),
# PostgreSQL (the store, migration and service tests also run on a server the tests start,
# tests/pg.py; Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin).
# Installed with apt-get when we are root on a Debian-like machine, and a failed apt-get stops
# make (CI must not go on without them); otherwise those tests are skipped (they fail instead
# where REQUIRE_SHARED_DATA=1, as in CI).
SYSTEM_PACKAGES := faketime xvfb chromium chromium-driver nginx postgresql
SYSTEM_COMMANDS := faketime Xvfb chromium chromedriver /usr/sbin/nginx \
	/usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl
system-deps:
	@missing=0; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	if [ $$missing = 0 ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing $(SYSTEM_PACKAGES) (apt-get)"; \
		(apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && \
		  apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null)) \
		|| { echo "error: apt-get could not install $(SYSTEM_PACKAGES)" >&2; exit 1; }; \
	else echo "note: $(SYSTEM_PACKAGES) not installed; their tests will be skipped"; fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/attendance serve

# Everything CI runs: in-process tests and the real components (dlib on real faces, server
# processes, SMTP, Xvfb, libfaketime, Chromium), on both cores; a test file stays on one
# worker (its server or browser is started once).
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# In-process tests only (scripted faces, fixed clock, Flask test client): seconds, on both
# cores (pytest-xdist).
test-fast: install
	$(BIN)/python -m pytest -m "not real and not slow" -n 2 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

# Every benchmark, one after the other (about ten minutes on 2 cores; run it on a quiet
# machine): writes bench/results/latest.md and the figures README.md quotes from it.
bench: install
	$(BIN)/python bench/run_all.py

eval: install
	$(BIN)/attendance eval ../shared/faces

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
