package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/api"
	"github.com/logcapturer/log_capturer_go/config"
	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/ship/dlq"
	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/state"
)

// dlqDirName is the DLQ store's directory inside data_dir.
const dlqDirName = "dlq"

// dlqConfig maps the configuration onto the DLQ store's.
func dlqConfig(cfg *config.Config) dlq.Config {
	return dlq.Config{
		Dir:        filepath.Join(cfg.DataDir, dlqDirName),
		Retention:  cfg.DLQ.Retention,
		MaxBytes:   cfg.DLQ.MaxBytes.Bytes(),
		BatchBytes: int(cfg.Sinks.Loki.BatchBytes.Bytes()),
		MinBackoff: cfg.Sinks.Loki.MinBackoff,
		// A reprocess is an operator waiting for an answer: retries stay
		// short whatever the shipper's patience.
		MaxBackoff: max(min(cfg.Sinks.Loki.MaxBackoff, 30*time.Second), cfg.Sinks.Loki.MinBackoff),
	}
}

// dlqView adapts the DLQ store to the api package's DLQ interfaces.
type dlqView struct {
	store *dlq.Store
	sinks []ship.Sink
	wal   dlq.WALSource
}

func (v dlqView) DLQStats() any { return v.store.Stats() }

func (v dlqView) Reprocess(ctx context.Context, r api.ReprocessRequest) (any, error) {
	res, err := v.store.Reprocess(ctx, dlqRequest(r), v.sinks, v.wal)
	switch {
	case errors.Is(err, dlq.ErrInvalidRequest):
		return nil, fmt.Errorf("%w: %w", api.ErrInvalid, err)
	case errors.Is(err, dlq.ErrRequestIDReused):
		return nil, fmt.Errorf("%w: %w", api.ErrConflict, err)
	case err != nil:
		return nil, err
	}
	return res, nil
}

func dlqRequest(r api.ReprocessRequest) dlq.Request {
	return dlq.Request{ID: r.ID, Sink: r.Sink, Reason: r.Reason, Letters: r.IDs, FromIndex: r.FromIndex,
		ToIndex: r.ToIndex, Since: r.Since, Until: r.Until, Limit: r.Limit, DryRun: r.DryRun}
}

const dlqUsage = `Usage: logcapturer dlq ls|show|reprocess [flags]    (the agent must be stopped)
  ls         list dead letters            [--reason R] [--sink S] [--json]
  show ID    one letter                   [--lines] [--json]
  reprocess  send again, once per --id    --id REQID [--dry-run] [--json] [--sink S] [--limit N]
             dead letters:                [--reason R] [--letter N ...]
             or a WAL range (delivered or not):
                                          [--from-index A] [--to-index B] [--since T] [--until T]
             T is RFC 3339 (2024-05-01T12:00:00Z) or a duration ago (90m; resolved
             at the first run of an --id, so repeating the command repeats it).
Common: --config FILE (data_dir and sinks come from it), --data-dir DIR (overrides data_dir).
These open the agent's state file; while the agent runs, use POST /dlq/reprocess and GET /dlq/stats.
`

func cmdDLQ(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, dlqUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile := fs.String("config", "", "main configuration file (default: $SSW_CONFIG_FILE, else the embedded default)")
	dataDir := fs.String("data-dir", "", "the agent's data_dir (overrides the configuration)")
	asJSON := fs.Bool("json", false, "machine-readable output")
	reason := fs.String("reason", "", "only letters of this reason")
	sink := fs.String("sink", "", "only letters of this sink; a replay sends to this sink only")
	lines := fs.Bool("lines", false, "show: print the letter's lines")
	reqID := fs.String("id", "", "reprocess: request id; repeating it sends nothing again")
	dryRun := fs.Bool("dry-run", false, "reprocess: report what would be sent")
	limit := fs.Int("limit", 0, "reprocess: at most this many letters (or WAL entries)")
	fromIdx := fs.Uint64("from-index", 0, "reprocess: first WAL index of a replay")
	toIdx := fs.Uint64("to-index", 0, "reprocess: last WAL index of a replay")
	since := fs.String("since", "", "reprocess: replay lines from this time")
	until := fs.String("until", "", "reprocess: replay lines before this time")
	var letters []uint64
	fs.Func("letter", "reprocess: this letter id (repeatable)", func(v string) error {
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("not a letter id: %q", v)
		}
		letters = append(letters, id)
		return nil
	})
	// Allow "show ID --lines" as well as "show --lines ID".
	rest := args[1:]
	var positional []string
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}

	cfg, err := config.Load(config.LoadOptions{ConfigFile: *cfgFile})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	logger := newLogger(cfg.Log, stderr)

	var run func(*dlq.Store) int
	switch sub {
	case "ls":
		run = func(s *dlq.Store) int {
			return dlqLs(s, dlq.Filter{Reason: *reason, Sink: *sink}, *asJSON, stdout, stderr)
		}
	case "show":
		if len(positional) != 1 {
			fmt.Fprintln(stderr, "logcapturer dlq show: one letter id expected")
			return 2
		}
		id, err := strconv.ParseUint(positional[0], 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "logcapturer dlq show: not a letter id: %q\n", positional[0])
			return 2
		}
		run = func(s *dlq.Store) int { return dlqShow(s, id, *lines, *asJSON, stdout, stderr) }
	case "reprocess":
		now := time.Now()
		req := dlq.Request{ID: *reqID, Sink: *sink, Reason: *reason, Letters: letters, FromIndex: *fromIdx,
			ToIndex: *toIdx, Limit: *limit, DryRun: *dryRun}
		if req.Since, err = parseWhen(*since, now); err != nil {
			fmt.Fprintln(stderr, "logcapturer dlq reprocess: --since:", err)
			return 2
		}
		if req.Until, err = parseWhen(*until, now); err != nil {
			fmt.Fprintln(stderr, "logcapturer dlq reprocess: --until:", err)
			return 2
		}
		relative := isRelative(*since) || isRelative(*until)
		run = func(s *dlq.Store) int {
			if relative && req.ID != "" {
				// "90m ago" moves with the clock: a repeat of the id means
				// the times its first run resolved.
				if prev, ok, err := s.StoredRequest(req.ID); err == nil && ok {
					req.Since, req.Until = prev.Since, prev.Until
				}
			}
			return dlqReprocess(s, cfg, req, *asJSON, logger, stdout, stderr)
		}
	default:
		fmt.Fprintf(stderr, "logcapturer dlq: unknown subcommand %q\n%s", sub, dlqUsage)
		return 2
	}
	if len(positional) > 0 && sub != "show" {
		fmt.Fprintf(stderr, "logcapturer dlq %s: unexpected argument %q\n", sub, positional[0])
		return 2
	}

	st, err := state.Open(filepath.Join(cfg.DataDir, state.DefaultFileName), state.Options{}, logger)
	if errors.Is(err, state.ErrLocked) {
		fmt.Fprintf(stderr, "logcapturer dlq: %v\nThe agent is running on %s: stop it first, or use its API "+
			"(GET /dlq/stats, POST /dlq/reprocess).\n", err, cfg.DataDir)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer dlq:", err)
		return 1
	}
	defer func() {
		if err := st.Close(); err != nil {
			fmt.Fprintln(stderr, "logcapturer dlq:", err)
		}
	}()
	s, err := dlq.Open(dlqConfig(cfg), st, logger, nil)
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer dlq:", err)
		return 1
	}
	for _, r := range s.Repairs() {
		fmt.Fprintf(stderr, "repaired: %s letter %d %s %s\n", r.Kind, r.Letter, r.File, r.Detail)
	}
	return run(s)
}

func isRelative(v string) bool {
	if v == "" {
		return false
	}
	_, err := time.Parse(time.RFC3339Nano, v)
	return err != nil
}

// parseWhen reads RFC 3339 or a duration meaning "that long before now".
func parseWhen(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(strings.TrimPrefix(v, "-"))
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a positive duration", v)
	}
	return now.Add(-d), nil
}

func dlqLs(s *dlq.Store, f dlq.Filter, asJSON bool, stdout, stderr io.Writer) int {
	ls := s.Letters(f)
	if asJSON {
		return writeJSON(stdout, stderr, map[string]any{"letters": letterViews(ls), "stats": s.Stats()})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ID\tCREATED\tSINK\tREASON\tWAL FIRST\tWAL LAST\tLINES\tBYTES\tATTEMPTS\tSTATUS\t")
	for _, l := range ls {
		status := l.Status.String()
		if l.PartiallyAccepted {
			status += ",partial"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", l.ID,
			time.Unix(0, l.CreatedUnixNano).UTC().Format(time.RFC3339), l.Sink, l.Reason, l.First, l.Last,
			l.Lines, l.Bytes, l.Attempts, status)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintln(stderr, "logcapturer dlq ls:", err)
		return 1
	}
	st := s.Stats()
	fmt.Fprintf(stdout, "pending: %d letters, %d lines, %d bytes (max %d); reprocessed: %d\n",
		st.Pending.Letters, st.Pending.Lines, st.Pending.Bytes, st.MaxBytes, st.Reprocessed)
	return 0
}

// letterView is the JSON shape of a letter for the CLI.
type letterView struct {
	ID                uint64    `json:"id"`
	Sink              string    `json:"sink"`
	Reason            string    `json:"reason"`
	Detail            string    `json:"detail,omitempty"`
	First             uint64    `json:"wal_first"`
	Last              uint64    `json:"wal_last"`
	Created           time.Time `json:"created"`
	Updated           time.Time `json:"updated"`
	MinTime           time.Time `json:"min_time"`
	MaxTime           time.Time `json:"max_time"`
	Attempts          int       `json:"attempts"`
	Lines             int       `json:"lines"`
	Bytes             int64     `json:"bytes"`
	File              string    `json:"file"`
	PartiallyAccepted bool      `json:"partially_accepted"`
	Status            string    `json:"status"`
	LastError         string    `json:"last_error,omitempty"`
}

func letterViews(ls []state.DLQLetter) []letterView {
	out := make([]letterView, 0, len(ls))
	for _, l := range ls {
		ts := func(ns int64) time.Time { return time.Unix(0, ns).UTC() }
		out = append(out, letterView{ID: l.ID, Sink: l.Sink, Reason: l.Reason, Detail: l.Detail, First: l.First,
			Last: l.Last, Created: ts(l.CreatedUnixNano), Updated: ts(l.UpdatedUnixNano), MinTime: ts(l.MinTime),
			MaxTime: ts(l.MaxTime), Attempts: l.Attempts, Lines: l.Lines, Bytes: l.Bytes, File: l.File,
			PartiallyAccepted: l.PartiallyAccepted, Status: l.Status.String(), LastError: l.LastError})
	}
	return out
}

type entryView struct {
	Index    uint64            `json:"wal_index"`
	Time     time.Time         `json:"ts"`
	Labels   string            `json:"labels"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Flags    string            `json:"flags,omitempty"`
	Source   string            `json:"source"`
	Offset   uint64            `json:"offset"`
	Line     string            `json:"line"`
}

func dlqShow(s *dlq.Store, id uint64, withLines, asJSON bool, stdout, stderr io.Writer) int {
	l, ok := s.Letter(id)
	if !ok {
		fmt.Fprintf(stderr, "logcapturer dlq show: no letter %d\n", id)
		return 1
	}
	var entries []entryView
	if withLines && l.Status == state.DLQPending {
		des, err := s.Entries(id)
		if err != nil {
			fmt.Fprintln(stderr, "logcapturer dlq show:", err)
			return 1
		}
		for _, e := range des {
			ev := entryView{Index: e.Index, Time: time.Unix(0, e.Time).UTC(), Labels: e.Labels.String(),
				Flags: e.Flags.String(), Source: e.Source, Offset: e.Offset, Line: string(e.Line)}
			if len(e.Metadata) > 0 {
				ev.Metadata = map[string]string{}
				for _, m := range e.Metadata {
					ev.Metadata[m.Name] = m.Value
				}
			}
			entries = append(entries, ev)
		}
	}
	v := letterViews([]state.DLQLetter{l})[0]
	if asJSON {
		return writeJSON(stdout, stderr, map[string]any{"letter": v, "entries": entries})
	}
	fmt.Fprintf(stdout, "letter %d: sink %s, reason %s, status %s\n", v.ID, v.Sink, v.Reason, v.Status)
	fmt.Fprintf(stdout, "  wal range    %d-%d\n  created      %s\n  lines        %d (%s .. %s)\n  bytes        %d (%s)\n  attempts     %d\n",
		v.First, v.Last, v.Created.Format(time.RFC3339Nano), v.Lines, v.MinTime.Format(time.RFC3339Nano),
		v.MaxTime.Format(time.RFC3339Nano), v.Bytes, v.File, v.Attempts)
	if v.PartiallyAccepted {
		fmt.Fprintln(stdout, "  partially accepted: some of these lines may be stored at the receiver already")
	}
	if v.Detail != "" {
		fmt.Fprintf(stdout, "  detail       %s\n", v.Detail)
	}
	if v.LastError != "" {
		fmt.Fprintf(stdout, "  last error   %s\n", v.LastError)
	}
	for _, e := range entries {
		fmt.Fprintf(stdout, "%d %s %s %s\n", e.Index, e.Time.Format(time.RFC3339Nano), e.Labels, e.Line)
	}
	if withLines && l.Status != state.DLQPending {
		fmt.Fprintln(stdout, "(the letter was reprocessed: its lines were released)")
	}
	return 0
}

func dlqReprocess(s *dlq.Store, cfg *config.Config, req dlq.Request, asJSON bool, logger zerolog.Logger, stdout, stderr io.Writer) int {
	sinks, closeSinks, err := dlqSinks(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer dlq reprocess:", err)
		return 1
	}
	defer closeSinks()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := s.Reprocess(ctx, req, sinks, dlq.DirSource(walDir(cfg.DataDir)))
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer dlq reprocess:", err)
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "interrupted: run the same command again (same --id %s) to carry on\n", req.ID)
		}
		if errors.Is(err, dlq.ErrInvalidRequest) || errors.Is(err, dlq.ErrRequestIDReused) {
			return 2
		}
		return 1
	}
	logger.Debug().Str("request", req.ID).Msg("reprocess finished")
	if asJSON {
		if code := writeJSON(stdout, stderr, res); code != 0 {
			return code
		}
	} else {
		what := "sent"
		if res.DryRun {
			what = "would send"
		}
		switch {
		case res.Repeated:
			fmt.Fprintf(stdout, "request %s was already carried out at %s; nothing sent now. Its outcome:\n",
				req.ID, res.FinishedAt.Format(time.RFC3339))
		case res.Resumed:
			fmt.Fprintf(stdout, "request %s resumed after an interruption\n", req.ID)
		}
		fmt.Fprintf(stdout, "%s: %s %d lines in %d batches; %d lines failed\n", res.Mode, what, res.LinesSent, res.Batches, res.LinesFailed)
		for _, o := range res.Letters {
			fmt.Fprintf(stdout, "  letter %d (%s, %s, %d lines): %s %s\n", o.ID, o.Sink, o.Reason, o.Lines, o.Status, o.Error)
		}
		for _, sp := range res.Unavailable {
			fmt.Fprintf(stdout, "  unavailable %d-%d: %s\n", sp.From, sp.To, sp.Why)
		}
		for _, sp := range res.Failed {
			fmt.Fprintf(stdout, "  failed %d-%d to %s (%d lines): %s\n", sp.From, sp.To, sp.Sink, sp.Lines, sp.Why)
		}
	}
	if res.LinesFailed > 0 || res.FailedLetters > 0 {
		return 1
	}
	return 0
}

// dlqSinks builds the configured sinks for an offline reprocess. Only what
// sending needs is set up: no shipper, no limits check (the receiver
// decides; an operator reprocesses after changing its limits).
func dlqSinks(cfg *config.Config) ([]ship.Sink, func(), error) {
	var sinks []ship.Sink
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	c := cfg.Sinks
	if c.Loki.Enabled {
		client, err := loki.NewClient(loki.ClientConfig{
			URL:                c.Loki.URL,
			TenantID:           c.Loki.TenantID,
			Timeout:            c.Loki.Timeout,
			Concurrency:        1,
			BasicAuthUser:      c.Loki.BasicAuth.Username,
			BasicAuthPassword:  c.Loki.BasicAuth.Password,
			BearerToken:        c.Loki.BearerToken,
			CAFile:             c.Loki.TLS.CAFile,
			InsecureSkipVerify: c.Loki.TLS.InsecureSkipVerify,
			UserAgent:          "logcapturer/" + version,
		})
		if err != nil {
			return nil, closeAll, err
		}
		closers = append(closers, client.Close)
		sinks = append(sinks, ship.NewLokiSink(client, ship.LokiSinkConfig{Labels: c.Loki.Labels}))
	}
	if c.File.Enabled {
		fs, err := ship.NewFileSink(ship.FileSinkConfig{Path: c.File.Path, MaxBytes: c.File.MaxBytes.Bytes(), MaxFiles: c.File.MaxFiles})
		if err != nil {
			closeAll()
			return nil, func() {}, err
		}
		closers = append(closers, func() { _ = fs.Close() })
		sinks = append(sinks, fs)
	}
	return sinks, closeAll, nil
}
