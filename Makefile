# Enreach tools. `make run` starts the app, `make test` runs every check and test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PGDIR := $(CURDIR)/var/pgtest
PYTEST := $(PY) -m pytest -p no:cacheprovider
# Tests run in two processes (pytest-xdist; the machines have two cores): `make test PYTEST_WORKERS=0` for one.
PYTEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))

.PHONY: system-packages run test lint typecheck imports migrations-check test-sqlite test-postgres test-deploy bench clean

# Debian packages the build and the tests need, installed when missing (another apt may hold the lock: wait for it).
# libldap2-dev, libsasl2-dev and gcc build python-ldap (no wheel on PyPI); slapd and ldap-utils are the LDAP
# server the sign-in tests start (integrations/tests/test_directory_*.py); chromium runs the browser tests.
SYSTEM_PACKAGES := gcc libldap2-dev libsasl2-dev slapd ldap-utils chromium
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	  if [ -n "$$missing" ]; then echo "installing $$missing"; $(APT_GET) update -qq && $(APT_GET) install -y -qq $$missing; fi

$(VENV)/.installed: requirements.txt requirements-dev.txt | system-packages
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	DEBUG=$${DEBUG:-true} $(PY) scripts/run.py

test: $(VENV)/.installed lint typecheck imports migrations-check test-sqlite test-postgres test-deploy

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy .

# The layering in .importlinter: apps depend downwards, only integrations/ imports vendor SDKs, no devtools/.
imports: $(VENV)/.installed
	$(VENV)/bin/lint-imports

migrations-check: $(VENV)/.installed
	DJANGO_SETTINGS_MODULE=enreach.settings_test $(PY) manage.py makemigrations --check --dry-run

# Everything but the deploy test runs on SQLite. PostgreSQL runs what depends on the database: not the browser
# tests (pages), the schemathesis run (the API contract) or the deploy test, which run once.
test-sqlite: $(VENV)/.installed
	@echo "== pytest on SQLite =="
	env -u DATABASE_URL -u REDIS_URL $(PYTEST) $(XDIST) -m "not deploy" $(PYTEST_ARGS)

test-postgres: $(VENV)/.installed
	@echo "== pytest on PostgreSQL =="
	@url=$$(scripts/pgtest.sh start $(PGDIR)) || exit 1; \
	  trap 'scripts/pgtest.sh stop $(PGDIR)' EXIT; \
	  env -u REDIS_URL DATABASE_URL=$$url $(PYTEST) $(XDIST) -m "not deploy and not fuzz and not browser" $(PYTEST_ARGS)

# The README's production deploy, started for real (PostgreSQL, Redis, gunicorn, two qcluster): a few minutes.
test-deploy: $(VENV)/.installed
	@echo "== deploy test =="
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -p no:cacheprovider -m deploy -s enreach/tests/test_deploy.py

bench: $(VENV)/.installed
	$(PY) bench/export_bench.py

clean:
	rm -rf $(VENV) var/pgtest
