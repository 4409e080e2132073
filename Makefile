# log_capturer_go — build, run, test, benchmark.
#
# The two commands a new operator needs:
#   make run    build and run the agent on configs/config.yaml (works with no Loki:
#               lines go to data/sink/logs.jsonl unless LOKI_URL is set)
#   make test   install the test receiver (VictoriaLogs) if missing, vet, and run
#               every test with the race detector

GO        ?= go
GOPATH    := $(shell $(GO) env GOPATH)
BIN       := bin/logcapturer
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
VL_VERSION := v1.52.1
FUZZTIME  ?= 20s

export PATH := $(PATH):/usr/sbin:/sbin:$(GOPATH)/bin

.PHONY: all build run test test-short test-rotate test-outage test-chaos soak vet deps bench bench-quick bench-files bench-ingest fuzz fuzz-quick docker clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/logcapturer

run: build
	./$(BIN) run --config configs/config.yaml

deps:
	VL_VERSION=$(VL_VERSION) bash scripts/deps.sh

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# CI-length versions of the long end-to-end runs; the full ones have their own targets.
E2E_ROTATE_SECONDS ?= 15
E2E_OUTAGE_SECONDS ?= 20
E2E_SOAK_DURATION ?= 90s

test: deps vet
	E2E_ROTATE_SECONDS=$(E2E_ROTATE_SECONDS) E2E_OUTAGE_SECONDS=$(E2E_OUTAGE_SECONDS) \
	  E2E_SOAK_DURATION=$(E2E_SOAK_DURATION) \
	  $(GO) test -race -count=1 -timeout 25m ./...

# Long runs (duration in seconds as a parameter).
ROTATE_SECONDS ?= 60
OUTAGE_SECONDS ?= 600
test-rotate: deps
	E2E_ROTATE_SECONDS=$(ROTATE_SECONDS) $(GO) test -count=1 -timeout 60m -v -run TestRotateLogrotate ./e2e/

test-outage: deps
	E2E_OUTAGE_SECONDS=$(OUTAGE_SECONDS) $(GO) test -count=1 -timeout 90m -v -run TestShipOutage ./e2e/

test-chaos: deps
	$(GO) test -count=1 -timeout 30m -v -run 'TestCrashAndOutage|TestRestartNoDuplicates' ./e2e/

# Soak (docs/runbook-soak.md): the agent under a steady load with rotations,
# file churn and one receiver outage for SOAK_DURATION (a Go duration, e.g.
# make soak SOAK_DURATION=24h), failing on growth of goroutines, FDs, heap or
# RSS and on any line lost. The go test timeout is 1.25 x SOAK_DURATION + 20m.
# SOAK_DIR keeps the sample table (samples.csv), goroutine and heap profiles
# of both ends of the measured time, and the test output (test.log).
SOAK_DURATION ?= 1h
SOAK_DIR ?= $(CURDIR)/data/soak-$(SOAK_DURATION)
soak: deps
	@timeout=$$(echo '$(SOAK_DURATION)' | awk '{ s = $$0; t = 0; \
	  while (match(s, /^[0-9.]+(ms|h|m|s)/)) { u = substr(s, 1, RLENGTH); n = u + 0; \
	    if (u ~ /ms$$/) t += n / 1000; else if (u ~ /h$$/) t += n * 3600; else if (u ~ /m$$/) t += n * 60; else t += n; \
	    s = substr(s, RLENGTH + 1) } \
	  if (s != "" || t == 0) print "bad"; else printf "%ds\n", t + t / 4 + 1200 }'); \
	if [ "$$timeout" = bad ]; then echo "SOAK_DURATION=$(SOAK_DURATION): want a Go duration such as 90s, 30m or 24h" >&2; exit 2; fi; \
	mkdir -p '$(SOAK_DIR)' && echo "soak $(SOAK_DURATION), go test -timeout $$timeout, record in $(SOAK_DIR)"; \
	{ E2E_SOAK_DURATION=$(SOAK_DURATION) E2E_SOAK_CSV='$(SOAK_DIR)/samples.csv' E2E_SOAK_PROFILES='$(SOAK_DIR)' \
	  $(GO) test -count=1 -timeout $$timeout -v -run '^TestSoak$$' ./e2e/ 2>&1; echo $$? > '$(SOAK_DIR)/rc'; } \
	  | tee '$(SOAK_DIR)/test.log'; exit $$(cat '$(SOAK_DIR)/rc')

test-short: vet
	$(GO) test -race -short -count=1 ./...

bench: deps
	$(GO) run ./bench/cmd/lcbench -out bench/RESULTS.md

bench-quick: deps
	$(GO) run ./bench/cmd/lcbench -quick -out /tmp/logcapturer-bench-quick.md

# End to end with the same lines spread over 1, 100 and 2,000 files, and with a multiline
# (java preset) route; both are also part of `make bench`.
bench-files: deps
	$(GO) run ./bench/cmd/lcbench -skip-wal -skip-e2e -skip-latency -e2e-files 1,100,2000 -e2e-multiline 9 -out /tmp/logcapturer-bench-files.md

# The file source's per-line benchmarks: read, frame, multiline, tailer -> WAL (fsync on).
bench-ingest:
	$(GO) test -run XXX -bench BenchmarkIngest -count 3 ./ingest/file/

# Run every fuzz target for FUZZTIME each. On a loaded box Go's fuzz engine can
# fail with "context deadline exceeded" when a worker is slow to stop, with no
# failing input: that target is run once more; a real failing input fails at once.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    out=$$($(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg 2>&1); rc=$$?; echo "$$out"; \
	    if [ $$rc -ne 0 ]; then \
	      if echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q -i 'failing input'; then \
	        echo "== $$pkg $$f: fuzz engine stop timeout, no failing input; running it once more"; \
	        $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	      else exit 1; fi; \
	    fi; \
	  done; \
	done

fuzz-quick:
	$(MAKE) fuzz FUZZTIME=3s

docker: build
	cp /etc/ssl/certs/ca-certificates.crt docker/ca-certificates.crt
	docker build -t logcapturer:$(VERSION) -t logcapturer:latest -f Dockerfile .

clean:
	rm -rf bin data
