# driftcheck: `make demo` and `make test` work on a fresh Debian machine with Swift installed.
SWIFT ?= swift
APT_PACKAGES := libsqlite3-dev libcurl4-openssl-dev sqlite3
BENCH_PACKAGES := wrk nginx-light

.PHONY: deps demo test lint format bench build clean

# Installs the system libraries the build links against, only when one is missing.
deps:
	@scripts/ensure-packages.sh $(APT_PACKAGES)

build: deps
	$(SWIFT) build

demo: deps
	$(SWIFT) build --product driftcheck
	.build/debug/driftcheck demo

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

lint:
	$(SWIFT) format lint --strict -r Sources Tests Package.swift

format:
	$(SWIFT) format -i -r Sources Tests Package.swift

bench: deps
	@scripts/ensure-packages.sh $(BENCH_PACKAGES)
	scripts/bench.sh

clean:
	rm -rf .build
