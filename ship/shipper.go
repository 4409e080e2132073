package ship

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Config tunes one shipper.
type Config struct {
	// BatchBytes closes a batch once its estimated encoded size (lines,
	// labels, metadata and protobuf framing) reaches this many bytes.
	BatchBytes int
	// MaxRequestBytes caps the estimated encoded size of one batch; only a
	// single entry larger than it goes out alone above it.
	MaxRequestBytes int
	// BatchWait closes a non-empty batch once it is this old.
	BatchWait time.Duration
	// Concurrency is the number of shards: each sends its batches one at a
	// time, in order, and every stream belongs to one shard.
	Concurrency int
	// MinBackoff and MaxBackoff bound the retry delays (full jitter).
	MinBackoff, MaxBackoff time.Duration
	// MaxElapsed, when positive, ends the retries of a batch after this
	// long: its entries go to the DLQ as retry_exhausted. 0 retries for as
	// long as it takes (the WAL holds the data; its budget applies
	// backpressure to the sources).
	MaxElapsed time.Duration
	// DrainTimeout is how long in-flight requests may finish after shutdown
	// starts. What is not acknowledged by then is sent again after restart.
	DrainTimeout time.Duration
	// CircuitFailures consecutive failures (transport errors, timeouts,
	// 5xx) open the circuit for CircuitCooldown, doubling while probes fail
	// (up to MaxBackoff). 0 never opens it.
	CircuitFailures int
	CircuitCooldown time.Duration
	// Dedup configures dedup at shipping; a zero Window turns it off.
	Dedup DedupConfig
}

// DedupConfig configures dedup at shipping (see dedup.go).
type DedupConfig struct {
	Window  time.Duration // how long an acknowledged key is remembered
	MaxKeys int           // at most this many keys (the oldest go first)
	// FlushInterval is how often new keys are checkpointed to the
	// DedupStore (default 1s).
	FlushInterval time.Duration
}

// Defaults returns the default shipper configuration.
func Defaults() Config {
	return Config{
		BatchBytes:      1 << 20,
		MaxRequestBytes: 4 << 20,
		BatchWait:       time.Second,
		Concurrency:     2,
		MinBackoff:      500 * time.Millisecond,
		MaxBackoff:      5 * time.Minute,
		DrainTimeout:    5 * time.Second,
		CircuitFailures: 5,
		CircuitCooldown: 10 * time.Second,
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.BatchBytes <= 0 || c.MaxRequestBytes < c.BatchBytes {
		errs = append(errs, fmt.Errorf("ship: need 0 < batch_bytes (%d) <= max_request_bytes (%d)", c.BatchBytes, c.MaxRequestBytes))
	}
	if c.BatchWait <= 0 {
		errs = append(errs, errors.New("ship: batch_wait must be positive"))
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("ship: concurrency must be in 1..64, got %d", c.Concurrency))
	}
	if c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, errors.New("ship: need 0 < min_backoff <= max_backoff"))
	}
	if c.MaxElapsed < 0 {
		errs = append(errs, errors.New("ship: max_elapsed must be >= 0"))
	}
	if c.CircuitFailures < 0 || (c.CircuitFailures > 0 && c.CircuitCooldown <= 0) {
		errs = append(errs, errors.New("ship: need circuit failures >= 0 and a positive cool-down when enabled"))
	}
	if c.Dedup.Window < 0 || c.Dedup.MaxKeys < 0 || c.Dedup.FlushInterval < 0 {
		errs = append(errs, errors.New("ship: dedup window, max_keys and flush interval must be >= 0"))
	}
	return errors.Join(errs...)
}

// CursorStore persists a shipper's cursor (the state store, batched).
type CursorStore interface {
	SetCursor(name string, next uint64)
}

// Option adds an optional collaborator to a Shipper.
type Option func(*Shipper)

// WithDeadLetterer hands rejected entries to d. Without one they are
// counted as dead-lettered and logged with their WAL range, nothing more.
func WithDeadLetterer(d DeadLetterer) Option { return func(s *Shipper) { s.dl = d } }

// WithDedupStore persists the dedup window in ds (needs Config.Dedup).
func WithDedupStore(ds DedupStore) Option { return func(s *Shipper) { s.dstore = ds } }

// Shipper reads the WAL from its cursor and delivers batches to one sink.
type Shipper struct {
	cfg     Config
	log     *wal.Log
	sink    Sink
	checker Checker
	cursor  *wal.Cursor
	tr      *tracker
	store   CursorStore
	logger  zerolog.Logger
	m       *metrics
	name    string
	dl      DeadLetterer
	dstore  DedupStore
	dedup   *dedupSet
	breaker *breaker

	prober     Prober // recovery probe (probe.go); nil: none
	marks      MarkStore
	recCfg     RecoveryConfig
	mark       *dispatchMark
	lastAtOpen uint64 // the WAL's last index when the shipper was built

	inflight atomic.Int64 // batches sealed and not yet completed
	saves    []savedKeys  // dedup checkpoints in the store, oldest first (flush goroutine only)

	mu     sync.Mutex
	status Status
}

// savedKeys is one dedup checkpoint: when, and how many keys.
type savedKeys struct {
	at time.Time
	n  int
}

// Status is a snapshot for /stats and /health.
type Status struct {
	Sink              string    `json:"sink"`
	Cursor            uint64    `json:"cursor"`
	LagEntries        uint64    `json:"lag_entries"`
	InFlight          int       `json:"in_flight"`
	Shards            int       `json:"shards"`
	Circuit           string    `json:"circuit"` // closed, half_open or open
	ConsecutiveErrors int       `json:"consecutive_errors"`
	LastError         string    `json:"last_error,omitempty"`
	LastErrorTime     time.Time `json:"last_error_time,omitzero"`
	LastSuccess       time.Time `json:"last_success,omitzero"`
	LinesShipped      uint64    `json:"lines_shipped"`
	// LinesRejected counts lines dead-lettered (rejected by the receiver or
	// by the pre-send check, or out of retries).
	LinesRejected uint64 `json:"lines_rejected"`
	DedupHits     uint64 `json:"dedup_hits"`
	DedupKeys     int    `json:"dedup_keys"`
	// DispatchMark is the durable dispatch mark (mark.go), 0 without one.
	DispatchMark uint64 `json:"dispatch_mark,omitempty"`
	// Recovery is the outcome of the start-up probe (probe.go).
	Recovery *RecoveryStatus `json:"recovery,omitempty"`
}

// CursorName is the name under which a sink's cursor is registered and stored.
func CursorName(sink string) string { return "ship/" + sink }

// New builds a shipper that starts at WAL index start. It starts nothing.
func New(cfg Config, l *wal.Log, start uint64, sink Sink, store CursorStore, logger zerolog.Logger, reg prometheus.Registerer, opts ...Option) (*Shipper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = Defaults().DrainTimeout
	}
	if cfg.Dedup.FlushInterval <= 0 {
		cfg.Dedup.FlushInterval = time.Second
	}
	m, err := newMetrics(reg, sink.Name())
	if err != nil {
		return nil, err
	}
	if start == 0 {
		start = 1
	}
	name := CursorName(sink.Name())
	s := &Shipper{
		cfg:    cfg,
		log:    l,
		sink:   sink,
		cursor: l.RegisterCursor(name, start),
		store:  store,
		logger: logger.With().Str("component", "ship").Str("sink", sink.Name()).Logger(),
		m:      m,
		name:   name,
		status: Status{Sink: sink.Name(), Cursor: start, Shards: cfg.Concurrency, Circuit: CircuitClosed.String()},
	}
	s.tr = newTracker(s.cursor.Next())
	s.lastAtOpen = l.CommittedIndex()
	s.checker, _ = sink.(Checker)
	s.breaker = newBreaker(cfg.CircuitFailures, cfg.CircuitCooldown, cfg.MaxBackoff, func(st CircuitState) {
		s.m.circuit.Set(float64(st))
		if st == CircuitOpen {
			s.m.circuitOpens.Inc()
		}
		s.mu.Lock()
		s.status.Circuit = st.String()
		s.mu.Unlock()
		s.logger.Warn().Str("circuit", st.String()).Msg("ship: circuit breaker changed state")
	})
	if cfg.Dedup.Window > 0 && cfg.Dedup.MaxKeys > 0 {
		s.dedup = newDedupSet(cfg.Dedup.Window, cfg.Dedup.MaxKeys, time.Now())
	}
	for _, o := range opts {
		o(s)
	}
	if s.prober != nil {
		if s.dedup == nil {
			return nil, errors.New("ship: the recovery probe needs dedup (a dedup window and max keys)")
		}
		if s.marks == nil {
			return nil, errors.New("ship: the recovery probe needs a mark store")
		}
		s.mark = newDispatchMark(s.marks, MarkName(sink.Name()), s.recCfg.Lease, s.logger, m)
	}
	return s, nil
}

// Status returns a snapshot of the shipper's state.
func (s *Shipper) Status() Status {
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	st.Cursor = s.cursor.Next()
	st.InFlight = int(s.inflight.Load())
	if c := s.log.CommittedIndex(); c+1 > st.Cursor {
		st.LagEntries = c + 1 - st.Cursor
	}
	if s.dedup != nil {
		st.DedupKeys = s.dedup.size()
	}
	if s.mark != nil {
		st.DispatchMark = s.mark.durable.Load()
	}
	if st.Recovery != nil {
		r := *st.Recovery
		st.Recovery = &r
	}
	return st
}

// Run ships until ctx ends, then lets in-flight requests finish for up to
// DrainTimeout, persists the cursor and the dedup keys and returns.
func (s *Shipper) Run(parent context.Context) error {
	s.loadDedup()
	// floor is what the mark must keep covering at a clean stop.
	var floor uint64
	// The mark's committer outlives the shards (they wait on it), so it
	// has its own context, ended once they are done.
	stopMark := func() {}
	var markWG sync.WaitGroup
	if s.mark != nil {
		floor = s.recoverDispatched(parent)
		var markCtx context.Context
		markCtx, stopMark = context.WithCancel(context.WithoutCancel(parent))
		defer stopMark()
		markWG.Add(1)
		go func() {
			defer markWG.Done()
			s.mark.run(markCtx)
		}()
	}
	// ctx also ends when the reader fails on its own.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	// Requests outlive ctx by DrainTimeout so that shutdown does not throw
	// away requests that are about to be acknowledged.
	sendCtx, stopSend := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSend()
	go func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(s.cfg.DrainTimeout)
			defer t.Stop()
			select {
			case <-t.C:
				stopSend()
			case <-sendCtx.Done():
			}
		case <-sendCtx.Done():
		}
	}()

	flushDone := make(chan struct{})
	var flushWG sync.WaitGroup
	if s.dedup != nil && s.dstore != nil {
		flushWG.Add(1)
		go func() {
			defer flushWG.Done()
			t := time.NewTicker(s.cfg.Dedup.FlushInterval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					s.saveDedup()
				case <-flushDone:
					return
				}
			}
		}()
	}

	queues := make([]chan *Batch, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan *Batch, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.shard(ctx, sendCtx, queues[i])
		}()
	}
	err := s.read(ctx, queues)
	if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, wal.ErrClosed)) {
		err = nil
	}
	if err != nil && parent.Err() == nil {
		// The reader failed on its own: stop sending too.
		cancel()
		stopSend()
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	stopMark()
	markWG.Wait()
	close(flushDone)
	flushWG.Wait()
	if s.dedup != nil && s.dstore != nil {
		s.saveDedup()
	}
	s.store.SetCursor(s.name, s.tr.Next())
	if s.mark != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 5*time.Second)
		s.mark.settle(sctx, max(s.mark.sent.Load(), floor))
		cancel()
	}
	s.m.inflight.Set(0)
	return err
}

// shard sends the batches of one shard, one at a time and in order. After
// shutdown, or once a batch was abandoned, it only drains its queue: a
// later batch of the same streams must not overtake an abandoned one.
func (s *Shipper) shard(ctx, sendCtx context.Context, q <-chan *Batch) {
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	abandoned := false
	for b := range q {
		if !abandoned && ctx.Err() == nil && s.process(ctx, sendCtx, b, rnd) {
			s.complete(b)
		} else {
			abandoned = true
		}
		s.m.inflight.Set(float64(s.inflight.Add(-1)))
	}
}

// complete releases b's WAL entries and moves the cursor when it can.
func (s *Shipper) complete(b *Batch) {
	s.moveCursor(s.tr.release(b.idx...))
	s.m.lag.Set(float64(s.lagEntries()))
}

func (s *Shipper) lagEntries() uint64 {
	cur := s.cursor.Next()
	if c := s.log.CommittedIndex(); c+1 > cur {
		return c + 1 - cur
	}
	return 0
}

// moveCursor publishes the tracker's cursor to the WAL and the store.
func (s *Shipper) moveCursor(next uint64, moved bool) {
	if moved {
		s.cursor.Set(next)
		s.store.SetCursor(s.name, next)
	}
}

// read turns WAL entries into per-shard batches and hands them over.
func (s *Shipper) read(ctx context.Context, queues []chan *Batch) error {
	r := s.log.NewReader(s.tr.Next())
	n := len(queues)
	open := make([]*Batch, n)
	seqs := make([]uint64, n)
	seal := func(sh int) error {
		b := open[sh]
		if b == nil {
			return nil
		}
		open[sh] = nil
		s.m.inflight.Set(float64(s.inflight.Add(1)))
		select {
		case queues[sh] <- b:
			return nil
		case <-ctx.Done():
			s.m.inflight.Set(float64(s.inflight.Add(-1)))
			return ctx.Err()
		}
	}
	// due returns the earliest BatchWait deadline of the open batches.
	due := func() (time.Time, bool) {
		var d time.Time
		for _, b := range open {
			if b != nil && (d.IsZero() || b.Created.Before(d)) {
				d = b.Created
			}
		}
		return d.Add(s.cfg.BatchWait), !d.IsZero()
	}
	sealDue := func(now time.Time) error {
		for sh, b := range open {
			if b != nil && now.Sub(b.Created) >= s.cfg.BatchWait {
				if err := seal(sh); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var rec record.Record
	for {
		var (
			idx     uint64
			payload []byte
			err     error
		)
		if deadline, ok := due(); ok {
			if !time.Now().Before(deadline) {
				if err := sealDue(time.Now()); err != nil {
					return err
				}
				continue
			}
			wctx, cancel := context.WithDeadline(ctx, deadline)
			idx, payload, err = r.Read(wctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				continue
			}
		} else {
			idx, payload, err = r.Read(ctx)
		}
		var ce *wal.CorruptionErr
		var eb *wal.ErrBehind
		switch {
		case err == nil:
		case errors.As(err, &ce):
			s.logger.Error().Err(err).Uint64("resume_at", ce.Next).Msg("ship: skipping damaged WAL entries")
			s.skip(r, ce.Next)
			continue
		case errors.As(err, &eb):
			s.logger.Error().Err(err).Msg("ship: WAL entries were removed before delivery")
			s.skip(r, eb.First)
			continue
		default:
			return err
		}
		dec, derr := record.NewDecoder(payload)
		if derr != nil {
			s.m.corrupt.Inc()
			s.logger.Error().Err(derr).Uint64("index", idx).Msg("ship: undecodable WAL entry skipped")
			s.moveCursor(s.tr.skip(idx, idx))
			continue
		}
		s.tr.begin(idx)
		for dec.Next(&rec) {
			key := rec.Labels.String()
			sh := 0
			if n > 1 {
				sh = int(xxhash.Sum64String(key) % uint64(n))
			}
			b := open[sh]
			if b != nil && b.Lines > 0 && b.size+entrySizeEstimate(&rec)+streamOverhead+len(key) > s.cfg.MaxRequestBytes {
				if err := seal(sh); err != nil {
					return err
				}
				b = nil
			}
			if b == nil {
				seqs[sh]++
				b = newBatch(sh, seqs[sh])
				open[sh] = b
			}
			if k := len(b.idx); k == 0 || b.idx[k-1] != idx {
				s.tr.hold(idx)
			}
			b.add(key, &rec, idx)
			if b.size >= s.cfg.BatchBytes {
				if err := seal(sh); err != nil {
					return err
				}
			}
		}
		if err := dec.Err(); err != nil {
			s.m.corrupt.Inc()
			s.logger.Error().Err(err).Uint64("index", idx).Msg("ship: WAL entry decoded only in part")
		}
		s.moveCursor(s.tr.release(idx))
		if deadline, ok := due(); ok && !time.Now().Before(deadline) {
			if err := sealDue(time.Now()); err != nil {
				return err
			}
		}
	}
}

// skip passes the WAL entries from the reader's position up to next
// (exclusive), counting them as skipped.
func (s *Shipper) skip(r *wal.Reader, next uint64) {
	if next <= r.Next() {
		next = r.Next() + 1 // never stay on an entry that cannot be read
	}
	s.m.corrupt.Add(float64(next - r.Next()))
	s.moveCursor(s.tr.skip(r.Next(), next-1))
	r.Seek(next)
}

// process checks, filters and delivers b. It reports whether b is done
// with (delivered or dead-lettered); false means abandoned at shutdown.
func (s *Shipper) process(ctx, sendCtx context.Context, b *Batch, rnd *rand.Rand) bool {
	now := time.Now()
	if s.checker != nil {
		if letters := s.precheck(b, now); len(letters) > 0 {
			if !s.deadLetter(sendCtx, letters, rnd) {
				return false
			}
		}
	}
	if s.dedup != nil {
		if hits := s.dedup.filter(b, now); hits > 0 {
			s.m.dedupHits.Add(float64(hits))
			s.mu.Lock()
			s.status.DedupHits += uint64(hits)
			s.mu.Unlock()
		}
	}
	if b.Lines == 0 {
		return true
	}
	return s.deliver(ctx, sendCtx, b, rnd)
}

// precheck removes from b the entries the sink's Checker refuses and
// returns them as letters, one per reason.
func (s *Shipper) precheck(b *Batch, now time.Time) []Letter {
	var byReason map[string]*Letter
	var order []string
	for _, st := range b.Streams {
		kept := st.Entries[:0]
		sreason, sdetail := s.checker.CheckStream(st.Labels)
		for i := range st.Entries {
			e := st.Entries[i]
			reason, detail := sreason, sdetail
			if reason == "" {
				reason, detail = s.checker.CheckEntry(&e, now)
			}
			if reason == "" {
				kept = append(kept, e)
				continue
			}
			if byReason == nil {
				byReason = map[string]*Letter{}
			}
			l := byReason[reason]
			if l == nil {
				l = &Letter{Sink: s.sink.Name(), Reason: reason, Detail: "refused before sending: " + detail}
				byReason[reason] = l
				order = append(order, reason)
			}
			l.Entries = append(l.Entries, deadEntry(st.Labels, &e, ""))
			b.Lines--
			b.Bytes -= len(e.Line)
		}
		clear(st.Entries[len(kept):])
		st.Entries = kept
	}
	if byReason == nil {
		return nil
	}
	b.compact()
	out := make([]Letter, 0, len(order))
	for _, r := range order {
		out = append(out, finishLetter(*byReason[r]))
	}
	return out
}

func deadEntry(ls *record.LabelSet, e *Entry, reason string) DeadEntry {
	var meta []record.Label
	if len(e.Metadata) > 0 {
		meta = append([]record.Label(nil), e.Metadata...)
	}
	return DeadEntry{
		Labels: ls, Time: e.Time, Line: append([]byte(nil), e.Line...), Metadata: meta,
		Flags: e.Flags, Source: e.Source, Offset: e.Offset, Index: e.Index, Reason: reason,
	}
}

// finishLetter sets the WAL range of l from its entries.
func finishLetter(l Letter) Letter {
	for i, e := range l.Entries {
		if i == 0 || e.Index < l.First {
			l.First = e.Index
		}
		if e.Index > l.Last {
			l.Last = e.Index
		}
	}
	return l
}

// deliver sends b until it is acknowledged, rejected or dead-lettered, or
// shutdown abandons it. It reports whether b is done with.
func (s *Shipper) deliver(ctx, sendCtx context.Context, b *Batch, rnd *rand.Rand) bool {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		probe, err := s.breaker.acquire(ctx)
		if err != nil {
			return false
		}
		if s.mark != nil {
			if err := s.mark.cover(sendCtx, b.Last); err != nil && sendCtx.Err() == nil {
				s.logger.Debug().Err(err).Uint64("wal_last", b.Last).Msg("ship: sending beyond the dispatch mark")
			}
		}
		t0 := time.Now()
		err = s.sink.Send(sendCtx, b)
		s.m.requestSeconds.WithLabelValues(statusClass(err)).Observe(time.Since(t0).Seconds())
		var (
			rje *RejectedError
			pe  *PermanentError
			re  *RetryError
		)
		switch {
		case err == nil:
			s.breaker.done(probe, outcomeSuccess)
			s.acked(b, b.Lines, b.Bytes)
			return true
		case errors.As(err, &rje):
			s.breaker.done(probe, outcomeSuccess)
			return s.rejected(sendCtx, b, rje, attempt+1, rnd)
		case errors.As(err, &pe):
			s.breaker.done(probe, outcomeSuccess)
			s.noteError(err, false)
			l := Letter{Sink: s.sink.Name(), Reason: pe.Reason, Attempts: attempt + 1, Detail: err.Error()}
			for _, st := range b.Streams {
				for i := range st.Entries {
					l.Entries = append(l.Entries, deadEntry(st.Labels, &st.Entries[i], ""))
				}
			}
			return s.deadLetter(sendCtx, []Letter{finishLetter(l)}, rnd)
		}
		if sendCtx.Err() != nil {
			s.breaker.done(probe, outcomeAborted)
			return false
		}
		outcome := outcomeFailure
		if errors.As(err, &re) && re.Status == 429 {
			outcome = outcomeSuccess // a rate limit is an answer
		}
		s.breaker.done(probe, outcome)
		if ctx.Err() != nil {
			return false
		}
		reason := reasonOf(err)
		s.m.retries.WithLabelValues(reason).Inc()
		n := s.noteError(err, true)
		if s.cfg.MaxElapsed > 0 && time.Since(start) >= s.cfg.MaxElapsed {
			s.logger.Error().Err(err).Uint64("wal_first", b.First).Uint64("wal_last", b.Last).Int("lines", b.Lines).
				Int("attempts", attempt+1).Msg("ship: max_elapsed reached; batch goes to the DLQ")
			l := Letter{Sink: s.sink.Name(), Reason: ReasonRetryExhausted, Attempts: attempt + 1, Detail: err.Error()}
			for _, st := range b.Streams {
				for i := range st.Entries {
					l.Entries = append(l.Entries, deadEntry(st.Labels, &st.Entries[i], ""))
				}
			}
			return s.deadLetter(sendCtx, []Letter{finishLetter(l)}, rnd)
		}
		delay := backoff(s.cfg.MinBackoff, s.cfg.MaxBackoff, attempt, rnd)
		if re != nil && re.RetryAfter > delay {
			delay = min(re.RetryAfter, s.cfg.MaxBackoff)
		}
		if s.cfg.MaxElapsed > 0 {
			delay = max(min(delay, s.cfg.MaxElapsed-time.Since(start)), time.Millisecond)
		}
		ev := s.logger.Warn()
		if n > 3 && n%10 != 0 {
			ev = s.logger.Debug()
		}
		ev.Err(err).Int("attempt", attempt+1).Dur("retry_in", delay).Uint64("wal_first", b.First).
			Msg("ship: send failed, will retry")
		if !sleep(ctx, delay) {
			return false
		}
	}
}

// rejected handles a partial rejection: the named entries go to the DLQ
// with their reasons, the uncertain ones marked partially accepted, and the
// rest counts as delivered. Nothing of b is sent again.
func (s *Shipper) rejected(ctx context.Context, b *Batch, rje *RejectedError, attempts int, rnd *rand.Rand) bool {
	s.noteError(rje, false)
	done := make([][]bool, len(b.Streams))
	for si, st := range b.Streams {
		done[si] = make([]bool, len(st.Entries))
	}
	byReason := map[string]*Letter{}
	var order []string
	letter := func(reason string, partial bool) *Letter {
		l := byReason[reason]
		if l == nil {
			l = &Letter{Sink: s.sink.Name(), Reason: reason, Attempts: attempts, PartiallyAccepted: partial, Detail: rje.Error()}
			byReason[reason] = l
			order = append(order, reason)
		}
		return l
	}
	for _, r := range rje.Rejected {
		if r.Stream < 0 || r.Stream >= len(b.Streams) || r.Entry < 0 || r.Entry >= len(done[r.Stream]) || done[r.Stream][r.Entry] {
			continue
		}
		done[r.Stream][r.Entry] = true
		st := b.Streams[r.Stream]
		l := letter(r.Reason, false)
		l.Entries = append(l.Entries, deadEntry(st.Labels, &st.Entries[r.Entry], ""))
	}
	for _, si := range rje.Uncertain {
		if si < 0 || si >= len(b.Streams) {
			continue
		}
		st := b.Streams[si]
		for ei := range st.Entries {
			if done[si][ei] {
				continue
			}
			done[si][ei] = true
			l := letter(ReasonPartiallyAccepted, true)
			l.Entries = append(l.Entries, deadEntry(st.Labels, &st.Entries[ei], ""))
		}
	}
	letters := make([]Letter, 0, len(order))
	for _, r := range order {
		letters = append(letters, finishLetter(*byReason[r]))
	}
	if !s.deadLetter(ctx, letters, rnd) {
		return false
	}
	// What remains was stored by the receiver.
	stored := &Batch{Created: b.Created}
	lines, bytes := 0, 0
	for si, st := range b.Streams {
		var kept []Entry
		for ei := range st.Entries {
			if !done[si][ei] {
				kept = append(kept, st.Entries[ei])
				lines++
				bytes += len(st.Entries[ei].Line)
			}
		}
		if len(kept) > 0 {
			stored.Streams = append(stored.Streams, &Stream{Labels: st.Labels, Entries: kept})
		}
	}
	if lines > 0 {
		s.acked(stored, lines, bytes)
	}
	return true
}

// acked accounts for lines the receiver stored.
func (s *Shipper) acked(b *Batch, lines, bytes int) {
	now := time.Now()
	s.m.linesShipped.Add(float64(lines))
	s.m.bytesShipped.Add(float64(bytes))
	s.m.batches.Inc()
	s.m.lagSeconds.Observe(now.Sub(b.Created).Seconds())
	s.mu.Lock()
	s.status.ConsecutiveErrors = 0
	s.status.LastSuccess = now
	s.status.LinesShipped += uint64(lines)
	s.mu.Unlock()
	if s.dedup != nil {
		s.dedup.record(b, now)
	}
}

// noteError records err in the status and returns the consecutive count.
func (s *Shipper) noteError(err error, transient bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if transient {
		s.status.ConsecutiveErrors++
	}
	s.status.LastError, s.status.LastErrorTime = err.Error(), time.Now()
	return s.status.ConsecutiveErrors
}

// deadLetter hands letters to the DLQ, retrying a failing DLQ until ctx
// ends (entries are never dropped: an abandoned batch is read again after
// restart). Without a DLQ the lines are counted and logged.
func (s *Shipper) deadLetter(ctx context.Context, letters []Letter, rnd *rand.Rand) bool {
	for _, l := range letters {
		if len(l.Entries) == 0 {
			continue
		}
		for attempt := 0; s.dl != nil; attempt++ {
			err := s.dl.DeadLetter(ctx, l)
			if err == nil {
				break
			}
			s.m.dlqErrors.Inc()
			delay := backoff(s.cfg.MinBackoff, s.cfg.MaxBackoff, attempt, rnd)
			s.logger.Error().Err(err).Str("reason", l.Reason).Int("lines", len(l.Entries)).Dur("retry_in", delay).
				Msg("ship: DLQ refused entries; will retry")
			if !sleep(ctx, delay) {
				return false
			}
		}
		s.m.deadLettered.WithLabelValues(l.Reason).Add(float64(len(l.Entries)))
		s.mu.Lock()
		s.status.LinesRejected += uint64(len(l.Entries))
		s.mu.Unlock()
		ev := s.logger.Warn()
		if s.dl == nil {
			ev = s.logger.Error()
		}
		ev.Str("reason", l.Reason).Bool("partially_accepted", l.PartiallyAccepted).Int("lines", len(l.Entries)).
			Uint64("wal_first", l.First).Uint64("wal_last", l.Last).Bool("dlq", s.dl != nil).Str("detail", l.Detail).
			Msg("ship: entries dead-lettered")
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// loadDedup fills the dedup window from the store.
func (s *Shipper) loadDedup() {
	if s.dedup == nil || s.dstore == nil {
		return
	}
	now := time.Now()
	n := 0
	err := s.dstore.LoadDedup(s.sink.Name(), now.Add(-s.cfg.Dedup.Window), func(at time.Time, keys []uint64) {
		s.dedup.load(at, keys, now)
		s.noteSave(at, len(keys))
		n += len(keys)
	})
	if err != nil {
		s.logger.Error().Err(err).Msg("ship: dedup keys not loaded; duplicates of the last run are possible")
		return
	}
	s.logger.Debug().Int("keys", n).Msg("ship: dedup window loaded")
}

// saveDedup checkpoints the keys recorded since the last save.
func (s *Shipper) saveDedup() {
	keys := s.dedup.takeUnsaved()
	if len(keys) == 0 {
		return
	}
	now := time.Now()
	expire := s.noteSave(now, len(keys))
	if err := s.dstore.SaveDedup(s.sink.Name(), now, keys, expire); err != nil {
		s.dedup.putBack(keys)
		s.saves = s.saves[:len(s.saves)-1]
		s.logger.Error().Err(err).Int("keys", len(keys)).Msg("ship: dedup checkpoint failed; will retry")
	}
}

// noteSave records a checkpoint of n keys at at and returns the time
// before which checkpoints can go: older than the window, or beyond the
// newest MaxKeys keys (what the set in memory would keep), so the state
// file holds at most about MaxKeys keys whatever the line rate.
func (s *Shipper) noteSave(at time.Time, n int) time.Time {
	if k := len(s.saves); k > 0 && s.saves[k-1].at.Equal(at) {
		s.saves[k-1].n += n // one save split into several values
	} else {
		s.saves = append(s.saves, savedKeys{at: at, n: n})
	}
	total := 0
	for _, c := range s.saves {
		total += c.n
	}
	drop := 0
	for drop < len(s.saves)-1 && total-s.saves[drop].n >= s.cfg.Dedup.MaxKeys {
		total -= s.saves[drop].n
		drop++
	}
	expire := at.Add(-s.cfg.Dedup.Window)
	for drop < len(s.saves) && s.saves[drop].at.Before(expire) {
		drop++
	}
	s.saves = append(s.saves[:0], s.saves[drop:]...)
	if len(s.saves) > 0 && s.saves[0].at.After(expire) {
		expire = s.saves[0].at
	}
	return expire
}

// backoff is exponential with full jitter: uniform in [0, min(max, min·2^n)],
// and never below a millisecond.
func backoff(lo, hi time.Duration, attempt int, rnd *rand.Rand) time.Duration {
	ceil := hi
	if attempt < 40 {
		if c := lo << uint(attempt); c > 0 && c < hi {
			ceil = c
		}
	}
	d := time.Duration(rnd.Int64N(int64(ceil) + 1))
	return max(d, time.Millisecond)
}
