# ferry's task runner; CI runs `make test` through .ci/run.
CARGO ?= cargo

.PHONY: demo test lint unit build bench fuzz deps clean

## demo: the whole job end to end on this machine (installs what it needs)
demo: deps
	$(CARGO) build --release -p ferry-cli -p ferry-testkit
	scripts/demo.sh target/release

## test: formatting, lints, and every test (unit, integration, interop)
test: deps lint
	$(CARGO) test --workspace --doc
	$(CARGO) test --workspace --all-targets

## fuzz: fuzz the layout reader and manifest parser, FUZZ_SECONDS each (see scripts/fuzz.sh)
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

build:
	$(CARGO) build --workspace

deps:
	scripts/install-deps.sh

## bench: ferry vs skopeo vs the raw HTTP floor on ~1 GB (docs/benchmarks.md);
## BENCH_ARGS passes options to scripts/bench.sh, e.g. BENCH_ARGS="--scale 0.2"
bench: deps
	$(CARGO) build --release -p ferry-cli -p ferry-testkit
	$(CARGO) build --release -p ferry-lanes --example lanes_speed
	scripts/bench.sh --no-build --bin target/release $(BENCH_ARGS)

clean:
	$(CARGO) clean
