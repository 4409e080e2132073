package dlq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/state"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// ErrNotFound is returned for a letter id the store does not hold.
var ErrNotFound = errors.New("dlq: no such letter")

// maxDetailBytes bounds the receiver message kept with a letter.
const maxDetailBytes = 1 << 10

// defaultReason names a letter handed over without any reason.
const defaultReason = "rejected"

// maxReasonBytes bounds a reason (a metric label value and index key).
const maxReasonBytes = 128

// Store is the dead-letter queue: letter files in Config.Dir, their index
// in the state file. Its methods are safe for concurrent use.
type Store struct {
	cfg Config
	st  *state.Store
	log zerolog.Logger
	m   *metrics

	// mu guards letters, busy and held, and orders index changes with them.
	mu      sync.Mutex
	letters map[uint64]*state.DLQLetter
	busy    map[uint64]bool // letters a reprocess is sending; expiry skips them
	held    int64           // bytes of pending letters' files

	// reprocessMu admits one reprocess at a time.
	reprocessMu sync.Mutex

	repairs []Repair
}

// Repair is one inconsistency found and fixed by Open.
type Repair struct {
	Kind   string `json:"kind"` // tmp_file, orphan_file, bad_file, missing_file, stale_file, bad_index
	Letter uint64 `json:"letter,omitempty"`
	File   string `json:"file,omitempty"`
	Lines  int    `json:"lost_lines,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Open loads the index from st and reconciles it with the files in
// cfg.Dir (created if missing): a crash between writing a file and its
// index record, or between the two halves of a removal, is repaired here
// and counted (see Repairs). It starts nothing: Run expires letters.
func Open(cfg Config, st *state.Store, logger zerolog.Logger, reg prometheus.Registerer) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("dlq: open %s: %w", cfg.Dir, err)
	}
	s := &Store{
		cfg:     cfg,
		st:      st,
		log:     logger.With().Str("component", "dlq").Logger(),
		m:       m,
		letters: map[uint64]*state.DLQLetter{},
		busy:    map[uint64]bool{},
	}
	if err := s.reconcile(); err != nil {
		return nil, err
	}
	s.updateGauges()
	return s, nil
}

// Repairs returns what Open repaired.
func (s *Store) Repairs() []Repair { return slices.Clone(s.repairs) }

func (s *Store) repaired(r Repair) {
	s.repairs = append(s.repairs, r)
	s.m.repairs.WithLabelValues(r.Kind).Inc()
	ev := s.log.Warn()
	if r.Lines > 0 {
		ev = s.log.Error().Int("lost_lines", r.Lines)
	}
	ev.Str("kind", r.Kind).Uint64("letter", r.Letter).Str("file", r.File).Str("detail", r.Detail).
		Msg("dlq: repaired the store at open")
}

func (s *Store) reconcile() error {
	letters, corrupt, err := s.st.DLQLetters()
	if err != nil {
		return fmt.Errorf("dlq: open: %w", err)
	}
	if len(corrupt) > 0 {
		if _, err := s.st.DeleteCorruptDLQLetters(); err != nil {
			return fmt.Errorf("dlq: open: %w", err)
		}
		for _, ce := range corrupt {
			// The letter's file, if any, is indexed again below from its header.
			s.repaired(Repair{Kind: "bad_index", Detail: ce.Error()})
		}
	}
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("dlq: open: %w", err)
	}
	files := map[uint64]os.DirEntry{}
	for _, e := range ents {
		name := e.Name()
		switch {
		case e.IsDir():
		case strings.HasSuffix(name, tmpSuffix):
			// A letter write cut short: the shipper got an error (or nothing)
			// and still holds the entries.
			if err := os.Remove(filepath.Join(s.cfg.Dir, name)); err != nil {
				return fmt.Errorf("dlq: open: %w", err)
			}
			s.repaired(Repair{Kind: "tmp_file", File: name})
		default:
			if id, ok := parseFileName(name); ok {
				files[id] = e
			}
		}
	}

	var drop []uint64
	for i := range letters {
		l := &letters[i]
		fe, hasFile := files[l.ID]
		delete(files, l.ID)
		switch {
		case l.Status == state.DLQReprocessed:
			if hasFile {
				// Marked reprocessed, crashed before the file was removed.
				if err := os.Remove(filepath.Join(s.cfg.Dir, fe.Name())); err != nil {
					return fmt.Errorf("dlq: open: %w", err)
				}
				s.repaired(Repair{Kind: "stale_file", Letter: l.ID, File: fe.Name()})
			}
			s.letters[l.ID] = l
		case !hasFile:
			s.m.lostLines.WithLabelValues("missing_file").Add(float64(l.Lines))
			s.repaired(Repair{Kind: "missing_file", Letter: l.ID, File: l.File, Lines: l.Lines,
				Detail: fmt.Sprintf("sink %s reason %s wal %d-%d", l.Sink, l.Reason, l.First, l.Last)})
			drop = append(drop, l.ID)
		default:
			if info, err := fe.Info(); err == nil && info.Size() != l.Bytes {
				if !s.checkFile(fe.Name(), l) {
					drop = append(drop, l.ID)
					continue
				}
			}
			s.letters[l.ID] = l
			s.held += l.Bytes
		}
	}
	if err := s.st.DeleteDLQLetters(drop...); err != nil {
		return fmt.Errorf("dlq: open: %w", err)
	}

	// Files without an index record: written, then crashed before the index
	// commit (the shipper will hand the entries over again, so this may hold
	// a duplicate letter), or an index record that was corrupt.
	orphans := make([]uint64, 0, len(files))
	for id := range files {
		orphans = append(orphans, id)
	}
	slices.Sort(orphans)
	var rebuilt []state.DLQLetter
	for _, id := range orphans {
		name := files[id].Name()
		l, err := s.indexFromFile(name)
		if err != nil {
			s.quarantine(name, id, 0, err)
			continue
		}
		rebuilt = append(rebuilt, l)
		s.repaired(Repair{Kind: "orphan_file", Letter: id, File: name, Detail: "indexed again from the file header"})
	}
	if err := s.st.PutDLQLetters(rebuilt...); err != nil {
		return fmt.Errorf("dlq: open: %w", err)
	}
	for i := range rebuilt {
		l := &rebuilt[i]
		s.letters[l.ID] = l
		s.held += l.Bytes
	}
	if len(s.repairs) > 0 {
		if err := syncDir(s.cfg.Dir); err != nil {
			return fmt.Errorf("dlq: open: %w", err)
		}
	}
	return nil
}

// checkFile decodes a pending letter's file whose size disagrees with its
// index. A good file corrects the index; a bad one is quarantined and the
// letter dropped (reported false).
func (s *Store) checkFile(name string, l *state.DLQLetter) bool {
	fresh, err := s.indexFromFile(name)
	if err == nil && fresh.ID == l.ID {
		l.Bytes = fresh.Bytes
		if perr := s.st.PutDLQLetters(*l); perr != nil {
			s.log.Error().Err(perr).Uint64("letter", l.ID).Msg("dlq: correct letter size")
		}
		return true
	}
	if err == nil {
		err = fmt.Errorf("file holds letter %d", fresh.ID)
	}
	s.quarantine(name, l.ID, l.Lines, err)
	return false
}

// quarantine moves an undecodable letter file into corrupt/ and counts its
// lines (when known from the index) as lost.
func (s *Store) quarantine(name string, id uint64, lines int, cause error) {
	dst := filepath.Join(s.cfg.Dir, corruptDir)
	err := os.MkdirAll(dst, 0o750)
	if err == nil {
		err = os.Rename(filepath.Join(s.cfg.Dir, name), filepath.Join(dst, name))
	}
	detail := cause.Error()
	if err != nil {
		detail += "; moving it aside failed: " + err.Error()
	}
	s.m.lostLines.WithLabelValues("bad_file").Add(float64(lines))
	s.repaired(Repair{Kind: "bad_file", Letter: id, File: name, Lines: lines, Detail: detail})
}

// indexFromFile rebuilds an index record from a letter file.
func (s *Store) indexFromFile(name string) (state.DLQLetter, error) {
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, name))
	if err != nil {
		return state.DLQLetter{}, err
	}
	lf, err := decodeLetter(data)
	if err != nil {
		return state.DLQLetter{}, err
	}
	if id, _ := parseFileName(name); id != lf.ID {
		return state.DLQLetter{}, fmt.Errorf("%w: file %s holds letter %d", ErrBadFile, name, lf.ID)
	}
	entries, err := lf.entries()
	if err != nil {
		return state.DLQLetter{}, err
	}
	l := state.DLQLetter{
		ID: lf.ID, Sink: lf.Sink, Reason: lf.Reason, Detail: lf.Detail, First: lf.First, Last: lf.Last,
		CreatedUnixNano: lf.Created, UpdatedUnixNano: lf.Created, Attempts: lf.Attempts, Lines: len(entries),
		Bytes: int64(len(data)), File: name, PartiallyAccepted: lf.PartiallyAccepted, Status: state.DLQPending,
	}
	l.MinTime, l.MaxTime = timeRange(entries)
	return l, nil
}

func timeRange(entries []ship.DeadEntry) (lo, hi int64) {
	if len(entries) == 0 {
		return 0, 0
	}
	lo, hi = math.MaxInt64, math.MinInt64
	for _, e := range entries {
		lo, hi = min(lo, e.Time), max(hi, e.Time)
	}
	return lo, hi
}

// DeadLetter implements ship.DeadLetterer: it copies the entries into
// letter files (one per reason, when entries carry their own) and indexes
// them. When it returns nil the letters are durable; on error nothing was
// kept and the caller may hand the same letter over again.
func (s *Store) DeadLetter(ctx context.Context, l ship.Letter) error {
	_, err := s.deadLetter(ctx, l)
	return err
}

// deadLetter is DeadLetter, returning the ids of the letters stored.
func (s *Store) deadLetter(ctx context.Context, l ship.Letter) (ids []uint64, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dlq: dead-letter: %w", err)
	}
	defer func() {
		if err != nil {
			s.m.writeErrors.Inc()
		}
	}()
	if len(l.Entries) == 0 {
		// Nothing to keep; the hand-off is still worth a trace.
		s.log.Warn().Str("sink", l.Sink).Str("reason", l.Reason).Uint64("first", l.First).Uint64("last", l.Last).
			Msg("dlq: letter without entries ignored")
		return nil, nil
	}
	groups := groupByReason(l)
	first, err := s.st.ReserveDLQIDs(len(groups))
	if err != nil {
		return nil, fmt.Errorf("dlq: dead-letter: %w", err)
	}
	now := s.cfg.Now().UnixNano()
	recs := make([]state.DLQLetter, 0, len(groups))
	var written []string
	rollback := func() {
		for _, name := range written {
			_ = os.Remove(filepath.Join(s.cfg.Dir, name))
		}
	}
	for i, g := range groups {
		id := first + uint64(i)
		lo, hi := g.first, g.last
		h := fileHeader{ID: id, Created: now, First: lo, Last: hi, Attempts: l.Attempts,
			PartiallyAccepted: l.PartiallyAccepted, Sink: l.Sink, Reason: g.reason, Detail: clip(l.Detail, maxDetailBytes)}
		data := encodeLetter(h, g.entries)
		name := fileName(id)
		if err := writeFileAtomic(s.cfg.Dir, name, data, s.cfg.NoSync); err != nil {
			rollback()
			return nil, fmt.Errorf("dlq: dead-letter: write %s: %w", name, err)
		}
		written = append(written, name)
		rec := state.DLQLetter{ID: id, Sink: l.Sink, Reason: g.reason, Detail: h.Detail, First: lo, Last: hi,
			CreatedUnixNano: now, UpdatedUnixNano: now, Attempts: l.Attempts, Lines: len(g.entries),
			Bytes: int64(len(data)), File: name, PartiallyAccepted: l.PartiallyAccepted, Status: state.DLQPending}
		rec.MinTime, rec.MaxTime = timeRange(g.entries)
		recs = append(recs, rec)
	}
	if !s.cfg.NoSync {
		if err := syncDir(s.cfg.Dir); err != nil {
			rollback()
			return nil, fmt.Errorf("dlq: dead-letter: sync %s: %w", s.cfg.Dir, err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.st.PutDLQLetters(recs...); err != nil {
		rollback()
		return nil, fmt.Errorf("dlq: dead-letter: %w", err)
	}
	for i := range recs {
		r := &recs[i]
		ids = append(ids, r.ID)
		s.letters[r.ID] = r
		s.held += r.Bytes
		s.m.letters.WithLabelValues(r.Sink, r.Reason).Inc()
		s.m.lines.WithLabelValues(r.Sink, r.Reason).Add(float64(r.Lines))
		s.log.Warn().Uint64("letter", r.ID).Str("sink", r.Sink).Str("reason", r.Reason).
			Uint64("wal_first", r.First).Uint64("wal_last", r.Last).Int("lines", r.Lines).
			Bool("partially_accepted", r.PartiallyAccepted).Str("detail", r.Detail).Msg("dlq: entries dead-lettered")
	}
	// The bound holds at all times, not only at Run's next tick.
	s.enforceMaxBytesLocked()
	s.updateGaugesLocked()
	return ids, nil
}

type reasonGroup struct {
	reason      string
	first, last uint64
	entries     []ship.DeadEntry
}

// groupByReason splits a letter by each entry's own reason, in order of
// first appearance, so that every stored letter has one reason and a
// reprocess by reason selects exactly its entries.
func groupByReason(l ship.Letter) []*reasonGroup {
	var out []*reasonGroup
	byReason := map[string]*reasonGroup{}
	allIndexed := map[*reasonGroup]bool{}
	var noLabels *record.LabelSet
	for _, e := range l.Entries {
		if e.Labels == nil {
			if noLabels == nil {
				noLabels = record.NewLabelSet(nil)
			}
			e.Labels = noLabels // the encoding needs a label set
		}
		r := e.Reason
		if r == "" {
			r = l.Reason
		}
		if r == "" {
			r = defaultReason
		}
		r = clip(r, maxReasonBytes)
		g := byReason[r]
		if g == nil {
			g = &reasonGroup{reason: r, first: math.MaxUint64}
			byReason[r] = g
			allIndexed[g] = true
			out = append(out, g)
		}
		g.entries = append(g.entries, e)
		if e.Index == 0 {
			allIndexed[g] = false
		} else {
			g.first, g.last = min(g.first, e.Index), max(g.last, e.Index)
		}
	}
	for _, g := range out {
		if !allIndexed[g] || len(out) == 1 && l.First != 0 {
			// Unknown entry indexes (or a single group): the letter's range
			// is the honest one.
			g.first, g.last = l.First, l.Last
		}
	}
	return out
}

// clip cuts s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Letter returns a letter's index record.
func (s *Store) Letter(id uint64) (state.DLQLetter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.letters[id]
	if l == nil {
		return state.DLQLetter{}, false
	}
	return *l, true
}

// Filter selects letters. Zero fields match everything.
type Filter struct {
	Sink, Reason string
	IDs          []uint64
	// Pending restricts to letters still held.
	Pending bool
}

func (f Filter) match(l *state.DLQLetter) bool {
	return (f.Sink == "" || l.Sink == f.Sink) && (f.Reason == "" || l.Reason == f.Reason) &&
		(len(f.IDs) == 0 || slices.Contains(f.IDs, l.ID)) && (!f.Pending || l.Status == state.DLQPending)
}

// Letters returns the index records that match f, oldest first.
func (s *Store) Letters(f Filter) []state.DLQLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]state.DLQLetter, 0, len(s.letters))
	for _, l := range s.letters {
		if f.match(l) {
			out = append(out, *l)
		}
	}
	slices.SortFunc(out, func(a, b state.DLQLetter) int { return cmpUint(a.ID, b.ID) })
	return out
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Entries reads a pending letter's entries from its file.
func (s *Store) Entries(id uint64) ([]ship.DeadEntry, error) {
	l, ok := s.Letter(id)
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if l.Status != state.DLQPending {
		return nil, fmt.Errorf("dlq: letter %d is %s: its entries were released", id, l.Status)
	}
	return s.readEntries(l)
}

func (s *Store) readEntries(l state.DLQLetter) ([]ship.DeadEntry, error) {
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, l.File))
	if err != nil {
		return nil, fmt.Errorf("dlq: letter %d: %w", l.ID, err)
	}
	lf, err := decodeLetter(data)
	if err != nil {
		return nil, fmt.Errorf("dlq: letter %d: %w", l.ID, err)
	}
	return lf.entries()
}

// Count is the size of a group of pending letters.
type Count struct {
	Letters int   `json:"letters"`
	Lines   int64 `json:"lines"`
	Bytes   int64 `json:"bytes"`
}

// Stats is the snapshot served at /dlq/stats.
type Stats struct {
	Pending     Count            `json:"pending"`
	ByReason    map[string]Count `json:"by_reason"`
	BySink      map[string]Count `json:"by_sink"`
	Reprocessed int              `json:"reprocessed_letters"` // still remembered, files released
	Oldest      *time.Time       `json:"oldest,omitempty"`
	Newest      *time.Time       `json:"newest,omitempty"`
	MaxBytes    int64            `json:"max_bytes"`
	Retention   string           `json:"retention"`
	Repairs     []Repair         `json:"repairs_at_open,omitempty"`
}

// Stats summarises the pending letters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{ByReason: map[string]Count{}, BySink: map[string]Count{}, MaxBytes: s.cfg.MaxBytes,
		Retention: s.cfg.Retention.String(), Repairs: slices.Clone(s.repairs)}
	var oldest, newest int64
	for _, l := range s.letters {
		if l.Status != state.DLQPending {
			st.Reprocessed++
			continue
		}
		add := func(c Count) Count {
			c.Letters++
			c.Lines += int64(l.Lines)
			c.Bytes += l.Bytes
			return c
		}
		st.Pending = add(st.Pending)
		st.ByReason[l.Reason] = add(st.ByReason[l.Reason])
		st.BySink[l.Sink] = add(st.BySink[l.Sink])
		if oldest == 0 || l.CreatedUnixNano < oldest {
			oldest = l.CreatedUnixNano
		}
		newest = max(newest, l.CreatedUnixNano)
	}
	if st.Pending.Letters > 0 {
		o, n := time.Unix(0, oldest).UTC(), time.Unix(0, newest).UTC()
		st.Oldest, st.Newest = &o, &n
	}
	return st
}

func (s *Store) updateGauges() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updateGaugesLocked()
}

func (s *Store) updateGaugesLocked() {
	var n, lines int
	var oldest int64
	for _, l := range s.letters {
		if l.Status != state.DLQPending {
			continue
		}
		n++
		lines += l.Lines
		if oldest == 0 || l.CreatedUnixNano < oldest {
			oldest = l.CreatedUnixNano
		}
	}
	s.m.heldBytes.Set(float64(s.held))
	s.m.heldLetters.Set(float64(n))
	s.m.heldLines.Set(float64(lines))
	s.m.oldestLetterSecs.Set(float64(oldest) / 1e9)
}
