package ship

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Recovery after a crash ("the probe").
//
// Dedup (dedup.go) cannot drop the lines of a request that was in flight
// when the agent died: nothing acknowledged them, so their keys were never
// recorded, yet the receiver may have stored them. Nor the lines
// acknowledged after the last checkpoint of the keys. Both lie above the
// cursor and at or below the dispatch mark (mark.go). At start, when the
// mark is above the cursor, the shipper reads that WAL range, leaves out
// the lines whose key is already known, groups the rest by stream and asks
// the receiver which it stores (Prober); those are recorded in the dedup
// set as delivered, so the replay that follows filters them like any other
// acknowledged line.
//
// The probe waits Delay first (receivers make freshly ingested rows
// searchable after a moment, and a request sent just before the crash may
// still be being ingested), and gives up after Timeout. If it fails (the
// receiver is down, a bad answer) it is logged and counted and everything
// is replayed: duplicates are possible, loss is not. It needs dedup.

// Prober tells which entries of a stream the sink's receiver stores
// (LokiSink.Prober adapts a loki.Prober).
type Prober interface {
	// Prepare is called once before the streams are probed; its error is
	// logged, not fatal.
	Prepare(ctx context.Context) error
	// Probe sets Present on the entries of the stream labels (as recorded;
	// the sink adds what it adds when sending) that the receiver stores.
	Probe(ctx context.Context, labels *record.LabelSet, entries []loki.ProbeEntry) error
}

// RecoveryConfig tunes the dispatch mark and the probe.
type RecoveryConfig struct {
	// Delay is the wait before querying (default 0).
	Delay time.Duration
	// Timeout bounds the whole probe, WAL reading included (default 30s).
	Timeout time.Duration
	// Lease is how many WAL entries the dispatch mark runs ahead of the
	// highest entry sent (default DefaultMarkLease).
	Lease uint64
	// MaxLines bounds the lines looked up; the rest is replayed as is
	// (default 1,000,000).
	MaxLines int
}

// WithRecovery keeps the dispatch mark in marks and probes p at start
// (needs Config.Dedup).
func WithRecovery(p Prober, marks MarkStore, cfg RecoveryConfig) Option {
	return func(s *Shipper) {
		if cfg.Timeout <= 0 {
			cfg.Timeout = 30 * time.Second
		}
		if cfg.MaxLines <= 0 {
			cfg.MaxLines = 1_000_000
		}
		s.prober, s.marks, s.recCfg = p, marks, cfg
	}
}

// RecoveryStatus is the outcome of the last probe, for /stats.
type RecoveryStatus struct {
	At time.Time `json:"at"`
	// Result: ok, failed, nothing_to_probe or skipped (no mark could be read).
	Result   string `json:"result"`
	Error    string `json:"error,omitempty"`
	WALFirst uint64 `json:"wal_first,omitempty"`
	WALLast  uint64 `json:"wal_last,omitempty"`
	// Known lines were in the dedup window already; Checked were looked up
	// in Streams streams; Present were found stored and are not sent again.
	Known       int `json:"lines_known"`
	Checked     int `json:"lines_checked"`
	Present     int `json:"lines_present"`
	Unprobeable int `json:"lines_unprobeable,omitempty"`
	// Twins are stored lines with the stream, time and bytes of a line in
	// doubt: each accounts for one matching row first.
	Twins     int     `json:"twins,omitempty"`
	Truncated bool    `json:"truncated,omitempty"` // MaxLines reached
	Retries   int     `json:"retries,omitempty"`   // probes retried (receiver unreachable, 429, 5xx)
	Streams   int     `json:"streams"`
	Seconds   float64 `json:"seconds"`
}

// probeGroup is the entries in question of one stream, and their twins
// known to be stored (Delivered).
type probeGroup struct {
	labels  *record.LabelSet
	entries []loki.ProbeEntry
	keys    []uint64 // dedup keys, parallel to entries (0 for Delivered ones)
	sources []string // sources, parallel to entries
}

// recoverDispatched runs the probe once, before shipping starts. It loads
// the dispatch mark and returns the floor the mark may be lowered to at a
// clean stop: the last entry in doubt (the loaded mark, or the WAL's end if
// lower: what was not written could not be sent), unless the probe settled
// every line in doubt.
func (s *Shipper) recoverDispatched(ctx context.Context) uint64 {
	start := time.Now()
	st := RecoveryStatus{At: start}
	defer func() {
		st.Seconds = time.Since(start).Seconds()
		s.m.recoveryProbes.WithLabelValues(st.Result).Inc()
		s.mu.Lock()
		s.status.Recovery = &st
		s.mu.Unlock()
	}()
	mark, ok, err := s.marks.Cursor(s.mark.name)
	if err != nil {
		st.Result, st.Error = "skipped", err.Error()
		s.logger.Warn().Err(err).Msg("ship: dispatch mark unreadable; no probe, lines in flight at the last stop may be sent twice")
		return 0
	}
	s.mark.durable.Store(mark)
	cursor := s.tr.Next()
	last := min(mark, s.lastAtOpen)
	if !ok || last < cursor {
		st.Result = "nothing_to_probe"
		return 0
	}
	st.WALFirst, st.WALLast = cursor, last
	groups, err := s.probeSet(ctx, cursor, last, &st)
	st.Streams = len(groups)
	if err != nil {
		st.Result, st.Error = "failed", err.Error()
		s.logger.Warn().Err(err).Msg("ship: probe not run; the lines in doubt are sent again (duplicates possible)")
		return last
	}
	if len(groups) == 0 {
		st.Result = "ok"
		s.logRecovery(&st)
		return 0
	}
	if !sleep(ctx, s.recCfg.Delay) {
		st.Result, st.Error = "failed", "stopped"
		return last
	}
	pctx, cancel := context.WithTimeout(ctx, max(s.recCfg.Timeout-time.Since(start), time.Millisecond))
	defer cancel()
	if err := s.prober.Prepare(pctx); err != nil {
		s.logger.Debug().Err(err).Msg("ship: probe preparation failed; probing anyway")
	}
	var perr error
	var present []uint64
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for _, g := range groups {
		err := s.probeStream(pctx, g, &st, rnd)
		for i, e := range g.entries {
			if e.Present && !e.Delivered {
				present = append(present, g.keys[i])
			}
		}
		if errors.Is(err, loki.ErrNotProbeable) {
			for _, e := range g.entries {
				if !e.Delivered {
					st.Unprobeable++
				}
			}
			continue
		}
		if err != nil {
			perr = fmt.Errorf("stream %s: %w", g.labels, err)
			break
		}
	}
	st.Present = len(present)
	if len(present) > 0 {
		s.dedup.recordKeys(present, time.Now())
		s.m.recoveredPresent.Add(float64(len(present)))
	}
	if perr != nil {
		st.Result, st.Error = "failed", perr.Error()
		s.logger.Warn().Err(perr).Int("lines_checked", st.Checked).Int("lines_present", st.Present).
			Uint64("wal_first", cursor).Uint64("wal_last", last).
			Msg("ship: probe failed; the lines it did not settle are sent again (duplicates possible)")
		return last
	}
	st.Result = "ok"
	s.logRecovery(&st)
	if st.Truncated {
		return last
	}
	return 0
}

// probeStream probes one stream, retrying while the receiver is
// unreachable or answers 429 or 5xx (it may be restarting; nothing can be
// shipped meanwhile anyway), until ctx ends.
func (s *Shipper) probeStream(ctx context.Context, g *probeGroup, st *RecoveryStatus, rnd *rand.Rand) error {
	for attempt := 0; ; attempt++ {
		err := s.prober.Probe(ctx, g.labels, g.entries)
		if err == nil || !loki.Retryable(err) || ctx.Err() != nil {
			return err
		}
		st.Retries++
		delay := backoff(100*time.Millisecond, 2*time.Second, attempt, rnd)
		if attempt == 0 {
			s.logger.Warn().Err(err).Dur("retry_in", delay).Msg("ship: probe failed; retrying until the probe timeout")
		}
		if !sleep(ctx, delay) {
			return err
		}
		// A receiver that restarted may hold rows not yet searchable.
		_ = s.prober.Prepare(ctx)
	}
}

func (s *Shipper) logRecovery(st *RecoveryStatus) {
	s.logger.Info().Uint64("wal_first", st.WALFirst).Uint64("wal_last", st.WALLast).Int("lines_known", st.Known).
		Int("lines_checked", st.Checked).Int("lines_present", st.Present).Int("streams", st.Streams).
		Int("lines_unprobeable", st.Unprobeable).Bool("truncated", st.Truncated).Int("retries", st.Retries).
		Dur("took", time.Since(st.At)).Msg("ship: probe done; lines found stored are not sent again")
}

// twinKey identifies lines a probe cannot tell apart: the same stream,
// timestamp and bytes.
type twinKey struct {
	stream string
	time   int64
	hash   uint64
}

// sourceStart is a source's first read at or after the cursor.
type sourceStart struct {
	time  int64
	doubt bool   // some line of that read is in doubt
	seen  uint64 // the lowest WAL index known to hold a line of that read
}

// errEnough ends a scan early.
var errEnough = errors.New("enough")

// twinGap is how many WAL entries without a record of a source end the
// search for twins of its lines: the entries of one read of a file are
// appended by one goroutine, back to back, with at most the entries that
// other files append meanwhile in between (a few per file and group
// commit). maxTwinScan bounds the search below the cursor in all.
const (
	twinGap     = 4096
	maxTwinScan = 3 * twinGap
)

// probeSet reads WAL entries first..last and groups by stream the lines
// whose dedup key is not known yet (the lines in doubt).
//
// A stored row proves a line in doubt delivered only if no other line with
// the same stream, timestamp and bytes (a twin) accounts for it. The file
// source stamps every line of one read with the same time, so identical
// lines of one read are twins; they are contiguous in their source's
// sequence of records. Each group therefore also gets, marked Delivered,
// the twins of its lines in doubt that are known to be stored: those of
// the range whose keys are known, and those below first, found by reading
// back until each source's first read in the range is passed (a record of
// the source with another time, or twinGap entries without any). They
// absorb matching rows before any line in doubt does. A source whose read
// cannot be followed back far enough (the WAL was trimmed, an entry is
// damaged, maxTwinScan) keeps those lines out of the probe: they are sent
// again.
func (s *Shipper) probeSet(ctx context.Context, first, last uint64, st *RecoveryStatus) ([]*probeGroup, error) {
	byStream := map[string]*probeGroup{}
	var groups []*probeGroup
	delivered := map[twinKey]int{}
	doubt := map[twinKey]bool{}
	starts := map[string]*sourceStart{}
	now := time.Now()
	_, err := s.scanWAL(ctx, first, last, func(idx uint64, rec *record.Record) error {
		if rec.Source == "" {
			st.Unprobeable++ // no identity: it could not be filtered anyway
			return nil
		}
		ss := starts[rec.Source]
		if ss == nil {
			ss = &sourceStart{time: rec.Time, seen: idx}
			starts[rec.Source] = ss
		}
		k := dedupKey(&Entry{Time: rec.Time, Line: rec.Line, Source: rec.Source, Offset: rec.Offset})
		tk := twinKey{rec.Labels.String(), rec.Time, loki.HashLine(rec.Line)}
		if s.dedup.contains(k, now) {
			st.Known++
			delivered[tk]++
			return nil
		}
		if st.Checked >= s.recCfg.MaxLines {
			st.Truncated = true
			return errEnough
		}
		if rec.Time == ss.time {
			ss.doubt = true
		}
		doubt[tk] = true
		g := byStream[tk.stream]
		if g == nil {
			g = &probeGroup{labels: rec.Labels}
			byStream[tk.stream] = g
			groups = append(groups, g)
		}
		g.entries = append(g.entries, loki.ProbeEntry{Time: rec.Time, Hash: tk.hash})
		g.keys = append(g.keys, k)
		g.sources = append(g.sources, rec.Source)
		st.Checked++
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}

	// Follow back the first read of each source whose lines are in doubt.
	pending := map[string]*sourceStart{}
	for src, ss := range starts {
		if ss.doubt {
			pending[src] = ss
		}
	}
	walFirst, err := s.log.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("WAL first index: %w", err)
	}
	lo := first
	for scanned := uint64(0); len(pending) > 0 && lo > walFirst && scanned < maxTwinScan; {
		from := walFirst
		if lo-walFirst > 64 {
			from = lo - 64
		}
		passed := map[string]bool{}
		complete, err := s.scanWAL(ctx, from, lo-1, func(idx uint64, rec *record.Record) error {
			ss, ok := pending[rec.Source]
			switch {
			case !ok:
			case rec.Time == ss.time:
				delivered[twinKey{rec.Labels.String(), rec.Time, loki.HashLine(rec.Line)}]++
				ss.seen = min(ss.seen, idx)
			default:
				passed[rec.Source] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if !complete {
			break // a damaged or removed entry: what remains pending stays unsure
		}
		scanned += lo - from
		lo = from
		for src, ss := range pending {
			if passed[src] || ss.seen-lo >= twinGap {
				delete(pending, src)
			}
		}
	}
	if lo == 1 {
		clear(pending) // the log's very start: nothing earlier exists
	}
	for _, g := range groups {
		g.dropUnsure(pending, st)
	}
	for tk, n := range delivered {
		g := byStream[tk.stream]
		if g == nil || !doubt[tk] {
			continue
		}
		st.Twins += n
		for range n {
			g.entries = append(g.entries, loki.ProbeEntry{Time: tk.time, Hash: tk.hash, Delivered: true})
			g.keys = append(g.keys, 0)
			g.sources = append(g.sources, "")
		}
	}
	kept := groups[:0]
	for _, g := range groups {
		if slices.ContainsFunc(g.entries, func(e loki.ProbeEntry) bool { return !e.Delivered }) {
			kept = append(kept, g)
		}
	}
	return kept, nil
}

// dropUnsure removes the lines of the first read of the sources in unsure
// (source -> time of that read): their twins could not all be found.
func (g *probeGroup) dropUnsure(unsure map[string]*sourceStart, st *RecoveryStatus) {
	if len(unsure) == 0 {
		return
	}
	n := 0
	for i := range g.entries {
		if ss, ok := unsure[g.sources[i]]; ok && g.entries[i].Time == ss.time {
			st.Checked--
			st.Unprobeable++
			continue
		}
		g.entries[n], g.keys[n], g.sources[n] = g.entries[i], g.keys[i], g.sources[i]
		n++
	}
	g.entries, g.keys, g.sources = g.entries[:n], g.keys[:n], g.sources[:n]
}

// scanWAL calls fn with every record of WAL entries from..to. complete is
// false when an entry in the range could not be read (damaged, removed) or
// decoded; those are skipped. An error of fn ends the scan and is returned.
func (s *Shipper) scanWAL(ctx context.Context, from, to uint64, fn func(idx uint64, rec *record.Record) error) (complete bool, err error) {
	complete = true
	r := s.log.NewReader(from)
	var rec record.Record
	for r.Next() <= to {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		idx, payload, ok, err := r.TryRead()
		var ce *wal.CorruptionErr
		var eb *wal.ErrBehind
		switch {
		case err == nil && !ok:
			return complete, nil // the end of the log
		case err == nil:
		case errors.As(err, &ce):
			complete = false
			r.Seek(max(ce.Next, r.Next()+1))
			continue
		case errors.As(err, &eb):
			complete = false
			r.Seek(max(eb.First, r.Next()+1))
			continue
		default:
			return false, fmt.Errorf("read WAL entry %d: %w", r.Next(), err)
		}
		if idx > to {
			break
		}
		dec, derr := record.NewDecoder(payload)
		if derr != nil {
			complete = false
			continue // the replay skips and counts it
		}
		for dec.Next(&rec) {
			if err := fn(idx, &rec); err != nil {
				return complete, err
			}
		}
		if dec.Err() != nil {
			complete = false
		}
	}
	return complete, nil
}
