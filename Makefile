# Leadgraph: `make run` serves the API, `make test` runs the suite (on SQLite) and
# `make test-postgres` runs it again on PostgreSQL. All of them bootstrap .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
GRAPHIQL_DIR := $(VENV)/graphiql
GRAPHIQL_STAMP := $(GRAPHIQL_DIR)/.complete
# Node tools the suite drives, each with its own package.json and lock file: the graphql-http
# server audit, the graphql-ws client, an Apollo Gateway in front of the test server, Apollo
# Client subscribing through its GraphQLWsLink.
NODE_TOOLS := tests/http_audit tests/ws_client tests/federation_gateway tests/apollo_client
NODE_STAMPS := $(addsuffix /node_modules/.complete,$(NODE_TOOLS))
# The PostgreSQL server `make test-postgres` uses: it creates a fresh database there for each run
# and drops it afterwards (the database named here is only used to connect).
TEST_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
# The exact versions Strawberry's GraphiQL page pins (its integrity hashes match these files).
GRAPHIQL_FILES := react@18.2.0:umd/react.production.min.js \
	react-dom@18.2.0:umd/react-dom.production.min.js \
	js-cookie@3.0.5:dist/js.cookie.min.js \
	graphiql@3.8.3:graphiql.min.css \
	graphiql@3.8.3:graphiql.min.js \
	@graphiql/plugin-explorer@1.0.2:dist/style.css \
	@graphiql/plugin-explorer@1.0.2:dist/index.umd.js

.PHONY: run test test-deps test-postgres test-fast install graphiql schema lint clean bench \
	bench-fanout bench-webhooks bench-exports bench-duplicates bench-imports bench-aggregates \
	bench-retention bench-limits

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

# GraphiQL served from this machine: the npm registry's tarballs, unpacked once into .venv.
# Without npm the server falls back to the CDN page and says so in its log.
$(GRAPHIQL_STAMP):
	@if ! command -v npm >/dev/null; then echo "npm not found: GraphiQL will load its assets from a CDN"; exit 0; fi; \
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for spec in $(GRAPHIQL_FILES); do \
	  pkg=$${spec%%:*}; file=$${spec#*:}; key=$$(echo "$$pkg" | tr '/@' '__'); \
	  if [ ! -d "$$tmp/$$key" ]; then \
	    mkdir -p "$$tmp/$$key"; \
	    (cd "$$tmp/$$key" && npm pack --silent "$$pkg" >/dev/null && tar xzf *.tgz); \
	  fi; \
	  mkdir -p "$(GRAPHIQL_DIR)/$$pkg/$$(dirname $$file)"; \
	  cp "$$tmp/$$key/package/$$file" "$(GRAPHIQL_DIR)/$$pkg/$$file"; \
	done; \
	touch $@

graphiql: $(GRAPHIQL_STAMP)

# npm ci installs exactly each tool's lock file, once (the stamp is newer than both files).
%/node_modules/.complete: %/package.json %/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd $* && npm ci --silent --no-audit --no-fund && touch node_modules/.complete; \
	else echo "npm not found: the tests that drive $* will fail"; fi

# Debian's Chromium, which the web-form browser test drives headless (tests/test_forms.py).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	$$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; } || \
	echo "Could not install chromium (apt-get install chromium): the browser test will fail"

run: $(INSTALLED) $(GRAPHIQL_STAMP)
	$(PY) server.py serve

# What the suite needs installed (.ci/run installs it once, then runs both suites at once).
test-deps: $(INSTALLED) $(GRAPHIQL_STAMP) $(NODE_STAMPS) $(CHROMIUM)

# SQLite, whatever TEST_DATABASE_URL the environment holds.
test: test-deps
	env -u TEST_DATABASE_URL $(PY) -m pytest

test-postgres: test-deps
	TEST_DATABASE_URL='$(TEST_DATABASE_URL)' $(PY) -m tests.run_postgres

# The benchmark (issues 5 and 9): on PostgreSQL (database leadgraph_bench) and on SQLite, seeds,
# drives the server (1 and 2 workers), its floors and the peer, writes bench/results.md.
# BENCH_N, BENCH_ENGINES, BENCH_ROUNDS, BENCH_DURATION, BENCH_DATABASE_URL, ...: bench/README.md.
# bench/peer: PostGraphile 5, the peer measured on PostgreSQL (npm ci, once; it brings its node).
PEER_STAMP := bench/peer/node_modules/.complete
bench: $(INSTALLED) $(PEER_STAMP)
	$(PY) -m bench

# The fan-out benchmark (issue 10): live subscribers, writes at a fixed rate, commit-to-delivery
# latency and the server's memory; FANOUT_SUBSCRIBERS, FANOUT_RATE, FANOUT_SECONDS, ...:
# bench/fanout.py. bench/fanout: its client (the ws package).
FANOUT_STAMP := bench/fanout/node_modules/.complete
bench-fanout: $(INSTALLED) $(FANOUT_STAMP)
	$(PY) -m bench.fanout

# Webhook throughput (issue 10): a backlog drained to a receiver on 127.0.0.1, deliveries/s and
# the sender's RSS; SQLite unless BENCH_DATABASE_URL names a PostgreSQL database (bench/README.md).
bench-webhooks: $(INSTALLED)
	$(PY) -m bench.webhooks

# Export throughput (issue 11): full CSV and NDJSON exports of BENCH_EXPORTS_N leads (1,000,000)
# through HTTP, rows/s and the server's RSS; SQLite unless BENCH_DATABASE_URL names a PostgreSQL
# database (bench/README.md, "Exports").
bench-exports: $(INSTALLED)
	$(PY) -m bench.exports

# Duplicates (issue 11): lead(id) { duplicates } and possibleDuplicateLeads over HTTP at 1M
# leads; SQLite unless BENCH_DATABASE_URL names a PostgreSQL database (bench/README.md).
bench-duplicates: $(INSTALLED)
	$(PY) -m bench.duplicates

# Bulk import (issue 11): a 1,000,000-row CSV posted to a real server on a fresh SQLite database;
# rows/s, the server's RSS, Q1's latency meanwhile (bench/README.md, "Imports").
# BENCH_IMPORT_ROWS, BENCH_DATABASE_URL.
bench-imports: $(INSTALLED)
	$(PY) -m bench.imports

# Pipeline counts (issue 12): leads { aggregate } over HTTP at 1M leads, unfiltered and
# filtered, whole and each count alone; SQLite at bench/.data/aggregates.db (kept: reruns reuse
# it) unless BENCH_DATABASE_URL names a PostgreSQL database (bench/README.md).
bench-aggregates: $(INSTALLED)
	$(PY) -m bench.aggregates

# Retention (issue 13): ~100,000 unconverted leads deleted by a retention run on SQLite while a
# client reads and writes; the writer's longest hold and the requests' latency (bench/README.md).
bench-retention: $(INSTALLED)
	$(PY) -m bench.retention

# Cost and rate limits (issue 13): Q1 with them on and off, two servers, alternating rounds.
bench-limits: $(INSTALLED)
	$(PY) -m bench.limits

schema: $(INSTALLED)
	$(PY) server.py export-schema --output schema/schema.graphql

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(addsuffix /node_modules,$(NODE_TOOLS) bench/peer bench/fanout) leadgraph.db leadgraph.db-wal leadgraph.db-shm
