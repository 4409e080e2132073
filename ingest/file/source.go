package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/ingest"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// ErrAlreadyRun is returned by Run when it is called a second time.
var ErrAlreadyRun = errors.New("file: source already run")

// scanDebounce lets a burst of directory events (rename then create, as
// logrotate does) end in one scan.
const scanDebounce = 50 * time.Millisecond

// Source follows the files matched by its configuration and appends their
// lines to the WAL. Build it with New, then call Run once.
type Source struct {
	cfg    Config
	app    ingest.Appender
	cp     ingest.Checkpointer
	log    zerolog.Logger
	cnt    *counters
	static []record.Label

	readBufs sync.Pool // *[]byte of cfg.ReadBufferBytes
	payloads sync.Pool // *[]byte
	builders sync.Pool // *record.Builder

	lastGen atomic.Uint64
	started atomic.Bool

	// Owned by the Run goroutine.
	firstStart  bool
	stale       []string
	watched     map[string]bool
	watchFailed map[string]bool

	mu      sync.Mutex
	tailers map[fileKey]*tailer
	byPath  map[string]*tailer
	resume  map[fileKey]*resumeEntry
}

// resumeEntry is the position of a file not currently followed: loaded from
// the saved positions, or handed back by a tailer that stopped.
type resumeEntry struct {
	key       fileKey
	id        string
	gen       uint64
	offset    uint64
	meta      meta
	hasMeta   bool
	fromSaved bool
}

// PositionInfo describes one followed file (for /positions).
type PositionInfo struct {
	ID          string `json:"id"`
	Path        string `json:"path"`
	ReadOffset  uint64 `json:"read_offset"`
	AckedOffset uint64 `json:"acked_offset"`
	Size        uint64 `json:"size"`
	InFlight    int    `json:"in_flight"`
	Draining    bool   `json:"draining"`
}

// New validates cfg (zero fields take their defaults) and builds a Source
// that resumes the files of saved, matched by device, inode and head
// fingerprint. Saved positions of other sources are ignored. It starts
// nothing; reg may be nil.
func New(cfg Config, app ingest.Appender, cp ingest.Checkpointer, saved []ingest.SavedPosition, log zerolog.Logger, reg prometheus.Registerer) (*Source, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if app == nil || cp == nil {
		return nil, errors.New("file: new: appender and checkpointer are required")
	}
	cfg.Include = slices.Clone(cfg.Include)
	for i, p := range cfg.Include {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("file: new: include %q: %w", p, err)
		}
		cfg.Include[i] = abs
	}
	cfg.Exclude = slices.Clone(cfg.Exclude)
	for i, p := range cfg.Exclude {
		// A pattern with a directory part is a path pattern; a bare one
		// (e.g. "*.gz") matches base names and stays as it is.
		if strings.ContainsRune(p, filepath.Separator) && !filepath.IsAbs(p) {
			abs, err := filepath.Abs(p)
			if err != nil {
				return nil, fmt.Errorf("file: new: exclude %q: %w", p, err)
			}
			cfg.Exclude[i] = abs
		}
	}
	s := &Source{
		cfg:         cfg,
		app:         app,
		cp:          cp,
		log:         log,
		cnt:         &counters{},
		firstStart:  len(saved) == 0 && cfg.StartAt == StartEnd,
		watched:     map[string]bool{},
		watchFailed: map[string]bool{},
		tailers:     map[fileKey]*tailer{},
		byPath:      map[string]*tailer{},
		resume:      map[fileKey]*resumeEntry{},
	}
	for name, value := range cfg.Labels {
		s.static = append(s.static, record.Label{Name: name, Value: value})
	}
	if cfg.Hostname != "" {
		s.static = append(s.static, record.Label{Name: LabelHost, Value: cfg.Hostname})
	}
	bufSize := cfg.ReadBufferBytes
	s.readBufs.New = func() any { b := make([]byte, bufSize); return &b }
	s.payloads.New = func() any { b := []byte(nil); return &b }
	s.builders.New = func() any { return record.NewBuilder() }
	s.loadSaved(saved)
	if err := register(reg, newCollector(s.cnt)); err != nil {
		return nil, fmt.Errorf("file: new: metrics: %w", err)
	}
	return s, nil
}

// loadSaved indexes saved positions by device and inode. When several ids
// share an inode, the newest generation wins (it was first seen last); the
// others are stale and deleted when Run starts.
func (s *Source) loadSaved(saved []ingest.SavedPosition) {
	for _, sp := range saved {
		k, gen, ok := parseID(sp.ID)
		if !ok {
			continue
		}
		if gen > s.lastGen.Load() {
			s.lastGen.Store(gen)
		}
		r := &resumeEntry{key: k, id: sp.ID, gen: gen, offset: sp.Offset, fromSaved: true}
		if len(sp.Meta) > 0 {
			m, err := decodeMeta(sp.Meta)
			if err != nil {
				s.log.Warn().Err(err).Str("id", sp.ID).Msg("file: ignoring unreadable position meta; identity checked by inode only")
			} else {
				r.meta, r.hasMeta = m, true
			}
		}
		if old := s.resume[k]; old != nil {
			if old.id == r.id {
				// The same id twice: keep the further position.
				old.offset = max(old.offset, r.offset)
				continue
			}
			if old.gen > gen || (old.gen == gen && old.offset >= r.offset) {
				s.stale = append(s.stale, r.id)
				continue
			}
			s.stale = append(s.stale, old.id)
		}
		s.resume[k] = r
	}
}

// nextGen returns a generation above every one seen, normally the current
// time in nanoseconds.
func (s *Source) nextGen() uint64 {
	for {
		last := s.lastGen.Load()
		g := uint64(time.Now().UnixNano())
		if g <= last {
			g = last + 1
		}
		if s.lastGen.CompareAndSwap(last, g) {
			return g
		}
	}
}

// Run discovers and follows files until ctx ends, then waits (at most
// cfg.StopTimeout) for the acks of appended payloads and returns once every
// goroutine it started has stopped. It runs one goroutine per followed file
// plus its own, which scans and routes file system events.
func (s *Source) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	for _, id := range s.stale {
		s.cp.DeletePosition(id)
	}
	s.stale = nil

	var wg sync.WaitGroup
	var (
		w      *fsnotify.Watcher
		events <-chan fsnotify.Event
		werrs  <-chan error
	)
	if !s.cfg.DisableNotify {
		var err error
		w, err = fsnotify.NewBufferedWatcher(4096)
		if err != nil {
			s.cnt.watchErrors.Add(1)
			s.log.Warn().Err(err).Msg("file: no file system notifications; polling only")
			w = nil
		} else {
			events, werrs = w.Events, w.Errors
		}
	}

	s.scan(ctx, &wg, w)
	ticker := time.NewTicker(s.cfg.ScanInterval)
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	soonArmed := false
	requestScan := func() {
		if !soonArmed {
			soon.Reset(scanDebounce)
			soonArmed = true
		}
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-ticker.C:
			s.scan(ctx, &wg, w)
		case <-soon.C:
			soonArmed = false
			s.scan(ctx, &wg, w)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Has(fsnotify.Write) {
				s.poke(ev.Name)
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				requestScan()
			}
		case err, ok := <-werrs:
			if !ok {
				werrs = nil
				continue
			}
			s.cnt.watchErrors.Add(1)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				s.log.Warn().Msg("file: file system event queue overflowed; rescanning")
				requestScan()
				s.pokeAll()
				continue
			}
			s.log.Warn().Err(err).Msg("file: file system notification error")
		}
	}
	ticker.Stop()
	soon.Stop()
	if w != nil {
		_ = w.Close()
	}
	wg.Wait()
	return nil
}

// discovered is one file matched by the include patterns.
type discovered struct {
	path string
	key  fileKey
}

// discover lists the matched regular files, each inode once (the first path
// in include order, then lexical order), and the directories worth watching.
func (s *Source) discover() ([]discovered, map[string]bool) {
	seen := map[fileKey]bool{}
	dirs := map[string]bool{}
	var out []discovered
	for _, pat := range s.cfg.Include {
		if fi, err := os.Stat(staticPrefix(pat)); err == nil && fi.IsDir() {
			dirs[staticPrefix(pat)] = true
		}
		for _, p := range expandPattern(pat) {
			if excluded(s.cfg.Exclude, p) {
				continue
			}
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			k, ok := keyOf(fi)
			if !ok || seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, discovered{path: p, key: k})
			dirs[filepath.Dir(p)] = true
		}
	}
	return out, dirs
}

// scan is the truth about which files exist: it starts tailers for new
// files, tells tailers whose file left every matched path to drain and stop,
// and forgets positions of files that are gone.
func (s *Source) scan(ctx context.Context, wg *sync.WaitGroup, w *fsnotify.Watcher) {
	s.cnt.scans.Add(1)
	first := s.firstStart
	s.firstStart = false
	found, dirs := s.discover()

	seen := make(map[fileKey]bool, len(found))
	var starts []discovered
	s.mu.Lock()
	for _, d := range found {
		seen[d.key] = true
		t := s.tailers[d.key]
		if t == nil {
			starts = append(starts, d)
			continue
		}
		if old := t.seenAt(d.path); old != d.path {
			if s.byPath[old] == t {
				delete(s.byPath, old)
			}
			s.byPath[d.path] = t
		}
	}
	for k, t := range s.tailers {
		if seen[k] {
			continue
		}
		if path, left := t.leave(); left {
			s.cnt.rotations.Add(1)
			if s.byPath[path] == t {
				delete(s.byPath, path)
			}
			s.log.Info().Str("path", path).Msg("file: file left its path; draining it")
		}
	}
	s.mu.Unlock()

	for _, d := range starts {
		s.startTailer(ctx, wg, d, first, false, nil)
	}

	var probe, drop []*resumeEntry
	s.mu.Lock()
	for k, r := range s.resume {
		if seen[k] {
			continue
		}
		delete(s.resume, k)
		if r.fromSaved && r.hasMeta {
			probe = append(probe, r)
		} else {
			drop = append(drop, r)
		}
	}
	s.mu.Unlock()
	for _, r := range probe {
		if !s.probe(ctx, wg, r) {
			drop = append(drop, r)
		}
	}
	for _, r := range drop {
		s.cnt.positionsDropped.Add(1)
		s.cp.DeletePosition(r.id)
		s.log.Info().Str("id", r.id).Str("path", r.meta.path).Msg("file: position dropped; file gone")
	}
	s.watch(w, dirs)
}

// probe looks for a saved file that no pattern matches any more in the
// directory where it was last seen: a file rotated away while the agent was
// stopped. Found, it is drained to its end and closed.
func (s *Source) probe(ctx context.Context, wg *sync.WaitGroup, r *resumeEntry) bool {
	dir := filepath.Dir(r.meta.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if k, ok := keyOf(info); ok && k == r.key {
			p := filepath.Join(dir, e.Name())
			s.log.Info().Str("path", p).Str("was", r.meta.path).Msg("file: found a followed file moved while stopped; draining it")
			return s.startTailer(ctx, wg, discovered{path: p, key: k}, false, true, r)
		}
	}
	return false
}

// startPoint is where a tailer begins.
type startPoint struct {
	id       string
	offset   uint64
	fp       fingerprint
	midLine  bool   // offset is inside a line: drop up to the next '\n'
	register bool   // persist the position at once (a new generation)
	deleteID string // an older id of this inode to forget
}

// startTailer opens d and starts following it. r, when given, is the
// position to resume (already taken out of s.resume); otherwise s.resume is
// consulted. orphan starts it as a file that already left its path.
func (s *Source) startTailer(ctx context.Context, wg *sync.WaitGroup, d discovered, first, orphan bool, r *resumeEntry) bool {
	giveBack := func() {
		if r == nil || orphan {
			return
		}
		s.mu.Lock()
		if s.resume[r.key] == nil {
			s.resume[r.key] = r
		}
		s.mu.Unlock()
	}
	f, err := os.Open(d.path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.cnt.readErrors.Add(1)
			s.log.Warn().Err(err).Str("path", d.path).Msg("file: open failed")
		}
		giveBack()
		return false
	}
	fi, err := f.Stat()
	var key fileKey
	ok := err == nil && fi.Mode().IsRegular()
	if ok {
		key, ok = keyOf(fi)
	}
	if !ok || (r != nil && key != r.key) {
		_ = f.Close()
		giveBack()
		return false
	}
	s.mu.Lock()
	if s.tailers[key] != nil {
		s.mu.Unlock()
		_ = f.Close()
		giveBack()
		return false
	}
	if r == nil {
		r = s.resume[key]
		delete(s.resume, key)
	}
	s.mu.Unlock()

	st, err := s.decideStart(f, uint64(fi.Size()), key, d.path, first, r)
	if err != nil {
		s.cnt.readErrors.Add(1)
		s.log.Warn().Err(err).Str("path", d.path).Msg("file: cannot identify file")
		_ = f.Close()
		giveBack()
		return false
	}
	t := newTailer(s, f, key, d.path, uint64(fi.Size()), st)
	t.refreshFingerprint()
	if st.register {
		s.cp.SetPosition(st.id, st.offset, 0, t.metaEnc)
	}
	if st.deleteID != "" {
		s.cp.DeletePosition(st.deleteID)
	}
	if orphan {
		t.orphaned, t.leftAt = true, time.Now()
	}
	s.mu.Lock()
	s.tailers[key] = t
	if !orphan {
		s.byPath[d.path] = t
	}
	s.mu.Unlock()
	s.cnt.filesOpen.Add(1)
	s.log.Debug().Str("path", d.path).Str("id", st.id).Uint64("offset", st.offset).Msg("file: following")
	wg.Go(func() { t.run(ctx) })
	return true
}

// decideStart matches an opened file against its saved position.
func (s *Source) decideStart(f *os.File, size uint64, key fileKey, path string, first bool, r *resumeEntry) (startPoint, error) {
	fresh := func() startPoint { return startPoint{id: formatID(key, s.nextGen())} }
	if r != nil {
		same := true
		if r.hasMeta {
			var err error
			if same, err = r.meta.fp.matchesFile(f); err != nil {
				return startPoint{}, err
			}
		}
		switch {
		case !same:
			s.cnt.inodeReuses.Add(1)
			s.log.Info().Str("path", path).Str("old_id", r.id).Msg("file: inode holds other content than its saved position; reading it from the start")
		case r.offset > size:
			s.cnt.truncations.Add(1)
			s.log.Warn().Str("path", path).Uint64("offset", r.offset).Uint64("size", size).Msg("file: truncated while stopped; reading it from the start")
		default:
			st := startPoint{id: r.id, offset: r.offset}
			if r.hasMeta {
				st.fp = r.meta.fp
			}
			return st, nil
		}
		// A new generation of a known inode is persisted at once, so that
		// after a crash it supersedes records of the old id left in the WAL.
		st := fresh()
		st.register, st.deleteID = true, r.id
		return st, nil
	}
	st := fresh()
	if first && s.cfg.StartAt == StartEnd {
		off, mid, err := findEnd(f, size, s.cfg.MaxLineBytes)
		if err != nil {
			return startPoint{}, err
		}
		st.offset, st.midLine, st.register = off, mid, !mid
	}
	return st, nil
}

// findEnd returns where reading "from the end" starts: after the last '\n'
// within the last maxLine+1 bytes (the incomplete last line is read when it
// completes). Without one, a file that short is one incomplete line (start at
// 0); a longer one starts at its end, inside a line (mid).
func findEnd(f *os.File, size uint64, maxLine int) (off uint64, mid bool, err error) {
	window := min(size, uint64(maxLine)+1)
	buf := make([]byte, min(window, 64<<10))
	floor := size - window
	for pos := size; pos > floor; {
		n := min(uint64(len(buf)), pos-floor)
		start := pos - n
		m, err := f.ReadAt(buf[:n], int64(start))
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, false, fmt.Errorf("file: find end: %w", err)
		}
		if i := bytes.LastIndexByte(buf[:m], '\n'); i >= 0 {
			return start + uint64(i) + 1, false, nil
		}
		pos = start
	}
	if floor == 0 {
		return 0, false, nil
	}
	return size, true, nil
}

// tailerExited is called by a tailer's goroutine as it ends. hb, when not
// nil, is the file's final position, kept so that a later scan resumes it or
// forgets it.
func (s *Source) tailerExited(t *tailer, hb *resumeEntry) {
	path := t.currentPath()
	s.mu.Lock()
	if s.tailers[t.key] == t {
		delete(s.tailers, t.key)
	}
	if s.byPath[path] == t {
		delete(s.byPath, path)
	}
	if hb != nil && s.resume[t.key] == nil {
		s.resume[t.key] = hb
	}
	s.mu.Unlock()
	s.cnt.filesOpen.Add(-1)
}

func (s *Source) poke(path string) {
	s.mu.Lock()
	t := s.byPath[path]
	s.mu.Unlock()
	if t != nil {
		t.poke()
	}
}

func (s *Source) pokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tailers {
		t.poke()
	}
}

// watch makes the watched directories those of the last scan. A directory
// that cannot be watched (inotify limits) is logged once and left to polling.
func (s *Source) watch(w *fsnotify.Watcher, dirs map[string]bool) {
	if w == nil {
		return
	}
	for d := range dirs {
		if s.watched[d] {
			continue
		}
		if err := w.Add(d); err != nil {
			s.cnt.watchErrors.Add(1)
			if !s.watchFailed[d] {
				s.watchFailed[d] = true
				s.log.Warn().Err(err).Str("dir", d).Msg("file: cannot watch directory; polling it")
			}
			continue
		}
		delete(s.watchFailed, d)
		s.watched[d] = true
	}
	for d := range s.watched {
		if !dirs[d] {
			_ = w.Remove(d) // fails when the directory is gone, which removed the watch
			delete(s.watched, d)
		}
	}
}

// Positions describes every followed file, sorted by path.
func (s *Source) Positions() []PositionInfo {
	s.mu.Lock()
	ts := make([]*tailer, 0, len(s.tailers))
	for _, t := range s.tailers {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	out := make([]PositionInfo, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Stats returns the source's counters.
func (s *Source) Stats() Stats { return s.cnt.snapshot() }

func (s *Source) labelsFor(path string) *record.LabelSet {
	ls := make([]record.Label, 0, len(s.static)+1)
	ls = append(ls, s.static...)
	ls = append(ls, record.Label{Name: LabelFilename, Value: path})
	return record.NewLabelSet(ls)
}
