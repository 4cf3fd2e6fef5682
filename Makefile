# The two commands: `make run` and `make test`. Both bootstrap what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CDB_DATA_DIR ?= $(CURDIR)/var
CDB_PORT ?= 8443
export CDB_PORT
PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: messages run test restore-drill soak bench lint format openapi dist image postgres nginx oidc axe chromium deploy-tools clean help

help:
	@echo "make run    - start the service on the embedded SQLite database (dev profile)"
	@echo "make test   - run the whole suite on PostgreSQL and SQLite"
	@echo "make lint   - ruff, mypy and the import layers (import-linter)"
	@echo "make openapi - regenerate openapi.yaml and web/xsd/cdb.xsd from the app"
	@echo "make dist   - build the wheel and the sdist into dist/"
	@echo "make messages - extract the console's texts and update its catalogues (docs/console-languages.md)"
	@echo "make restore-drill - time a point-in-time restore and verify-restore (DRILL_ENTRIES=N: a larger registry)"
	@echo "make soak   - workers' memory under a steady mixed load, with and without writes (SOAK_MINUTES=15)"
	@echo "make image  - build the container image (deploy/image/Containerfile) with buildah or podman"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	@mkdir -p $(CDB_DATA_DIR)
	@echo "cdb-service: dev profile, SQLite and dev PKI under $(CDB_DATA_DIR), https://localhost:$(CDB_PORT)"
	@echo "Call it from another terminal, as pasted (dev clients: reader admin-de admin-fr admin-ej operator):"
	@echo '  P=$(CDB_DATA_DIR)/pki; TOKEN=$$(CDB_DATA_DIR=$(CDB_DATA_DIR) $(CURDIR)/$(BIN)/cdb-service dev-token --client reader)'
	@echo '  curl --cacert $$P/ca.pem --cert $$P/client-reader.pem --key $$P/client-reader-key.pem \'
	@echo '       -H "Authorization: Bearer $$TOKEN" https://localhost:$(CDB_PORT)/api/v1/code-lists/instruments'
	@echo "Health, no credentials: curl --cacert $(CDB_DATA_DIR)/pki/ca.pem https://localhost:$(CDB_PORT)/health/ready"
	@echo "Front page and API documentation: https://localhost:$(CDB_PORT)/ and https://localhost:$(CDB_PORT)/schema"
	$(BIN)/cdb-service serve --port $(CDB_PORT)

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; echo "PostgreSQL did not start"; exit 1

# The reverse-proxy tests run behind a real nginx (Debian package); its own service stays off.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null)
	-@service nginx stop >/dev/null 2>&1 || true

# The status-page test takes a screenshot in headless Chromium (Debian package).
chromium:
	@command -v chromium >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# deploy/ is checked by the tools that apply it: promtool (Debian prometheus, whose own
# service stays off), Java's keytool (Debian openjdk-17-jre-headless: it reads back the
# packages' JKS and PKCS#12 stores), PostgreSQL's server binaries for the failover and restore
# tests, systemd-analyze, and kubectl (kustomize; Debian kubernetes-client if none).
deploy-tools:
	@command -v promtool >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null)
	@command -v keytool >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null)
	-@service prometheus stop >/dev/null 2>&1 || true
	@ls /usr/lib/postgresql/*/bin/pg_basebackup >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)
	@command -v systemd-analyze >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null)
	@command -v kubectl >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null)

# The token tests talk to a real OpenID provider (npm oidc-provider).
oidc: tests/support/oidc/node_modules/.package-lock.json

tests/support/oidc/node_modules/.package-lock.json: tests/support/oidc/package-lock.json
	npm ci --prefix tests/support/oidc --no-audit --no-fund --loglevel=error

# The console's browser tests inject axe-core (npm) into every page.
axe: tests/support/axe/node_modules/.package-lock.json

tests/support/axe/node_modules/.package-lock.json: tests/support/axe/package-lock.json
	npm ci --prefix tests/support/axe --no-audit --no-fund --loglevel=error

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

openapi: $(STAMP)
	$(BIN)/cdb-service openapi --out openapi.yaml
	$(BIN)/python -m cdb_service.openapi cdb_service/web/xsd/cdb.xsd

# Most tests wait on servers they started, so two at a time (a file per worker: its
# module-scoped servers are started once) take about half the time; the tests marked
# `serial` measure time or load and run alone afterwards, on a machine nothing else uses.
test: $(STAMP) postgres nginx oidc axe chromium deploy-tools lint
	CDB_TEST_PG_URL=$(PG_URL) $(BIN)/python -m pytest -n 2 --dist loadfile -m "not serial"
	CDB_TEST_PG_URL=$(PG_URL) $(BIN)/python -m pytest -m serial

# The restore drill (tests/db/test_restore.py, also part of `make test`) with its figures
# printed: recovery time and recovery point, as docs/operations.md states them.
DRILL_ENTRIES ?= 0
restore-drill: $(STAMP) postgres deploy-tools
	CDB_TEST_PG_URL=$(PG_URL) CDB_DRILL_ENTRIES=$(DRILL_ENTRIES) $(BIN)/python -m pytest -q -s \
		-p no:warnings tests/db/test_restore.py

# The soak (tests/ops/test_soak.py, two minutes of it in `make test`) for SOAK_MINUTES,
# half without writes and half with one a second, at SOAK_RATE requests/s: it prints
# each worker's memory slope in MiB per hour, and fails on growth beyond the data's.
SOAK_MINUTES ?= 15
SOAK_RATE ?= 60
soak: $(STAMP) postgres
	CDB_TEST_PG_URL=$(PG_URL) CDB_SOAK_MINUTES=$(SOAK_MINUTES) CDB_SOAK_RATE=$(SOAK_RATE) \
		$(BIN)/python -m pytest -q -s -p no:warnings tests/ops/test_soak.py \
		-k test_workers_grow_only_by_the_data_they_hold

# The console's catalogues: every text of its templates, its Python and the contract's
# labels and help (babel.cfg), into the template and each language's catalogue. A new
# language is one more catalogue (docs/console-languages.md).
LOCALE := cdb_service/console/locale
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -w 100 --add-location=file --sort-by-file \
		--project=cdb-service --copyright-holder="cdb-service" --msgid-bugs-address="" \
		-o $(LOCALE)/messages.pot .
	@for po in $(LOCALE)/*/LC_MESSAGES/messages.po; do \
		lang=$$(basename $$(dirname $$(dirname $$po))); \
		$(BIN)/pybabel update -w 100 --no-fuzzy-matching --ignore-obsolete -i $(LOCALE)/messages.pot \
			-d $(LOCALE) -l $$lang; \
	done

# The release: a wheel (migrations, seed, calendar, templates, XSDs and assets inside)
# and an sdist, built the way the install test builds them.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

# The image installs dist/'s wheel with deploy/image/install.sh, the script the install
# test runs. It needs buildah or podman and the Python base image (a registry, or a
# local copy named by PYTHON_IMAGE=...).
IMAGE ?= cdb-service:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PYTHON_IMAGE ?= $(shell sed -n 's/^ARG PYTHON_IMAGE=//p' deploy/image/Containerfile)
image: dist
	@builder=$$(command -v buildah || command -v podman) || \
		{ echo "make image: neither buildah nor podman is installed (apt-get install buildah)"; exit 1; }; \
	$$builder inspect --type image $(PYTHON_IMAGE) >/dev/null 2>&1 || \
		$$builder pull -q $(PYTHON_IMAGE) >/dev/null 2>&1 || \
		{ echo "make image: cannot pull the base image $(PYTHON_IMAGE) (load it, or name a local one: make image PYTHON_IMAGE=...)"; exit 1; }; \
	$(BIN)/python -m pip wheel --quiet --wheel-dir dist/wheelhouse dist/*.whl || \
		{ echo "make image: cannot gather the dependencies' wheels into dist/wheelhouse"; exit 1; }; \
	case $$builder in *buildah) set -- bud --format docker;; *) set -- build --format docker;; esac; \
	$$builder "$$@" --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) -f deploy/image/Containerfile -t $(IMAGE) .

# Ratios measured in one run (see bench/run.py); wrk is Debian's load generator.
bench: $(STAMP) postgres
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var build dist .pytest_cache .mypy_cache .ruff_cache
