# driftcheck: `make demo` and `make test` work on a fresh Debian machine with Swift installed.
SWIFT ?= swift
STORE ?= sqlite
APT_PACKAGES := curl libsqlite3-dev libcurl4-openssl-dev zlib1g-dev libbrotli-dev libxml2-dev sqlite3 openssl libpq-dev
# Real peers the tests check against: WireMock's jar (PyPI `wiremock`, run with Java 17), httpbin,
# gRPC servers and clients (grpcio), and hyper-h2 (an h2c server for HTTP/1.1 clients).
PYTHON_PACKAGES := wiremock httpbin gunicorn mitmproxy brotli h2 grpcio:grpc grpcio-tools:grpc_tools \
	grpcio-reflection:grpc_reflection
BENCH_PACKAGES := wrk nginx-light
# The team store's tests start their own PostgreSQL servers (initdb, pg_ctl) and generate TLS
# certificates for them; nghttpd is a real h2c upstream for HTTP/1.1 clients.
PEER_PACKAGES := postgresql openssl nghttp2-server

.PHONY: deps peers demo test eval lint format bench bench-compare bench-push bench-grpc bench-store callgrind soak fuzz build clean

# Installs the system libraries the build links against, only when one is missing.
deps:
	@scripts/ensure-packages.sh $(APT_PACKAGES)

# Python peers and a JRE, only when missing.
peers:
	@command -v java >/dev/null 2>&1 || scripts/ensure-packages.sh openjdk-17-jre-headless
	@scripts/ensure-packages.sh $(PEER_PACKAGES)
	@scripts/ensure-python.sh $(PYTHON_PACKAGES)

build: deps
	$(SWIFT) build

demo: deps
	$(SWIFT) build --product driftcheck
	.build/debug/driftcheck demo

# Suites that load the machine (real PostgreSQL servers, 60,000-exchange pushes, gRPC floods,
# 3,000 gRPC calls through an in-process proxy)
# run after the others, so that their load never meets the timing of the proxy's socket tests.
HEAVY_SUITES := TeamStoreTests|GRPCRecordingTests|GRPCComparisonTests|HostileHTTP2Tests|HTTP2BackPressureTests

test: deps peers
	$(SWIFT) build --build-tests
	SWIFT=$(SWIFT) scripts/test.sh skip '$(HEAVY_SUITES)'
	SWIFT=$(SWIFT) scripts/test.sh filter '$(HEAVY_SUITES)'

# driftcheck's findings on real servers (datasette, jupyter-server from PyPI): seeded mutations of the
# exported mocks, recall and precision per drift kind. Results in .build-eval/results.json.
eval: deps
	$(SWIFT) build --product driftcheck
	scripts/eval/eval.sh $(EVAL_ARGS)

lint:
	$(SWIFT) format lint --strict -r Sources Tests Package.swift

format:
	$(SWIFT) format -i -r Sources Tests Package.swift

# Installs the peers it compares against (nginx, wrk, mitmproxy, the WireMock jar and Java).
bench: deps peers
	@scripts/ensure-packages.sh $(BENCH_PACKAGES)
	scripts/bench.sh
	scripts/bench-grpc.sh

# STORE=postgres also compares from a PostgreSQL server started for the run.
bench-compare: deps
	STORE=$(STORE) scripts/bench-compare.sh

# 1,000,000 exchanges pushed to a PostgreSQL server started for the run, pushed again, pulled back.
bench-push: deps
	@scripts/ensure-packages.sh postgresql
	scripts/bench-push.sh

# h2c calls through driftcheck and nginx grpc_pass to the same upstream (h2load, nghttpd).
bench-grpc: deps
	scripts/bench-grpc.sh

bench-store: deps
	scripts/bench-store.sh

# Store writer instructions (callgrind) now vs an earlier commit: BASE=<commit>.
callgrind: deps
	scripts/callgrind-writer.sh $(BASE)

soak: deps
	@scripts/ensure-packages.sh $(BENCH_PACKAGES)
	scripts/soak.sh

# libFuzzer over the parsers and the differ: SECONDS_PER_TARGET=600 by default.
fuzz:
	scripts/fuzz.sh

clean:
	rm -rf .build
