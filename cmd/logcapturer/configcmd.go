package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/logcapturer/log_capturer_go/config"
)

// cmdConfig implements `config check [FILE]`.
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "Usage: logcapturer config check [FILE]")
		return 2
	}
	file := ""
	if len(args) > 1 {
		file = args[1]
	}
	cfg, err := config.Load(config.LoadOptions{ConfigFile: file})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	src := cfg.Origin.ConfigFile
	if src == "" {
		src = "embedded default"
	}
	fmt.Fprintf(stdout, "OK: %s\n%s\n", src, cfg.Summary())
	return 0
}

// cmdHealth implements `health`: exit 0 when /health answers 200.
func cmdHealth(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8401", "the agent's server.listen address")
	timeout := fs.Duration("timeout", 3*time.Second, "request timeout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+"/health", nil)
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer health:", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer health:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(stdout, "%s", body)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
