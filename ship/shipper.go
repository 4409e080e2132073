package ship

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Config tunes one shipper.
type Config struct {
	// BatchBytes closes a batch once its lines add up to this many bytes.
	BatchBytes int
	// MaxRequestBytes is the hard cap of line bytes in one batch.
	MaxRequestBytes int
	// BatchWait closes a non-empty batch once it is this old.
	BatchWait time.Duration
	// Concurrency is the number of batches in flight.
	Concurrency int
	// MinBackoff and MaxBackoff bound the retry delays (full jitter).
	MinBackoff, MaxBackoff time.Duration
	// DrainTimeout is how long in-flight batches may finish after shutdown
	// starts. What is not acknowledged by then is sent again after restart.
	DrainTimeout time.Duration
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
	return errors.Join(errs...)
}

// CursorStore persists a shipper's cursor (the state store, batched).
type CursorStore interface {
	SetCursor(name string, next uint64)
}

// Shipper reads the WAL from its cursor and delivers batches to one sink.
type Shipper struct {
	cfg    Config
	log    *wal.Log
	sink   Sink
	cursor *wal.Cursor
	store  CursorStore
	logger zerolog.Logger
	m      *metrics
	name   string

	mu     sync.Mutex
	status Status
}

// Status is a snapshot for /stats and /health.
type Status struct {
	Sink              string    `json:"sink"`
	Cursor            uint64    `json:"cursor"`
	LagEntries        uint64    `json:"lag_entries"`
	InFlight          int       `json:"in_flight"`
	ConsecutiveErrors int       `json:"consecutive_errors"`
	LastError         string    `json:"last_error,omitempty"`
	LastErrorTime     time.Time `json:"last_error_time,omitzero"`
	LastSuccess       time.Time `json:"last_success,omitzero"`
	LinesShipped      uint64    `json:"lines_shipped"`
	LinesRejected     uint64    `json:"lines_rejected"`
}

// CursorName is the name under which a sink's cursor is registered and stored.
func CursorName(sink string) string { return "ship/" + sink }

// New builds a shipper that starts at WAL index start. It starts nothing.
func New(cfg Config, l *wal.Log, start uint64, sink Sink, store CursorStore, logger zerolog.Logger, reg prometheus.Registerer) (*Shipper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = Defaults().DrainTimeout
	}
	m, err := newMetrics(reg, sink.Name())
	if err != nil {
		return nil, err
	}
	name := CursorName(sink.Name())
	return &Shipper{
		cfg:    cfg,
		log:    l,
		sink:   sink,
		cursor: l.RegisterCursor(name, start),
		store:  store,
		logger: logger.With().Str("component", "ship").Str("sink", sink.Name()).Logger(),
		m:      m,
		name:   name,
		status: Status{Sink: sink.Name(), Cursor: start},
	}, nil
}

// Status returns a snapshot of the shipper's state.
func (s *Shipper) Status() Status {
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	st.Cursor = s.cursor.Next()
	if c := s.log.CommittedIndex(); c+1 > st.Cursor {
		st.LagEntries = c + 1 - st.Cursor
	}
	return st
}

type result struct {
	b  *Batch
	ok bool // acknowledged or permanently rejected: the cursor may pass it
}

// Run ships until ctx ends, then lets in-flight batches finish for up to
// DrainTimeout, persists the cursor and returns.
func (s *Shipper) Run(ctx context.Context) error {
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	// Sends outlive ctx by DrainTimeout so that shutdown does not throw away
	// requests that are about to be acknowledged.
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

	sealed := make(chan *Batch)
	readErr := make(chan error, 1)
	go func() { readErr <- s.read(readCtx, sealed) }()

	work := make(chan *Batch, s.cfg.Concurrency)
	results := make(chan result, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := 0; i < s.cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			for b := range work {
				results <- result{b: b, ok: s.deliver(sendCtx, b, rnd)}
			}
		}()
	}

	var (
		inflight []*Batch
		acked    = map[uint64]bool{}
		reading  = true
		err      error
	)
	frozen := false // a batch was abandoned at shutdown: the cursor stays before it
	complete := func(r result) {
		acked[r.b.Seq] = r.ok
		n := 0
		for _, b := range inflight {
			ok, seen := acked[b.Seq]
			if !seen {
				break
			}
			delete(acked, b.Seq)
			if !ok {
				frozen = true
			}
			if !frozen {
				s.cursor.Set(b.Last + 1)
			}
			n++
		}
		if n > 0 {
			inflight = append(inflight[:0], inflight[n:]...)
			s.store.SetCursor(s.name, s.cursor.Next())
		}
		s.mu.Lock()
		s.status.InFlight = len(inflight)
		s.mu.Unlock()
		s.m.inflight.Set(float64(len(inflight)))
	}
	for reading || len(inflight) > 0 {
		var in chan *Batch
		if reading && len(inflight) < s.cfg.Concurrency {
			in = sealed
		}
		select {
		case b := <-in:
			inflight = append(inflight, b)
			work <- b
			s.m.inflight.Set(float64(len(inflight)))
		case r := <-results:
			complete(r)
		case e := <-readErr:
			reading = false
			if e != nil && !errors.Is(e, context.Canceled) && !errors.Is(e, wal.ErrClosed) {
				err = e
			}
			if len(inflight) > 0 && !errorsIsDone(ctx) {
				// The reader failed on its own: stop sending too.
				stopSend()
			}
		}
		s.m.lag.Set(float64(s.Status().LagEntries))
	}
	close(work)
	wg.Wait()
	s.store.SetCursor(s.name, s.cursor.Next())
	return err
}

func errorsIsDone(ctx context.Context) bool { return ctx.Err() != nil }

// read turns WAL entries into batches and hands them to sealed.
func (s *Shipper) read(ctx context.Context, sealed chan<- *Batch) error {
	r := s.log.NewReader(s.cursor.Next())
	var (
		cur *Batch
		seq uint64
	)
	seal := func() error {
		if cur == nil || cur.Last < cur.First {
			return nil
		}
		select {
		case sealed <- cur:
		case <-ctx.Done():
			return ctx.Err()
		}
		cur = nil
		return nil
	}
	var rec record.Record
	for {
		var (
			idx     uint64
			payload []byte
			err     error
		)
		if cur != nil && cur.Lines > 0 {
			wctx, cancel := context.WithDeadline(ctx, cur.Created.Add(s.cfg.BatchWait))
			idx, payload, err = r.Read(wctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				if err := seal(); err != nil {
					return err
				}
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
			s.m.corrupt.Inc()
			s.logger.Error().Err(err).Uint64("resume_at", ce.Next).Msg("ship: skipping damaged WAL entries")
			if cur == nil {
				seq++
				cur = newBatch(seq, r.Next())
			}
			cur.Last = ce.Next - 1
			r.Seek(ce.Next)
			continue
		case errors.As(err, &eb):
			s.m.corrupt.Inc()
			s.logger.Error().Err(err).Msg("ship: WAL entries were removed before delivery")
			if cur != nil {
				if err := seal(); err != nil {
					return err
				}
			}
			r.Seek(eb.First)
			seq++
			cur = newBatch(seq, eb.First)
			continue
		default:
			if e := seal(); e != nil && ctx.Err() == nil {
				return e
			}
			return err
		}
		dec, derr := record.NewDecoder(payload)
		if derr != nil {
			s.m.corrupt.Inc()
			s.logger.Error().Err(derr).Uint64("index", idx).Msg("ship: undecodable WAL entry skipped")
			if cur == nil {
				seq++
				cur = newBatch(seq, idx)
			}
			cur.Last = idx
			continue
		}
		size := len(payload)
		if cur != nil && cur.Lines > 0 && cur.Bytes+size > s.cfg.MaxRequestBytes {
			if err := seal(); err != nil {
				return err
			}
		}
		if cur == nil {
			seq++
			cur = newBatch(seq, idx)
		}
		for dec.Next(&rec) {
			cur.add(&rec)
		}
		if err := dec.Err(); err != nil {
			s.m.corrupt.Inc()
			s.logger.Error().Err(err).Uint64("index", idx).Msg("ship: WAL entry decoded only in part")
		}
		cur.Last = idx
		if cur.Bytes >= s.cfg.BatchBytes {
			if err := seal(); err != nil {
				return err
			}
		}
	}
}

// deliver sends b until it is acknowledged, permanently rejected, or ctx
// ends. It reports whether the cursor may pass b.
func (s *Shipper) deliver(ctx context.Context, b *Batch, rnd *rand.Rand) bool {
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := s.sink.Send(ctx, b)
		s.m.sendSeconds.WithLabelValues(outcomeOf(err)).Observe(time.Since(start).Seconds())
		if err == nil {
			s.m.linesShipped.Add(float64(b.Lines))
			s.m.bytesShipped.Add(float64(b.Bytes))
			s.m.batches.Inc()
			s.m.lagSeconds.Observe(time.Since(b.Created).Seconds())
			s.mu.Lock()
			s.status.ConsecutiveErrors = 0
			s.status.LastSuccess = time.Now()
			s.status.LinesShipped += uint64(b.Lines)
			s.mu.Unlock()
			return true
		}
		var pe *PermanentError
		if errors.As(err, &pe) {
			s.m.rejected.WithLabelValues(pe.Reason).Add(float64(b.Lines))
			s.logger.Error().Err(err).Uint64("wal_first", b.First).Uint64("wal_last", b.Last).Int("lines", b.Lines).
				Msg("ship: batch rejected for good; lines counted as rejected, WAL range kept for replay")
			s.mu.Lock()
			s.status.LinesRejected += uint64(b.Lines)
			s.status.LastError, s.status.LastErrorTime = err.Error(), time.Now()
			s.mu.Unlock()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		reason := reasonOf(err)
		s.m.retries.WithLabelValues(reason).Inc()
		delay := backoff(s.cfg.MinBackoff, s.cfg.MaxBackoff, attempt, rnd)
		var re *RetryError
		if errors.As(err, &re) && re.RetryAfter > delay {
			delay = min(re.RetryAfter, s.cfg.MaxBackoff)
		}
		s.mu.Lock()
		s.status.ConsecutiveErrors++
		s.status.LastError, s.status.LastErrorTime = err.Error(), time.Now()
		n := s.status.ConsecutiveErrors
		s.mu.Unlock()
		ev := s.logger.Warn()
		if n > 3 && n%10 != 0 {
			ev = s.logger.Debug()
		}
		ev.Err(err).Int("attempt", attempt+1).Dur("retry_in", delay).Uint64("wal_first", b.First).
			Msg("ship: send failed, will retry")
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
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

func outcomeOf(err error) string {
	if err == nil {
		return "ok"
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return "rejected"
	}
	return "retry"
}
