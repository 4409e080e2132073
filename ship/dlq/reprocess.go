package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/state"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

var (
	// ErrInvalidRequest marks a request the caller must fix.
	ErrInvalidRequest = errors.New("dlq: invalid reprocess request")
	// ErrRequestIDReused marks a request id already used for a different
	// selection: repeating an id must repeat the request, not change it.
	ErrRequestIDReused = errors.New("dlq: request id already used for a different request")
)

// Bounds on what a Result lists, so that it fits the state file.
const (
	maxOutcomes = 1000
	maxSpans    = 200
	maxIDBytes  = 200
	maxErrBytes = 512
)

// Request selects what to send again. It has two modes:
//
//   - letters (no range field set): the pending letters that match Sink,
//     Reason and Letters (zero fields match all), each sent to the sink
//     that rejected it, from its file;
//   - replay (any of FromIndex, ToIndex, Since, Until set): the WAL entries
//     still held in the index range [FromIndex, ToIndex] (0: open end) whose
//     lines' timestamps are in [Since, Until) (zero: open end), sent to Sink
//     (empty: every sink), whether they were delivered before or not.
type Request struct {
	// ID makes the request idempotent: a request with an id already
	// carried out returns the stored outcome and sends nothing. Required
	// unless DryRun.
	ID        string    `json:"id,omitempty"`
	Sink      string    `json:"sink,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Letters   []uint64  `json:"letters,omitempty"`
	FromIndex uint64    `json:"from_index,omitempty"`
	ToIndex   uint64    `json:"to_index,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Until     time.Time `json:"until,omitzero"`
	// Limit caps the letters (letters mode) or WAL entries (replay mode)
	// handled; 0 means no cap.
	Limit int `json:"limit,omitempty"`
	// DryRun reports what would be sent. Nothing is sent or remembered.
	DryRun bool `json:"dry_run,omitempty"`
}

// IsReplay says whether the request replays a WAL range.
func (r Request) IsReplay() bool {
	return r.FromIndex != 0 || r.ToIndex != 0 || !r.Since.IsZero() || !r.Until.IsZero()
}

func (r Request) normalized() Request {
	r.DryRun = false
	if !r.Since.IsZero() {
		r.Since = r.Since.UTC()
	}
	if !r.Until.IsZero() {
		r.Until = r.Until.UTC()
	}
	if len(r.Letters) > 0 {
		r.Letters = slices.Compact(slices.Sorted(slices.Values(r.Letters)))
	}
	return r
}

func (r Request) validate(sinks map[string]ship.Sink) error {
	var probs []string
	switch {
	case r.ID == "" && !r.DryRun:
		probs = append(probs, "id is required (it makes a repeated request harmless)")
	case len(r.ID) > maxIDBytes:
		probs = append(probs, fmt.Sprintf("id of %d bytes, max %d", len(r.ID), maxIDBytes))
	}
	if r.IsReplay() && (r.Reason != "" || len(r.Letters) > 0) {
		probs = append(probs, "a WAL range replay cannot select by reason or letter")
	}
	if r.ToIndex != 0 && r.FromIndex > r.ToIndex {
		probs = append(probs, fmt.Sprintf("from_index %d is after to_index %d", r.FromIndex, r.ToIndex))
	}
	if !r.Since.IsZero() && !r.Until.IsZero() && !r.Until.After(r.Since) {
		probs = append(probs, "until must be after since")
	}
	if r.Limit < 0 {
		probs = append(probs, fmt.Sprintf("limit %d is negative", r.Limit))
	}
	// Letters name their own sink (one no longer configured fails as that
	// letter's outcome); a replay needs the sink to exist.
	if r.IsReplay() && r.Sink != "" && sinks[r.Sink] == nil {
		probs = append(probs, fmt.Sprintf("unknown sink %q (configured: %s)", r.Sink, strings.Join(sortedKeys(sinks), ", ")))
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidRequest, strings.Join(probs, "; "))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

// Result is the outcome of a request, stored under its id.
type Result struct {
	Request Request `json:"request"`
	Mode    string  `json:"mode"` // "letters" or "replay"
	DryRun  bool    `json:"dry_run,omitempty"`
	// Repeated: this is the stored outcome of an earlier run with the same
	// id; nothing was sent now.
	Repeated bool `json:"repeated"`
	// Resumed: an earlier run with this id was interrupted (crash,
	// cancelled request) and this run carried it on.
	Resumed    bool      `json:"resumed,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`

	LinesSent   int64 `json:"lines_sent"` // summed over sinks
	LinesFailed int64 `json:"lines_failed"`
	Batches     int   `json:"batches"`

	// Letters mode.
	Reprocessed    int             `json:"reprocessed_letters,omitempty"`
	FailedLetters  int             `json:"failed_letters,omitempty"`
	Letters        []LetterOutcome `json:"letters,omitempty"`
	LettersOmitted int             `json:"letters_omitted,omitempty"`

	// Replay mode.
	Sinks       []string `json:"sinks,omitempty"`
	From        uint64   `json:"from_index,omitempty"`
	To          uint64   `json:"to_index,omitempty"`
	Next        uint64   `json:"next_index,omitempty"` // first index not handled yet
	EntriesRead int64    `json:"entries_read,omitempty"`
	Lines       int64    `json:"lines_matched,omitempty"`
	Unavailable []Span   `json:"unavailable,omitempty"`
	Failed      []Span   `json:"failed,omitempty"`
	SpansOmit   int      `json:"spans_omitted,omitempty"`
}

// LetterOutcome is what happened to one letter.
type LetterOutcome struct {
	ID     uint64 `json:"id"`
	Sink   string `json:"sink,omitempty"`
	Reason string `json:"reason,omitempty"`
	Lines  int    `json:"lines"`
	// Status: reprocessed, partly_rejected (the refused entries became new
	// letters), failed, would_send, not_found, not_selected, not_pending.
	Status   string `json:"status"`
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Span is a WAL index range that could not be replayed (or not delivered).
type Span struct {
	From  uint64 `json:"from_index"`
	To    uint64 `json:"to_index"`
	Sink  string `json:"sink,omitempty"`
	Lines int    `json:"lines,omitempty"`
	Why   string `json:"why"`
}

func (res *Result) addOutcome(o LetterOutcome) {
	if len(res.Letters) >= maxOutcomes {
		res.LettersOmitted++
		return
	}
	res.Letters = append(res.Letters, o)
}

func addSpan(list []Span, omitted *int, sp Span) []Span {
	if n := len(list); n > 0 {
		last := &list[n-1]
		if last.Why == sp.Why && last.Sink == sp.Sink && last.To+1 >= sp.From {
			last.To = max(last.To, sp.To)
			last.Lines += sp.Lines
			return list
		}
	}
	if len(list) >= maxSpans {
		*omitted++
		return list
	}
	return append(list, sp)
}

// Reprocess carries out req once per id. sinks are the sinks to send to
// (by Name); wal is read for replays (nil refuses them). Errors wrap
// ErrInvalidRequest or ErrRequestIDReused where the caller must change the
// request; an error from ctx leaves the request resumable under its id.
func (s *Store) Reprocess(ctx context.Context, req Request, sinks []ship.Sink, wal WALSource) (*Result, error) {
	byName := make(map[string]ship.Sink, len(sinks))
	for _, sk := range sinks {
		byName[sk.Name()] = sk
	}
	if err := req.validate(byName); err != nil {
		return nil, err
	}
	if req.IsReplay() && wal == nil {
		return nil, fmt.Errorf("%w: WAL replay is not available here", ErrInvalidRequest)
	}
	s.reprocessMu.Lock()
	defer s.reprocessMu.Unlock()

	norm := req.normalized()
	res := &Result{Request: norm, DryRun: req.DryRun, StartedAt: s.cfg.Now().UTC(), Mode: "letters"}
	if req.IsReplay() {
		res.Mode = "replay"
	}
	var created int64
	if !req.DryRun {
		prev, ok, err := s.loadRequest(req.ID)
		if err != nil {
			return nil, err
		}
		if ok {
			if !sameRequest(prev.res.Request, norm) {
				return nil, fmt.Errorf("%w: %q", ErrRequestIDReused, req.ID)
			}
			if prev.status == state.DLQRequestDone {
				s.m.requests.WithLabelValues("repeated").Inc()
				out := *prev.res
				out.Repeated = true
				s.log.Info().Str("request", req.ID).Msg("dlq: repeated reprocess request; returning the stored outcome")
				return &out, nil
			}
			res, created = prev.res, prev.created
			res.Resumed = true
			s.log.Warn().Str("request", req.ID).Msg("dlq: resuming an interrupted reprocess request")
		} else {
			created = s.cfg.Now().UnixNano()
			if err := s.saveRequest(req.ID, state.DLQRequestRunning, created, res); err != nil {
				return nil, err
			}
		}
	}

	var err error
	if req.IsReplay() {
		err = s.replay(ctx, req, res, byName, wal, created)
	} else {
		err = s.reprocessLetters(ctx, req, res, byName, created)
	}
	if err != nil {
		s.m.requests.WithLabelValues("failed").Inc()
		return nil, err
	}
	res.FinishedAt = s.cfg.Now().UTC()
	if req.DryRun {
		s.m.requests.WithLabelValues("dry_run").Inc()
		return res, nil
	}
	if err := s.saveRequest(req.ID, state.DLQRequestDone, created, res); err != nil {
		s.m.requests.WithLabelValues("failed").Inc()
		return nil, fmt.Errorf("dlq: the request ran but its outcome could not be stored "+
			"(repeating it resumes harmlessly): %w", err)
	}
	s.m.requests.WithLabelValues("done").Inc()
	s.log.Info().Str("request", req.ID).Str("mode", res.Mode).Int64("lines_sent", res.LinesSent).
		Int64("lines_failed", res.LinesFailed).Int("reprocessed_letters", res.Reprocessed).
		Int("failed_letters", res.FailedLetters).Msg("dlq: reprocess request done")
	return res, nil
}

func sameRequest(a, b Request) bool {
	ja, _ := json.Marshal(a.normalized())
	jb, _ := json.Marshal(b.normalized())
	return bytes.Equal(ja, jb)
}

// StoredRequest returns the request stored under id (normalized: times in
// UTC, letter ids sorted), so a caller that resolved relative times can
// repeat it exactly.
func (s *Store) StoredRequest(id string) (Request, bool, error) {
	prev, ok, err := s.loadRequest(id)
	if err != nil || !ok {
		return Request{}, false, err
	}
	return prev.res.Request, true, nil
}

type storedRequest struct {
	status  state.DLQRequestStatus
	created int64
	res     *Result
}

func (s *Store) loadRequest(id string) (storedRequest, bool, error) {
	q, ok, err := s.st.DLQRequest(id)
	if err != nil || !ok {
		return storedRequest{}, false, err
	}
	var res Result
	if err := json.Unmarshal(q.Result, &res); err != nil {
		return storedRequest{}, false, fmt.Errorf("dlq: stored request %q: %w", id, err)
	}
	return storedRequest{status: q.Status, created: q.CreatedUnixNano, res: &res}, true, nil
}

func (s *Store) saveRequest(id string, status state.DLQRequestStatus, created int64, res *Result) error {
	body, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("dlq: encode result: %w", err)
	}
	return s.st.PutDLQRequest(state.DLQRequest{ID: id, Status: status, CreatedUnixNano: created,
		ExpiresUnixNano: created + int64(s.cfg.RequestTTL), Result: body})
}

// reprocessLetters sends the selected pending letters, each to its sink.
// Letters already reprocessed drop out of the selection, which is what makes
// a resumed request skip them.
func (s *Store) reprocessLetters(ctx context.Context, req Request, res *Result, sinks map[string]ship.Sink, created int64) error {
	sel := s.Letters(Filter{Sink: req.Sink, Reason: req.Reason, IDs: req.Letters})
	var pending []state.DLQLetter
	for _, l := range sel {
		if l.Status == state.DLQPending {
			pending = append(pending, l)
		} else if len(req.Letters) > 0 && !res.Resumed {
			res.addOutcome(LetterOutcome{ID: l.ID, Sink: l.Sink, Reason: l.Reason, Lines: l.Lines, Status: "not_pending"})
		}
	}
	if !res.Resumed {
		for _, id := range req.normalized().Letters {
			if !slices.ContainsFunc(sel, func(l state.DLQLetter) bool { return l.ID == id }) {
				status := "not_found"
				if _, ok := s.Letter(id); ok {
					status = "not_selected" // exists, but another filter excludes it
				}
				res.addOutcome(LetterOutcome{ID: id, Status: status})
			}
		}
	}
	if req.Limit > 0 && len(pending) > req.Limit {
		pending = pending[:req.Limit]
	}
	for _, l := range pending {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dlq: reprocess: %w", err)
		}
		if req.DryRun {
			res.addOutcome(LetterOutcome{ID: l.ID, Sink: l.Sink, Reason: l.Reason, Lines: l.Lines, Status: "would_send"})
			res.LinesSent += int64(l.Lines)
			continue
		}
		out, err := s.reprocessLetter(ctx, l, sinks[l.Sink], res)
		if err != nil {
			return err
		}
		res.addOutcome(out)
		if err := s.saveRequest(req.ID, state.DLQRequestRunning, created, res); err != nil {
			return err
		}
	}
	return nil
}

// reprocessLetter sends one letter. Only a ctx error is returned as an
// error; every other failure is the letter's outcome.
func (s *Store) reprocessLetter(ctx context.Context, l state.DLQLetter, sink ship.Sink, res *Result) (LetterOutcome, error) {
	out := LetterOutcome{ID: l.ID, Sink: l.Sink, Reason: l.Reason, Lines: l.Lines}
	s.mu.Lock()
	cur := s.letters[l.ID]
	if cur == nil || cur.Status != state.DLQPending {
		s.mu.Unlock()
		out.Status = "not_found" // expired meanwhile
		return out, nil
	}
	s.busy[l.ID] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.busy, l.ID)
		s.mu.Unlock()
	}()

	fail := func(attempts int, err error) (LetterOutcome, error) {
		out.Status, out.Attempts, out.Error = "failed", attempts, clip(err.Error(), maxErrBytes)
		res.FailedLetters++
		res.LinesFailed += int64(l.Lines)
		s.m.reprocFailures.WithLabelValues(l.Sink, errReason(err)).Inc()
		s.markFailed(l.ID, attempts, out.Error)
		s.log.Warn().Uint64("letter", l.ID).Str("sink", l.Sink).Err(err).Msg("dlq: reprocess of a letter failed")
		return out, nil
	}
	if sink == nil {
		return fail(0, fmt.Errorf("sink %q is not configured", l.Sink))
	}
	entries, err := s.readEntries(l)
	if err != nil {
		return fail(0, err)
	}
	var bb BatchBuilder
	attempts := 0
	var rejected, uncertain []ship.DeadEntry
	var rejectMsg string
	flush := func() error {
		b := bb.Take()
		if b == nil {
			return nil
		}
		n, err := s.send(ctx, sink, b)
		attempts += n
		var rje *ship.RejectedError
		if errors.As(err, &rje) {
			// Part of the batch is stored now: it must not be sent again,
			// so what was refused becomes a new letter instead.
			r, u := splitRejected(b, rje)
			rejected, uncertain = append(rejected, r...), append(uncertain, u...)
			rejectMsg = err.Error()
			res.Batches++
			return nil
		}
		if err == nil {
			res.Batches++
		}
		return err
	}
	for _, e := range entries {
		bb.AddDead(e)
		if bb.Bytes() >= s.cfg.BatchBytes {
			if err := flush(); err != nil {
				if ctx.Err() != nil {
					return out, fmt.Errorf("dlq: reprocess: %w", ctx.Err())
				}
				return fail(attempts, err)
			}
		}
	}
	if err := flush(); err != nil {
		if ctx.Err() != nil {
			return out, fmt.Errorf("dlq: reprocess: %w", ctx.Err())
		}
		return fail(attempts, err)
	}
	out.Status, out.Attempts = "reprocessed", attempts
	refused := len(rejected) + len(uncertain)
	if refused > 0 {
		ids, err := s.requeue(ctx, l, attempts, rejectMsg, rejected, uncertain)
		if err != nil {
			// The refused entries exist only in this letter: keep it.
			return fail(attempts, fmt.Errorf("%s; keeping the letter, its refused entries could not be stored apart: %w", rejectMsg, err))
		}
		out.Status = "partly_rejected"
		out.Error = clip(fmt.Sprintf("%s; %d refused entries kept as letter(s) %v", rejectMsg, refused, ids), maxErrBytes)
		res.LinesFailed += int64(refused)
	}
	res.Reprocessed++
	res.LinesSent += int64(l.Lines - refused)
	s.m.reprocLetters.WithLabelValues(l.Sink).Inc()
	s.m.reprocLines.WithLabelValues(l.Sink).Add(float64(l.Lines - refused))
	if err := s.markReprocessed(l.ID, attempts); err != nil {
		// Sent, but still marked pending: a later request would send it again.
		out.Error = clip(err.Error(), maxErrBytes)
		s.log.Error().Err(err).Uint64("letter", l.ID).Msg("dlq: letter sent but could not be marked reprocessed")
	}
	return out, nil
}

// splitRejected returns the entries of b that a partial rejection named
// (with their reasons) and those of the streams it left uncertain.
func splitRejected(b *ship.Batch, rje *ship.RejectedError) (rejected, uncertain []ship.DeadEntry) {
	dead := func(si, ei int, reason string) ship.DeadEntry {
		st := b.Streams[si]
		e := st.Entries[ei]
		return ship.DeadEntry{Labels: st.Labels, Time: e.Time, Line: e.Line, Metadata: e.Metadata, Flags: e.Flags,
			Source: e.Source, Offset: e.Offset, Index: e.Index, Reason: reason}
	}
	named := map[[2]int]bool{}
	for _, r := range rje.Rejected {
		if r.Stream < 0 || r.Stream >= len(b.Streams) || r.Entry < 0 || r.Entry >= len(b.Streams[r.Stream].Entries) {
			continue
		}
		named[[2]int{r.Stream, r.Entry}] = true
		rejected = append(rejected, dead(r.Stream, r.Entry, r.Reason))
	}
	for _, si := range rje.Uncertain {
		if si < 0 || si >= len(b.Streams) {
			continue
		}
		for ei := range b.Streams[si].Entries {
			if !named[[2]int{si, ei}] {
				uncertain = append(uncertain, dead(si, ei, ship.ReasonPartiallyAccepted))
			}
		}
	}
	return rejected, uncertain
}

// requeue stores the entries a reprocess got refused as new letters of the
// same sink and returns their ids.
func (s *Store) requeue(ctx context.Context, l state.DLQLetter, attempts int, msg string, rejected, uncertain []ship.DeadEntry) ([]uint64, error) {
	base := ship.Letter{Sink: l.Sink, Reason: l.Reason, First: l.First, Last: l.Last,
		Attempts: l.Attempts + attempts, Detail: msg}
	var ids []uint64
	for _, part := range []struct {
		entries []ship.DeadEntry
		partial bool
	}{{rejected, false}, {uncertain, true}} {
		if len(part.entries) == 0 {
			continue
		}
		lt := base
		lt.Entries, lt.PartiallyAccepted = part.entries, part.partial
		got, err := s.deadLetter(ctx, lt)
		if err != nil {
			return ids, err
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// markReprocessed records the letter as reprocessed, then removes its file
// (index first: a crash in between leaves a stale file that Open removes).
func (s *Store) markReprocessed(id uint64, attempts int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.letters[id]
	if cur == nil {
		return nil
	}
	upd := *cur
	upd.Status = state.DLQReprocessed
	upd.Attempts += attempts
	upd.UpdatedUnixNano = s.cfg.Now().UnixNano()
	upd.LastError = ""
	if err := s.st.PutDLQLetters(upd); err != nil {
		return err
	}
	*cur = upd
	s.held -= cur.Bytes
	if err := os.Remove(filepath.Join(s.cfg.Dir, cur.File)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn().Err(err).Uint64("letter", id).Msg("dlq: remove a reprocessed letter's file (Open retries)")
	}
	s.updateGaugesLocked()
	return nil
}

func (s *Store) markFailed(id uint64, attempts int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.letters[id]
	if cur == nil {
		return
	}
	upd := *cur
	upd.Attempts += attempts
	upd.LastError = msg
	upd.UpdatedUnixNano = s.cfg.Now().UnixNano()
	if err := s.st.PutDLQLetters(upd); err != nil {
		s.log.Error().Err(err).Uint64("letter", id).Msg("dlq: record a failed reprocess")
		return
	}
	*cur = upd
}

// send delivers b to sink, retrying retryable failures up to MaxAttempts
// with backoff. It returns the attempts made.
func (s *Store) send(ctx context.Context, sink ship.Sink, b *ship.Batch) (int, error) {
	bo := loki.Backoff{Min: s.cfg.MinBackoff, Max: s.cfg.MaxBackoff}
	for attempt := 0; ; attempt++ {
		err := sink.Send(ctx, b)
		if err == nil {
			return attempt + 1, nil
		}
		var pe *ship.PermanentError
		var rje *ship.RejectedError
		if errors.As(err, &pe) || errors.As(err, &rje) || attempt+1 >= s.cfg.MaxAttempts || ctx.Err() != nil {
			return attempt + 1, err
		}
		var ra time.Duration
		var re *ship.RetryError
		if errors.As(err, &re) {
			ra = re.RetryAfter
		}
		t := time.NewTimer(bo.DelayAfter(attempt, ra, nil))
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt + 1, ctx.Err()
		case <-t.C:
		}
	}
}

func errReason(err error) string {
	var re *ship.RetryError
	if errors.As(err, &re) {
		return re.Reason
	}
	var pe *ship.PermanentError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	var rje *ship.RejectedError
	if errors.As(err, &rje) {
		return "rejected"
	}
	return "other"
}

// replay sends WAL entries of a range again. Progress (Next) is stored
// after every batch, so a resumed request carries on where it stopped and
// each entry is sent once per request id (the batch in flight at a crash
// excepted).
func (s *Store) replay(ctx context.Context, req Request, res *Result, sinks map[string]ship.Sink, src WALSource, created int64) error {
	first, last, err := src.Bounds()
	if err != nil {
		return err
	}
	if !res.Resumed {
		if req.Sink != "" {
			res.Sinks = []string{req.Sink}
		} else {
			res.Sinks = sortedKeys(sinks)
		}
		from := max(req.FromIndex, 1)
		to := req.ToIndex
		if to == 0 {
			// Fixed now, so that repeating or resuming the request means
			// the same range even while the WAL grows.
			to = last
		}
		res.From, res.To = from, to
		if from < first {
			why := "removed from the WAL"
			if req.FromIndex == 0 {
				why = "removed from the WAL; may hold lines of the requested time range"
			}
			res.Unavailable = addSpan(res.Unavailable, &res.SpansOmit, Span{From: from, To: min(to, first-1), Why: why})
		}
		if to > last && req.ToIndex != 0 {
			res.Unavailable = addSpan(res.Unavailable, &res.SpansOmit, Span{From: max(from, last+1), To: to, Why: "beyond the last WAL index"})
		}
		res.Next = max(from, first)
	}
	targets := make([]ship.Sink, 0, len(res.Sinks))
	for _, name := range res.Sinks {
		if sk := sinks[name]; sk != nil {
			targets = append(targets, sk)
		} else {
			return fmt.Errorf("%w: sink %q of the stored request is not configured", ErrInvalidRequest, name)
		}
	}
	end := min(res.To, last)
	if res.Next > end {
		return nil
	}

	var bb BatchBuilder
	expect := res.Next
	batchFirst := res.Next
	entries := int64(0)
	flush := func(next uint64) error {
		b := bb.Take()
		if b != nil && !req.DryRun {
			for _, sk := range targets {
				n, err := s.send(ctx, sk, b)
				if err != nil {
					if ctx.Err() != nil {
						return fmt.Errorf("dlq: replay: %w", ctx.Err())
					}
					refused := b.Lines
					var rje *ship.RejectedError
					if errors.As(err, &rje) {
						r, u := splitRejected(b, rje)
						refused = len(r) + len(u)
						res.LinesSent += int64(b.Lines - refused)
						s.m.replayedLines.WithLabelValues(sk.Name()).Add(float64(b.Lines - refused))
					}
					res.LinesFailed += int64(refused)
					res.Failed = addSpan(res.Failed, &res.SpansOmit, Span{From: batchFirst, To: next - 1, Sink: sk.Name(),
						Lines: refused, Why: clip(err.Error(), maxErrBytes)})
					s.m.reprocFailures.WithLabelValues(sk.Name(), errReason(err)).Inc()
					s.log.Warn().Err(err).Str("sink", sk.Name()).Uint64("from", batchFirst).Uint64("to", next-1).
						Int("attempts", n).Msg("dlq: replay batch failed")
					continue
				}
				res.Batches++
				res.LinesSent += int64(b.Lines)
				s.m.replayedLines.WithLabelValues(sk.Name()).Add(float64(b.Lines))
			}
		} else if b != nil {
			res.Batches++
			res.LinesSent += int64(b.Lines) * int64(len(targets))
		}
		res.Next = next
		batchFirst = next
		if req.DryRun {
			return nil
		}
		return s.saveRequest(req.ID, state.DLQRequestRunning, created, res)
	}
	var rec record.Record
	sinceNs, untilNs := int64(0), int64(0)
	if !req.Since.IsZero() {
		sinceNs = req.Since.UnixNano()
	}
	if !req.Until.IsZero() {
		untilNs = req.Until.UnixNano()
	}
	errLimit := errors.New("limit reached")
	err = src.Walk(ctx, res.Next, end, func(idx uint64, payload []byte) error {
		if idx > expect {
			res.Unavailable = addSpan(res.Unavailable, &res.SpansOmit, Span{From: expect, To: idx - 1, Why: "removed or unreadable"})
		}
		expect = idx + 1
		if req.Limit > 0 && entries >= int64(req.Limit) {
			return errLimit
		}
		entries++
		res.EntriesRead++
		dec, err := record.NewDecoder(payload)
		if err != nil {
			res.Unavailable = addSpan(res.Unavailable, &res.SpansOmit, Span{From: idx, To: idx, Why: "undecodable entry"})
			return nil
		}
		for dec.Next(&rec) {
			if (sinceNs != 0 && rec.Time < sinceNs) || (untilNs != 0 && rec.Time >= untilNs) {
				continue
			}
			bb.AddRecord(idx, &rec)
			res.Lines++
		}
		if dec.Err() != nil {
			res.Unavailable = addSpan(res.Unavailable, &res.SpansOmit, Span{From: idx, To: idx, Why: "undecodable entry"})
		}
		if bb.Bytes() >= s.cfg.BatchBytes {
			return flush(idx + 1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errLimit) {
		return err
	}
	if errors.Is(err, errLimit) {
		// The entry that hit the limit (expect-1) was not taken.
		return flush(expect - 1)
	}
	if expect <= end {
		res.Unavailable = addSpan(res.Unavailable, &res.SpansOmit, Span{From: expect, To: end, Why: "removed or unreadable"})
	}
	return flush(end + 1)
}
