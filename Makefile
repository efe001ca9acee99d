# Enreach tools. `make run` starts the app, `make test` runs every check and test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PGDIR := $(CURDIR)/var/pgtest

.PHONY: run test lint typecheck migrations-check test-sqlite test-postgres test-deploy bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	DEBUG=$${DEBUG:-true} $(PY) scripts/run.py

test: $(VENV)/.installed lint typecheck migrations-check test-sqlite test-postgres test-deploy

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy .

migrations-check: $(VENV)/.installed
	DJANGO_SETTINGS_MODULE=enreach.settings_test $(PY) manage.py makemigrations --check --dry-run

test-sqlite: $(VENV)/.installed
	@echo "== pytest on SQLite =="
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -p no:cacheprovider -m "not deploy" $(PYTEST_ARGS)

# The schemathesis run (marker fuzz) is about the API, not the database: it runs once, in test-sqlite.
test-postgres: $(VENV)/.installed
	@echo "== pytest on PostgreSQL =="
	@url=$$(scripts/pgtest.sh start $(PGDIR)) || exit 1; \
	  trap 'scripts/pgtest.sh stop $(PGDIR)' EXIT; \
	  env -u REDIS_URL DATABASE_URL=$$url $(PY) -m pytest -p no:cacheprovider -m "not deploy and not fuzz" $(PYTEST_ARGS)

# The README's production deploy, started for real (PostgreSQL, Redis, gunicorn, two qcluster): a few minutes.
test-deploy: $(VENV)/.installed
	@echo "== deploy test =="
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -p no:cacheprovider -m deploy -s enreach/tests/test_deploy.py

bench: $(VENV)/.installed
	$(PY) bench/export_bench.py

clean:
	rm -rf $(VENV) var/pgtest
