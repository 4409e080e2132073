package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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
