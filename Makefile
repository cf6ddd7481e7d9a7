# TutorApp: `make run` serves everything on http://127.0.0.1:8000; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test install install-test browser lock lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/pip install -q -c requirements.lock -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -c requirements.lock -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## run: migrate, seed demo data on first start, serve on $(HOST):$(PORT)
run: install
	$(BIN)/tutorapp migrate
	$(BIN)/tutorapp seed --demo --if-empty
	$(BIN)/tutorapp serve --host $(HOST) --port $(PORT)

## test: lint, then the whole suite (SQLite, and PostgreSQL when TUTORAPP_TEST_POSTGRES_URL is set) on
## TEST_WORKERS pytest-xdist workers (default 0: this one process; 2 once tests/jobs/test_admin.py passes under xdist), see docs/testing.md
test: install-test browser
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -n $(or $(TEST_WORKERS),0) --dist loadfile $(PYTEST_ARGS)

## lint: ruff (rules in pyproject.toml) over src, tests and bench; mypy over src/
lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# Browser tests drive Debian's Chromium; install it when missing and we may.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium (Debian package) for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing and we are not root: browser tests will be skipped"; \
	  fi; \
	fi

## lock: re-pin every dependency after changing pyproject.toml
lock: $(BIN)/python
	$(BIN)/pip install -q -U -e '.[test]'
	$(BIN)/pip freeze --exclude-editable | grep -v '^tutorapp' > requirements.lock

clean:
	rm -rf $(VENV) var test-results .pytest_cache .ruff_cache .mypy_cache
