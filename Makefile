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

.PHONY: all build run test test-short test-rotate test-outage test-chaos vet deps bench bench-quick fuzz fuzz-quick docker clean

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

test: deps vet
	E2E_ROTATE_SECONDS=$(E2E_ROTATE_SECONDS) E2E_OUTAGE_SECONDS=$(E2E_OUTAGE_SECONDS) \
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

test-short: vet
	$(GO) test -race -short -count=1 ./...

bench: deps
	$(GO) run ./bench/cmd/lcbench -out bench/RESULTS.md

bench-quick: deps
	$(GO) run ./bench/cmd/lcbench -quick -out /tmp/logcapturer-bench-quick.md

# Run every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

fuzz-quick:
	$(MAKE) fuzz FUZZTIME=3s

docker: build
	cp /etc/ssl/certs/ca-certificates.crt docker/ca-certificates.crt
	docker build -t logcapturer:$(VERSION) -t logcapturer:latest -f Dockerfile .

clean:
	rm -rf bin data
