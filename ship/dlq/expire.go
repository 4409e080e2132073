package dlq

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/logcapturer/log_capturer_go/state"
)

// Run expires letters and request ids every CheckInterval (and once at
// start) until ctx ends. Failures are logged and retried at the next tick.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	for {
		if _, err := s.Expire(); err != nil {
			s.log.Error().Err(err).Msg("dlq: expiry failed; will retry")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ExpireReport says what one expiry pass removed.
type ExpireReport struct {
	// ByRetention and ByMaxBytes count the pending letters expired (their
	// lines are lost); Lines is the sum of their lines.
	ByRetention int `json:"by_retention"`
	ByMaxBytes  int `json:"by_max_bytes"`
	Lines       int `json:"lines"`
	// Forgotten counts reprocessed letters' records dropped after retention.
	Forgotten int `json:"forgotten"`
	// Requests counts reprocess request ids past their TTL.
	Requests int `json:"requests"`
}

// Expire runs one expiry pass now: pending letters older than Retention,
// then the oldest pending letters while the files exceed MaxBytes, then
// request ids past RequestTTL. Letters a reprocess is sending are skipped.
func (s *Store) Expire() (ExpireReport, error) {
	now := s.cfg.Now()
	cutoff := now.Add(-s.cfg.Retention).UnixNano()
	var rep ExpireReport
	var errs []error

	s.mu.Lock()
	var old []*state.DLQLetter
	var forget []uint64
	for _, l := range s.letters {
		switch {
		case s.busy[l.ID]:
		case l.Status == state.DLQPending && l.CreatedUnixNano < cutoff:
			old = append(old, l)
		case l.Status == state.DLQReprocessed && l.UpdatedUnixNano < cutoff:
			forget = append(forget, l.ID)
		}
	}
	n, lines, err := s.dropLocked(old, "retention", forget)
	if err != nil {
		errs = append(errs, err)
	}
	rep.ByRetention, rep.Lines = n, lines
	if len(forget) > 0 && s.letters[forget[0]] == nil {
		rep.Forgotten = len(forget)
	}
	n, lines, err = s.enforceMaxBytesLocked()
	if err != nil {
		errs = append(errs, err)
	}
	rep.ByMaxBytes = n
	rep.Lines += lines
	s.updateGaugesLocked()
	s.mu.Unlock()

	if n, err := s.st.DeleteExpiredDLQRequests(now.UnixNano()); err != nil {
		errs = append(errs, err)
	} else {
		rep.Requests = n
	}
	return rep, errors.Join(errs...)
}

// enforceMaxBytesLocked expires the oldest pending letters (lowest ids:
// ids grow with time) until the files fit MaxBytes.
func (s *Store) enforceMaxBytesLocked() (int, int, error) {
	if s.held <= s.cfg.MaxBytes {
		return 0, 0, nil
	}
	var pending []*state.DLQLetter
	for _, l := range s.letters {
		if l.Status == state.DLQPending && !s.busy[l.ID] {
			pending = append(pending, l)
		}
	}
	slices.SortFunc(pending, func(a, b *state.DLQLetter) int { return cmpUint(a.ID, b.ID) })
	over := s.held - s.cfg.MaxBytes
	var victims []*state.DLQLetter
	for _, l := range pending {
		if over <= 0 {
			break
		}
		victims = append(victims, l)
		over -= l.Bytes
	}
	return s.dropLocked(victims, "max_bytes", nil)
}

// dropLocked expires victims (counted and logged as loss) and forgets the
// records of reprocessed letters, index first: a crash before the files are
// removed leaves orphan files, which Open indexes again (kept, not lost).
func (s *Store) dropLocked(victims []*state.DLQLetter, cause string, forget []uint64) (int, int, error) {
	if len(victims) == 0 && len(forget) == 0 {
		return 0, 0, nil
	}
	ids := slices.Clone(forget)
	for _, l := range victims {
		ids = append(ids, l.ID)
	}
	if err := s.st.DeleteDLQLetters(ids...); err != nil {
		return 0, 0, err
	}
	for _, id := range forget {
		delete(s.letters, id)
	}
	lines := 0
	var rmErr error
	for _, l := range victims {
		delete(s.letters, l.ID)
		s.held -= l.Bytes
		lines += l.Lines
		if err := os.Remove(filepath.Join(s.cfg.Dir, l.File)); err != nil && !errors.Is(err, os.ErrNotExist) {
			rmErr = errors.Join(rmErr, err)
		}
		s.m.expiredLetters.WithLabelValues(cause).Inc()
		s.m.expiredLines.WithLabelValues(l.Sink, l.Reason, cause).Add(float64(l.Lines))
		s.log.Error().Uint64("letter", l.ID).Str("sink", l.Sink).Str("reason", l.Reason).Str("cause", cause).
			Uint64("wal_first", l.First).Uint64("wal_last", l.Last).Int("lost_lines", l.Lines).
			Time("created", time.Unix(0, l.CreatedUnixNano)).Msg("dlq: letter expired; its lines are lost")
	}
	return len(victims), lines, rmErr
}
