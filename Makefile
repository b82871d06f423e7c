# The README's two commands: `make run` and `make test`. Both bootstrap the same way:
# a virtualenv, a development .env, and a project-local PostgreSQL unless DATABASE_URL
# is set (in the environment or in .env).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format stop db browser install install-dev backup bench drills

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

.env: | $(VENV)/.installed
	$(PY) -m hosting.devenv

db: $(VENV)/.installed .env
	$(PY) -m hosting.database.localdb start

# Debian's Chromium for the browser tests; nothing downloads a browser at run time.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium not found; browser tests will be skipped. Install it: sudo apt-get install chromium"; fi; }

run: db
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py seed --show-passwords
	$(PY) -m hosting.devserver --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-dev db browser
	$(PY) -m pytest $(PYTEST_ARGS)

# Speed at scale and the failure drills (README "Performance and reliability"); each
# uses a database of its own on the local cluster and writes bench/results/.
bench: $(VENV)/.installed-dev db
	$(PY) -m bench.run $(BENCH_ARGS)

drills: $(VENV)/.installed-dev db browser
	$(PY) -m bench.drills $(DRILLS_ARGS)

# The shell scripts the project ships: the deploy script runs on customers' servers.
SHELL_SCRIPTS := $(wildcard servers/runners/*.sh) .ci/run

lint: $(VENV)/.installed-dev db
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	shellcheck $(SHELL_SCRIPTS)
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m hosting.migration_safety
	# Every table with customers' rows is behind row-level security (README).
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py check_rls

format: $(VENV)/.installed-dev
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

backup: db
	$(PY) manage.py backup

stop:
	@test -x $(PY) && $(PY) -m hosting.database.localdb stop || $(PYTHON) -m hosting.database.localdb stop
