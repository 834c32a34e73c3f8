# Convenience front end to CMake.
#   make test   -- install missing packages, build (normal and ASan+UBSan), run every test twice
#                  and the demo page's end-to-end tests in Chromium (test-e2e)
#                  and the JavaScript client's tests in Node (test-web)
#   make build  -- normal release build in build/
#   make bench  -- build and run the trace benchmark on automerge-paper
#   make bench-load -- build and run the server load benchmark (bench/load.sh: 2,000 connections
#                  in 200 rooms at 20 edits/s per room, 10,000 idle; RUNS (3) runs each, medians)
#   make run    -- set up, build (Release) and the demo page, start the server in development mode on
#                  http://127.0.0.1:8080 with data in ./data (Ctrl-C stops it cleanly)
#   make fuzz   -- build the libFuzzer harnesses (clang) and run each FUZZ_SECONDS (30) s
#   make test-fuzz -- the same for FUZZ_CI_SECONDS (10) s each (part of make test)
JOBS ?= $(shell nproc)
TRACES ?= $(abspath tests/traces)

.PHONY: all setup build build-asan test test-normal test-asan test-fuzz bench run format clean fuzz

all: build

setup:
	./scripts/setup.sh

build: setup
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTANDEM_TRACES=$(TRACES) >/dev/null
	cmake --build build -j $(JOBS)

build-asan: setup
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTANDEM_SANITIZE=ON -DTANDEM_TRACES=$(TRACES) >/dev/null
	cmake --build build-asan -j $(JOBS)

test-normal: build
	cd build && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS)

test: test-normal test-asan test-fuzz test-web test-e2e

bench: build
	./build/bench/tandem-bench-trace $(TRACES)/sequential_traces/automerge-paper.json.gz

# Not part of make test: it takes minutes and measures (docs/PERFORMANCE.md, "Server load").
.PHONY: bench-load
bench-load: build
	BUILD=build ./bench/load.sh

# The demo page (server/web/demo): npm ci + vite build into server/web/demo/dist,
# which tandem serve uses as its web root when it exists (docs/CLIENT.md, "Demo page").
.PHONY: demo test-e2e
demo: setup
	cd server/web/demo && npm ci --no-audit --no-fund && npm run build

run: build demo
	./build/cli/tandem serve --dev --host 127.0.0.1 --port 8080 --data ./data

# End-to-end tests of the demo page in Debian's Chromium against build/'s tandem serve.
test-e2e: build demo
	cd server/web/demo && TANDEM_BIN=$(abspath build/cli/tandem) npm run e2e

# The JavaScript client (server/web/client, @tandem/client): npm ci, then its node:test
# suites (unit, and integration against build/'s tandem serve --dev; docs/CLIENT.md, "Tests").
.PHONY: test-web
test-web: build
	cd server/web/client && npm ci --no-audit --no-fund && TANDEM_BIN=$(abspath build/cli/tandem) npm test

FUZZ_SECONDS ?= 30
fuzz: setup
	./fuzz/run.sh $(FUZZ_SECONDS)

FUZZ_CI_SECONDS ?= 10
test-fuzz: setup
	./fuzz/run.sh $(FUZZ_CI_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan
