package main

import (
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/config"
)

// newLogger builds the agent's own structured logger from log.level and
// log.format. It writes to w (stderr), never to a file the agent could tail.
func newLogger(c config.LogConfig, w io.Writer) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(c.Level)
	if err != nil || c.Level == "" {
		lvl = zerolog.InfoLevel
	}
	out := w
	if c.Format == "console" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}
