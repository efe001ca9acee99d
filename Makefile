# Enreach tools. `make run` starts the app, `make test` runs every check and test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PGDIR := $(CURDIR)/var/pgtest
PYTEST := $(PY) -m pytest -p no:cacheprovider
# Tests run in four processes (pytest-xdist) on the two-core machines: the suite waits more than it computes (browsers,
# live servers, subprocesses; at two processes it kept 30 % of the two cores busy), so four finish sooner.
# `make test PYTEST_WORKERS=0` runs them in one.
PYTEST_WORKERS ?= 4
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))

.PHONY: run test build-deps test-deps lint typecheck imports migrations-check test-sqlite test-postgres test-deploy bench clean

# Debian packages, installed when missing. apt waits up to 10 minutes for another apt-get holding dpkg's lock
# (DPkg::Lock::Timeout) instead of failing at once; `apt-get update` (the package lists' lock) is retried.
# BUILD_DEBS build python-ldap (no wheel on PyPI), before the virtualenv is made (so `make run` has them too).
# TEST_DEBS are what the tests need (the fixtures fail, never skip, when one is missing): Chromium for the browser
# tests, Redis and PostgreSQL for the servers the tests start, OpenSSH for the SFTP backups, LibreOffice Calc to open
# the workbook, Prometheus for promtool (checks and unit-tests deploy/prometheus-alerts.yml), slapd and ldap-utils
# for the LDAP server the sign-in tests start.
BUILD_DEBS := gcc libldap2-dev libsasl2-dev
TEST_DEBS := chromium chromium-driver redis-server openssh-server postgresql libreoffice-calc-nogui prometheus \
	slapd ldap-utils
APT := DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get -q -o DPkg::Lock::Timeout=600
# The Debian packages of $(1) that are not installed.
missing_debs = $$(for deb in $(1); do \
	  dpkg-query -W -f='$${Status}' $$deb 2>/dev/null | grep -q 'install ok installed' || echo $$deb; done)
# Install the missing packages of $(1).
define apt_install
	@missing="$(call missing_debs,$(1))"; \
	if [ -z "$$missing" ]; then echo "== Debian packages: all installed =="; exit 0; fi; \
	echo "== installing Debian packages:" $$missing "=="; \
	for attempt in 1 2 3 4 5 6 7 8 9 10; do $(APT) update -qq && break; echo "apt-get update failed, retrying"; sleep 30; done; \
	$(APT) install -y -qq --no-install-recommends $$missing
endef

build-deps:
	$(call apt_install,$(BUILD_DEBS))

$(VENV)/.installed: requirements.txt requirements-dev.txt | build-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	DEBUG=$${DEBUG:-true} $(PY) scripts/run.py

# Every check and test, stage by stage; each stage's wall time (and the load average, the machines being shared) is
# printed as it ends and again in a summary. The first failing stage stops the run.
TEST_STAGES := $(VENV)/.installed test-deps lint typecheck imports migrations-check test-sqlite test-postgres test-deploy
test:
	@summary=""; started=$$(date +%s); \
	for stage in $(TEST_STAGES); do \
	  begun=$$(date +%s); \
	  $(MAKE) --no-print-directory $$stage || { echo "== stage $$stage FAILED after $$(( $$(date +%s) - begun )) s =="; exit 1; }; \
	  line="$$stage: $$(( $$(date +%s) - begun )) s (load average $$(cut -d' ' -f1-3 /proc/loadavg))"; \
	  echo "== stage $$line =="; summary="$$summary$$line\n"; \
	done; \
	printf "== stage times ==\n$$summary== make test: $$(( $$(date +%s) - started )) s ==\n"

test-deps:
	$(call apt_install,$(TEST_DEBS))

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

# Everything but the deploy test runs on SQLite. PostgreSQL runs what depends on the database engine: the tests marked
# `postgres` by the list in conftest.py (POSTGRES_MODULES, with its rule); the browser tests (pages), the schemathesis
# run (the API contract) and the deploy test (its own PostgreSQL) are not in it and run once.
test-sqlite: $(VENV)/.installed test-deps
	@echo "== pytest on SQLite =="
	env -u DATABASE_URL -u REDIS_URL $(PYTEST) $(XDIST) -m "not deploy" $(PYTEST_ARGS)

test-postgres: $(VENV)/.installed test-deps
	@echo "== pytest on PostgreSQL =="
	@url=$$(scripts/pgtest.sh start $(PGDIR)) || exit 1; \
	  trap 'scripts/pgtest.sh stop $(PGDIR)' EXIT; \
	  env -u REDIS_URL DATABASE_URL=$$url $(PYTEST) $(XDIST) -m postgres $(PYTEST_ARGS)

# The README's production deploy, started for real (PostgreSQL, Redis, gunicorn, two qcluster): a few minutes.
test-deploy: $(VENV)/.installed test-deps
	@echo "== deploy test =="
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -p no:cacheprovider -m deploy -s enreach/tests/test_deploy.py

bench: $(VENV)/.installed
	$(PY) bench/export_bench.py

clean:
	rm -rf $(VENV) var/pgtest
