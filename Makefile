# abusedweb: the two set-up commands are `make demo` and `make test`.
# Everything the tests need (Rust targets, Python venvs, cargo tools) is
# installed by the targets below; nothing is expected on the machine but
# rustup/cargo, python3 and the tools of a Debian base image.

SHELL := /bin/bash
CARGO ?= cargo
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
TARBALL := dist/abusedweb-$(VERSION).tar.gz
TARBALL_ONPREM := dist/abusedweb-$(VERSION)-onprem.tar.gz

.PHONY: all build demo test check unit cross-test package appinspect reproducible bench bench-quick fuzz fuzz-smoke deny clean

all: build

build:
	$(CARGO) build --release --locked

## Run the command as splunkd would on an embedded sample of Sysmon EventID 22 events.
demo: build
	$(CARGO) run --release --locked --example demo -- target/release/abusedweb

## Every test: style, lints, unit + integration + parity tests, the same protocol
## tests against the aarch64 (qemu) and Windows (Wine) programs, the packaged apps
## (AppInspect, installed-app exchange, reproducibility), fuzz smoke runs, cargo-deny.
test: check package unit cross-test appinspect reproducible fuzz-smoke deny
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' target/unit-tests.log

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	mkdir -p target
	set -o pipefail; $(CARGO) test --locked --all-targets 2>&1 | tee target/unit-tests.log

## Protocol (and parity) tests against the cross-built programs, under emulation;
## appends to target/unit-tests.log, so run after `unit`.
cross-test: package
	scripts/cross_test.sh

## Both tarballs: dist/abusedweb-<version>.tar.gz (Splunk Cloud) and -onprem.tar.gz.
package:
	scripts/package.sh

appinspect: package
	scripts/appinspect.sh $(TARBALL)
	scripts/appinspect.sh --onprem $(TARBALL_ONPREM)

## Two builds of the same commit give the same bytes, for both tarballs.
reproducible: package
	scripts/check_reproducible.sh

## Benchmarks side by side (cat, abusedweb, the splunklib peer; distributed=true against the
## search-head-only run; list=escu_v13, list=extended and 100,000 patterns against the six); writes benches/RESULTS.md.
bench:
	python3 benches/run.py
	python3 benches/distributed.py --no-build
	python3 benches/lists.py --no-build
	python3 benches/scan.py --no-build

bench-quick:
	python3 benches/run.py --quick --no-profile --no-micro
	python3 benches/distributed.py --quick --no-build
	python3 benches/lists.py --quick --no-build
	python3 benches/scan.py --quick --no-build

fuzz:
	scripts/fuzz.sh long

fuzz-smoke:
	scripts/fuzz.sh smoke

deny:
	scripts/deny.sh

clean:
	$(CARGO) clean
	rm -rf dist
