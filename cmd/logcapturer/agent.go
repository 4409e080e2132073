package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/api"
	"github.com/logcapturer/log_capturer_go/config"
	"github.com/logcapturer/log_capturer_go/ingest"
	"github.com/logcapturer/log_capturer_go/ingest/file"
	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/ship/dlq"
	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/state"
	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// positionsCursor is the WAL cursor that keeps entries not yet covered by a
// positions checkpoint: start-up recovers positions from them (contract 2).
const positionsCursor = "positions"

// agent is the wiring: it owns every component and their order of start and
// stop. Components do not know each other; agent adapts them.
type agent struct {
	cfg    *config.Config
	logger zerolog.Logger
	reg    *prometheus.Registry

	store    *state.Store
	log      *wal.Log
	source   *file.Source // nil when files_config.enabled is false
	shippers []*ship.Shipper
	sinks    []ship.Sink // the shippers' sinks, for DLQ reprocessing
	dlq      *dlq.Store
	closers  []func() error
	server   *api.Server
	cursors  *cursorFlusher
	started  time.Time
}

// newAgent opens the state and the WAL, recovers positions, and builds the
// sources, shippers and API. It starts nothing. On error it releases what it
// opened.
func newAgent(cfg *config.Config, logger zerolog.Logger) (_ *agent, err error) {
	a := &agent{cfg: cfg, logger: logger, reg: prometheus.NewRegistry(), started: time.Now()}
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()
	if err := api.RegisterProcessMetrics(a.reg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	a.store, err = state.Open(filepath.Join(cfg.DataDir, state.DefaultFileName), state.Options{Registerer: a.reg}, logger)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.store.Close)

	a.dlq, err = dlq.Open(dlqConfig(cfg), a.store, logger, a.reg)
	if err != nil {
		return nil, err
	}

	a.log, err = wal.Open(filepath.Join(cfg.DataDir, "wal"), wal.Config{
		SegmentSize:   cfg.WAL.SegmentSize.Bytes(),
		MaxSize:       cfg.WAL.MaxSize.Bytes(),
		SyncInterval:  cfg.WAL.SyncInterval,
		SyncBytes:     cfg.WAL.SyncBytes.Bytes(),
		Retention:     cfg.WAL.Retention,
		SegmentCache:  cfg.WAL.SegmentCache,
		MaxEntryBytes: int(cfg.WAL.MaxEntryBytes.Bytes()),
	}, logger, a.reg)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.log.Close)

	saved, ckptIndex, err := a.recoverPositions()
	if err != nil {
		return nil, err
	}
	ckpt := &checkpointer{store: a.store, cursor: a.log.RegisterCursor(positionsCursor, ckptIndex+1)}

	if err := a.buildShippers(); err != nil {
		return nil, err
	}

	if cfg.Files.Enabled {
		host, _ := os.Hostname()
		a.source, err = file.New(file.Config{
			Include:          cfg.Files.Include,
			Exclude:          cfg.Files.Exclude,
			MaxLineBytes:     int(cfg.Files.MaxLineBytes.Bytes()),
			MaxEntryBytes:    int(cfg.WAL.MaxEntryBytes.Bytes()),
			PollInterval:     cfg.Files.PollInterval,
			ScanInterval:     cfg.Files.ScanInterval,
			StartAt:          cfg.Files.StartAt,
			RotateWait:       cfg.Files.RotateWait,
			MaxOpenFiles:     cfg.Files.MaxOpenFiles,
			MaxInflightBytes: int(cfg.Files.MaxInflightBytes.Bytes()),
			IdleTimeout:      cfg.Files.IdleTimeout,
			InvalidUTF8:      cfg.Files.InvalidUTF8,
			Encoding:         cfg.Files.Encoding,
			Labels:           cfg.Files.Labels,
			Hostname:         host,
			Routes:           fileRoutes(cfg.FilePipeline),
		}, a.log, ckpt, saved, logger, a.reg)
		if err != nil {
			return nil, err
		}
	}

	a.server, err = api.New(api.Config{
		Listen:        cfg.Server.Listen,
		MetricsListen: cfg.Server.MetricsListen,
		APIToken:      cfg.Server.APIToken,
	}, api.Deps{
		Health:         healthView{a},
		Stats:          statsView{a},
		Config:         configView{a},
		Positions:      positionsView{a},
		DLQStats:       dlqView{store: a.dlq},
		DLQReprocessor: dlqView{store: a.dlq, sinks: a.sinks, wal: dlq.LogSource(a.log)},
	}, a.reg, logger)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// recoverPositions merges the bbolt checkpoint with the WAL entries written
// after it: for each source, the later end offset wins. No line is read
// twice and none is skipped.
func (a *agent) recoverPositions() ([]ingest.SavedPosition, uint64, error) {
	stored, err := a.store.Positions()
	if err != nil {
		return nil, 0, fmt.Errorf("recover positions: %w", err)
	}
	ckpt, err := a.store.PositionsWALIndex()
	if err != nil {
		return nil, 0, fmt.Errorf("recover positions: %w", err)
	}
	pos := make(map[string]*ingest.SavedPosition, len(stored))
	for id, p := range stored {
		pos[id] = &ingest.SavedPosition{ID: id, Offset: p.Offset, WALIndex: p.WALIndex, Meta: p.Meta}
	}
	first, err := a.log.FirstIndex()
	if err != nil {
		return nil, 0, err
	}
	from := max(ckpt+1, first)
	r := a.log.NewReader(from)
	scanned := 0
	var rec record.Record
	for {
		idx, payload, ok, err := r.TryRead()
		var ce *wal.CorruptionErr
		if errors.As(err, &ce) {
			a.logger.Error().Err(err).Msg("recover positions: skipping damaged WAL entry")
			r.Seek(ce.Next)
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("recover positions: %w", err)
		}
		if !ok {
			break
		}
		scanned++
		dec, err := record.NewDecoder(payload)
		if err != nil {
			a.logger.Error().Err(err).Uint64("index", idx).Msg("recover positions: undecodable WAL entry")
			continue
		}
		for dec.Next(&rec) {
			p := pos[rec.Source]
			if p == nil {
				p = &ingest.SavedPosition{ID: rec.Source}
				pos[rec.Source] = p
			}
			if rec.Offset >= p.Offset {
				p.Offset, p.WALIndex = rec.Offset, idx
			}
		}
	}
	out := make([]ingest.SavedPosition, 0, len(pos))
	for _, p := range pos {
		out = append(out, *p)
	}
	a.logger.Info().Int("checkpointed", len(stored)).Uint64("checkpoint_wal_index", ckpt).
		Int("wal_entries_replayed", scanned).Int("sources", len(out)).Msg("positions recovered")
	return out, ckpt, nil
}

func (a *agent) buildShippers() error {
	c := a.cfg.Sinks
	var sinks []ship.Sink
	var cfgs []ship.Config
	var recovery ship.Option // the Loki sink's recovery probe (sinks.loki.verify)
	if c.Loki.Enabled {
		client, err := loki.NewClient(loki.ClientConfig{
			URL:                c.Loki.URL,
			TenantID:           c.Loki.TenantID,
			Timeout:            c.Loki.Timeout,
			Concurrency:        c.Loki.Concurrency,
			BasicAuthUser:      c.Loki.BasicAuth.Username,
			BasicAuthPassword:  c.Loki.BasicAuth.Password,
			BearerToken:        c.Loki.BearerToken,
			CAFile:             c.Loki.TLS.CAFile,
			InsecureSkipVerify: c.Loki.TLS.InsecureSkipVerify,
			UserAgent:          "logcapturer/" + version,
		})
		if err != nil {
			return err
		}
		a.closers = append(a.closers, func() error { client.Close(); return nil })
		lim := c.Loki.Limits
		lokiSink := ship.NewLokiSink(client, ship.LokiSinkConfig{
			Labels: c.Loki.Labels,
			Limits: ship.LokiLimits{
				MaxLineBytes:        int(lim.MaxLineBytes.Bytes()),
				MaxLabelNames:       lim.MaxLabelNames,
				MaxLabelNameLength:  lim.MaxLabelNameLength,
				MaxLabelValueLength: lim.MaxLabelValueLength,
				MaxAge:              lim.RejectOldSamplesMaxAge,
				GracePeriod:         lim.CreationGracePeriod,
				MaxMetadataBytes:    int(lim.MaxStructuredMetadataBytes.Bytes()),
				MaxMetadataEntries:  lim.MaxStructuredMetadataEntries,
			},
		})
		sinks = append(sinks, lokiSink)
		var closeProber func() error
		if recovery, closeProber, err = lokiRecovery(c.Loki, lokiSink, a.store); err != nil {
			return err
		}
		if closeProber != nil {
			a.closers = append(a.closers, closeProber)
		}
		cfgs = append(cfgs, ship.Config{
			BatchBytes:      int(c.Loki.BatchBytes.Bytes()),
			MaxRequestBytes: int(c.Loki.MaxRequestBytes.Bytes()),
			BatchWait:       c.Loki.BatchWait,
			Concurrency:     c.Loki.Concurrency,
			MinBackoff:      c.Loki.MinBackoff,
			MaxBackoff:      c.Loki.MaxBackoff,
			MaxElapsed:      c.Loki.MaxElapsed,
			CircuitFailures: c.Loki.Circuit.Failures,
			CircuitCooldown: c.Loki.Circuit.Cooldown,
		})
		a.logger.Info().Str("url", client.URL()).Msg("loki sink enabled")
	}
	if c.File.Enabled {
		fs, err := ship.NewFileSink(ship.FileSinkConfig{Path: c.File.Path, MaxBytes: c.File.MaxBytes.Bytes(), MaxFiles: c.File.MaxFiles})
		if err != nil {
			return err
		}
		a.closers = append(a.closers, fs.Close)
		sinks = append(sinks, fs)
		fc := ship.Defaults()
		fc.Concurrency = 1 // one writer keeps the file in WAL order
		fc.BatchWait = 200 * time.Millisecond
		fc.MinBackoff, fc.MaxBackoff = 100*time.Millisecond, 10*time.Second
		cfgs = append(cfgs, fc)
		a.logger.Info().Str("path", c.File.Path).Msg("file sink enabled")
	}
	if len(sinks) == 0 {
		return errors.New("no sink enabled: set sinks.loki.url (or LOKI_URL) or sinks.file.enabled")
	}
	first, err := a.log.FirstIndex()
	if err != nil {
		return err
	}
	a.cursors = &cursorFlusher{store: a.store, kick: make(chan struct{}, 1), logger: a.logger}
	for i, sink := range sinks {
		start, ok, err := a.store.Cursor(ship.CursorName(sink.Name()))
		if err != nil {
			return err
		}
		if !ok {
			// A new sink ships what the WAL holds.
			start = first
		}
		cfg := cfgs[i]
		a.sinks = append(a.sinks, sink)
		opts := []ship.Option{ship.WithDeadLetterer(a.dlq)}
		if d := a.cfg.Dedup; d.Window > 0 && d.MaxKeys > 0 {
			cfg.Dedup = ship.DedupConfig{Window: d.Window, MaxKeys: d.MaxKeys, FlushInterval: d.FlushInterval}
			opts = append(opts, ship.WithDedupStore(a.store))
			if recovery != nil && sink.Name() == "loki" {
				opts = append(opts, recovery)
			}
		}
		sh, err := ship.New(cfg, a.log, start, sink, a.cursors, a.logger, a.reg, opts...)
		if err != nil {
			return err
		}
		a.shippers = append(a.shippers, sh)
	}
	return nil
}

// run starts everything and, when ctx ends, stops it in dependency order:
// sources first (their in-flight appends are acknowledged by the WAL), then
// the shippers (in-flight batches drain), then the WAL (queued appends are
// committed), then the state (final checkpoint), and the API last so /health
// answers during shutdown.
func (a *agent) run(ctx context.Context) error {
	if err := a.server.Listen(); err != nil {
		return err
	}
	type comp struct {
		name   string
		cancel context.CancelFunc
		done   chan error
	}
	startComp := func(name string, run func(context.Context) error) *comp {
		cctx, cancel := context.WithCancel(context.Background())
		c := &comp{name: name, cancel: cancel, done: make(chan error, 1)}
		go func() { c.done <- run(cctx) }()
		return c
	}
	stateC := startComp("state", a.store.Run)
	cursorC := startComp("cursors", a.cursors.Run)
	walC := startComp("wal", a.log.Run)
	dlqC := startComp("dlq", a.dlq.Run)
	var shipCs []*comp
	for _, sh := range a.shippers {
		shipCs = append(shipCs, startComp("ship", sh.Run))
	}
	var srcC *comp
	if a.source != nil {
		srcC = startComp("files", a.source.Run)
	}
	apiC := startComp("api", a.server.Serve)

	a.logger.Info().Str("version", version).Str("listen", a.server.Addr()).Str("metrics_listen", a.server.MetricsAddr()).
		Str("config", a.cfg.Summary()).Msg("logcapturer started")

	// A component that fails on its own ends the run: the process exits
	// non-zero and the supervisor restarts it; the WAL makes that safe.
	var firstErr error
	failed := make(chan error, 1)
	watch := func(c *comp) {
		go func() {
			err := <-c.done
			c.done <- err // keep it for the stop sequence
			if err != nil && ctx.Err() == nil {
				select {
				case failed <- fmt.Errorf("%s: %w", c.name, err):
				default:
				}
			}
		}()
	}
	all := append([]*comp{stateC, cursorC, walC, dlqC, apiC}, shipCs...)
	if srcC != nil {
		all = append(all, srcC)
	}
	for _, c := range all {
		watch(c)
	}
	select {
	case <-ctx.Done():
		a.logger.Info().Msg("shutting down")
	case firstErr = <-failed:
		a.logger.Error().Err(firstErr).Msg("component failed; shutting down")
	}

	stop := func(c *comp) {
		if c == nil {
			return
		}
		c.cancel()
		if err := <-c.done; err != nil && !errors.Is(err, context.Canceled) {
			a.logger.Error().Err(err).Str("component", c.name).Msg("stopped with error")
		}
	}
	stop(srcC)
	var wg sync.WaitGroup
	for _, c := range shipCs {
		wg.Add(1)
		go func() { defer wg.Done(); stop(c) }()
	}
	wg.Wait()
	stop(dlqC)
	stop(cursorC)
	stop(walC)
	stop(stateC)
	stop(apiC)
	a.closeAll()
	a.logger.Info().Msg("stopped")
	return firstErr
}

// fileRoutes hands the file-routing file's routes to the file source.
func fileRoutes(fp config.FilePipeline) []file.Route {
	out := make([]file.Route, 0, len(fp.Routes))
	for _, r := range fp.Routes {
		out = append(out, file.Route{Name: r.Name, Match: r.Match, Labels: r.Labels, Multiline: r.Multiline.Config()})
	}
	return out
}

func (a *agent) closeAll() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			a.logger.Error().Err(err).Msg("close")
		}
	}
	a.closers = nil
	if a.server != nil {
		_ = a.server.Close()
	}
}

// checkpointer adapts the state store to ingest.Checkpointer and moves the
// positions cursor of the WAL with it. Callbacks arrive in WAL order (one
// appender), so walIndex only grows.
type checkpointer struct {
	store  *state.Store
	cursor *wal.Cursor
}

func (c *checkpointer) SetPosition(id string, offset, walIndex uint64, meta []byte) {
	c.store.SetPosition(id, state.Position{Offset: offset, WALIndex: walIndex, UpdatedUnixNano: time.Now().UnixNano(), Meta: meta})
	if walIndex > 0 {
		c.store.SetPositionsWALIndex(walIndex)
		c.cursor.Set(walIndex + 1)
	}
}

func (c *checkpointer) DeletePosition(id string) { c.store.DeletePosition(id) }

// cursorFlusher makes shipper cursors durable as soon as they move, so that
// a crash re-sends only the batches that were in flight (and those acked
// during the one commit under way), not a whole flush interval of them.
// Commits are group-committed: while one runs, further moves coalesce into
// the next. Positions need no such care: they are recovered from the WAL.
type cursorFlusher struct {
	store  *state.Store
	kick   chan struct{}
	logger zerolog.Logger
}

func (c *cursorFlusher) SetCursor(name string, next uint64) {
	c.store.SetCursor(name, next)
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run commits after every kick until ctx ends. The state store's own final
// commit covers the last moves.
func (c *cursorFlusher) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.kick:
			if err := c.store.Flush(ctx); err != nil && ctx.Err() == nil {
				c.logger.Error().Err(err).Msg("commit shipper cursors")
			}
		}
	}
}
