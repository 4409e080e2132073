package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/metrics"
	"syscall"
	"time"

	"github.com/logcapturer/log_capturer_go/config"
)

// cmdRun implements `run [--config FILE]`.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile := fs.String("config", "", "main configuration file (default: $SSW_CONFIG_FILE, else the embedded default)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(config.LoadOptions{ConfigFile: *cfgFile})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	logger := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if os.Getenv("GOMEMLIMIT") == "" && os.Getenv("GOGC") == "" {
		mctx, mstop := context.WithCancel(context.Background())
		defer mstop()
		go governMemory(mctx, memoryFloor, 250*time.Millisecond)
	} else {
		logger.Info().Str("GOMEMLIMIT", os.Getenv("GOMEMLIMIT")).Str("GOGC", os.Getenv("GOGC")).
			Msg("GC tuned by the environment; the default soft memory limit is off")
	}
	if addr := os.Getenv(pprofEnv); addr != "" {
		pctx, pstop := context.WithCancel(context.Background())
		defer pstop()
		go func() {
			if err := servePprof(pctx, addr, logger); err != nil {
				logger.Error().Err(err).Msg("pprof listener")
			}
		}()
	}
	a, err := newAgent(cfg, logger)
	if err != nil {
		logger.Error().Err(err).Msg("start-up failed")
		return 1
	}
	if err := a.run(ctx); err != nil {
		logger.Error().Err(err).Msg("logcapturer stopped on error")
		return 1
	}
	return 0
}

// memoryFloor is the agent's default soft memory limit (Go heap, stacks and
// runtime metadata, as runtime/debug.SetMemoryLimit counts them). The
// process's RSS adds the mapped binary (~11 MiB); the target is a peak RSS
// of 40 MiB at 50,000 lines/s, where the live heap is 8-13 MiB.
const memoryFloor = 28 << 20

// memoryOverhead approximates what the runtime holds besides heap objects
// (stacks, metadata, fragmentation).
const memoryOverhead = 4 << 20

// memoryLimit is the soft limit for a live heap of live bytes: the floor,
// raised so that the heap may always grow by at least 3/4 of what is live
// before a collection. A fixed low limit makes the GC run back to back once
// the working set nears it (many files, a large dedup window: the live heap
// has been seen above 100 MiB); this one costs at most ~4/3 of the GC work
// of GOGC=100 there, and binds only while the live heap is small.
func memoryLimit(live, floor int64) int64 {
	return max(floor, live+live*3/4+memoryOverhead)
}

// governMemory keeps the soft memory limit at memoryLimit(live heap) until
// ctx ends, looking every interval. It runs only when neither GOMEMLIMIT nor
// GOGC is set: an operator who sets either tunes the GC themselves
// (GOMEMLIMIT=off restores Go's default, no limit).
func governMemory(ctx context.Context, floor int64, every time.Duration) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	tick := time.NewTicker(every)
	defer tick.Stop()
	set := int64(-1)
	for {
		metrics.Read(sample)
		var live int64
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = int64(sample[0].Value.Uint64())
		}
		if limit := memoryLimit(live, floor); limit != set {
			debug.SetMemoryLimit(limit)
			set = limit
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
