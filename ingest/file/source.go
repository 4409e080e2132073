package file

import (
	"context"
	"errors"
	"fmt"
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
	cfg          Config
	app          ingest.Appender
	cp           ingest.Checkpointer
	log          zerolog.Logger
	cnt          *counters
	static       []record.Label
	routes       []route
	readCompress bool // an include pattern names compressed files itself

	// Memory shared by all files (see budget.go): payload bytes, read
	// buffers lent for one turn of reading, pooled payload buffers.
	budget    *byteBudget
	reads     *readSlots
	payloads  *payloadPool
	builders  sync.Pool // *record.Builder
	step      int64     // budget reserved at a time for a payload being built
	turnBytes uint64    // a file reads this much before it lets waiting files read

	lastGen atomic.Uint64
	started atomic.Bool
	kick    chan struct{} // a slot was freed or a file asks to be started

	// Owned by the Run goroutine.
	firstStart  bool
	stale       []*resumeEntry // superseded generations: copies looked for by the first scan
	watched     map[string]bool
	watchFailed map[string]bool
	notifyOff   bool
	triggers    []rotationTrigger // sibling searches asked for outside a scan

	mu       sync.Mutex
	tailers  map[fileKey]*tailer      // open files
	byPath   map[string]*tailer       // open files at a matched path
	resume   map[fileKey]*resumeEntry // known files not open
	closedAt map[string]fileKey       // closed files at a matched path
	urgent   []*startItem             // rotated files to drain: started first
	queue    []*startItem             // files waiting for a slot, in order
	queued   map[fileKey]*startItem   // both queues by key
}

// resumeEntry is a known file that is not open: a saved position not yet
// matched to a file, or a file closed (idle, drained, or to free a slot)
// whose position is kept so that it is reopened where it was when it changes.
type resumeEntry struct {
	key       fileKey
	id        string
	gen       uint64
	offset    uint64
	meta      meta
	hasMeta   bool
	fromSaved bool // loaded at start, not yet matched to a file
	midLine   bool // offset is inside a line (started at the end)
	// closedSize and closedMtime are the file's size and mtime (unix ns) when
	// it was closed; a file that no longer has them changed. -1: unknown.
	closedSize  int64
	closedMtime int64
	rotated     bool // not at a matched path: a rotated file kept for late writes
	missed      int  // scans in a row that did not find it
	// restored: loaded at start and not persisted since. Its offset may come
	// from the WAL tail, past the checkpoint, and the WAL is not replayed
	// from that far back again once the positions checkpoint moves on: it
	// is persisted again, with a fresh meta, when its file is matched.
	restored bool
}

// liveFile reports whether the entry is of its stream's live file (not a
// rotated one).
func (r *resumeEntry) liveFile() bool {
	return !r.hasMeta || !r.rotated && r.meta.path == r.meta.streamPath()
}

// moveTo records that the file is now at path; its lines keep their stream.
func (r *resumeEntry) moveTo(path string) {
	if r.meta.stream == "" {
		r.meta.stream = r.meta.path
	}
	r.meta.path = path
	if r.meta.stream == path {
		r.meta.stream = ""
	}
}

// startItem is a file waiting for a slot.
type startItem struct {
	path   string
	key    fileKey
	first  bool   // found by the first scan: start_at applies
	orphan bool   // not at a matched path: drain it, then close it
	stream string // filename label of a file never seen at its stream path
	why    startWhy
}

// startWhy says why a file is started, for counters and logs.
type startWhy uint8

const (
	whyNew      startWhy = iota // found by a scan, or reopened because it changed
	whyRotated                  // a followed file found rotated while stopped
	whyUnseen                   // a rotated file never seen at a matched path
	whyLate                     // a closed rotated file grew
	whyCopy                     // the rotated copy of a file truncated while closed
	whyPressure                 // gave up its slot with data left
)

// PositionInfo describes one followed file (for /positions).
type PositionInfo struct {
	ID          string `json:"id"`
	Path        string `json:"path"`
	Stream      string `json:"stream"`
	ReadOffset  uint64 `json:"read_offset"`
	AckedOffset uint64 `json:"acked_offset"`
	Size        uint64 `json:"size"`
	InFlight    int    `json:"in_flight"`
	Draining    bool   `json:"draining"`
	Open        bool   `json:"open"`
}

// New validates cfg (zero fields take their defaults) and builds a Source
// that resumes the files of saved, matched by device, inode, head
// fingerprint and the mark before the saved offset. Saved positions of other
// sources are ignored. It starts nothing; reg may be nil.
func New(cfg Config, app ingest.Appender, cp ingest.Checkpointer, saved []ingest.SavedPosition, log zerolog.Logger, reg prometheus.Registerer) (*Source, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if app == nil || cp == nil {
		return nil, errors.New("file: new: appender and checkpointer are required")
	}
	cfg.Include = slices.Clone(cfg.Include)
	readCompress := false
	for i, p := range cfg.Include {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("file: new: include %q: %w", p, err)
		}
		cfg.Include[i] = abs
		readCompress = readCompress || compressedName(abs)
	}
	routes, err := compileRoutes(cfg.Routes)
	if err != nil {
		return nil, err
	}
	// Route patterns are followed too; Run only ever looks at Include.
	for _, r := range routes {
		for _, p := range r.match {
			if !slices.Contains(cfg.Include, p) {
				cfg.Include = append(cfg.Include, p)
				readCompress = readCompress || compressedName(p)
			}
		}
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
		cfg:          cfg,
		app:          app,
		cp:           cp,
		log:          log,
		cnt:          &counters{},
		routes:       routes,
		readCompress: readCompress,
		kick:         make(chan struct{}, 1),
		firstStart:   len(saved) == 0 && cfg.StartAt == StartEnd,
		watched:      map[string]bool{},
		watchFailed:  map[string]bool{},
		tailers:      map[fileKey]*tailer{},
		byPath:       map[string]*tailer{},
		resume:       map[fileKey]*resumeEntry{},
		closedAt:     map[string]fileKey{},
		queued:       map[fileKey]*startItem{},
	}
	s.static = staticLabels(cfg.Labels, nil, cfg.Hostname)
	for i := range s.routes {
		s.routes[i].static = staticLabels(cfg.Labels, s.routes[i].labels, cfg.Hostname)
	}
	s.budget = newByteBudget(int64(cfg.MaxInflightBytes))
	s.reads = newReadSlots(readSlotsFor(cfg), cfg.ReadBufferBytes)
	s.payloads = newPayloadPool(cfg.MaxEntryBytes)
	s.step = min(max(int64(cfg.MaxInflightBytes)/16, 4<<10), 64<<10)
	s.turnBytes = uint64(max(cfg.MaxEntryBytes, 4*cfg.ReadBufferBytes))
	s.cnt.budget, s.cnt.reads = s.budget, s.reads
	s.builders.New = func() any { return record.NewBuilder() }
	s.loadSaved(saved)
	if err := register(reg, newCollector(s.cnt)); err != nil {
		return nil, fmt.Errorf("file: new: metrics: %w", err)
	}
	return s, nil
}

// loadSaved indexes saved positions by device and inode. When several ids
// share an inode, the newest generation wins (it was first seen last); the
// others are stale and deleted when Run starts. A winner known only from
// the WAL tail (no meta: it began after the last checkpoint) takes where
// the file was and its stream from the newest stale meta of its inode, and
// its head from its id.
func (s *Source) loadSaved(saved []ingest.SavedPosition) {
	type located struct {
		gen uint64
		m   meta
	}
	where := map[fileKey]located{}
	for _, sp := range saved {
		k, gen, head, ok := parseID(sp.ID)
		if !ok {
			continue
		}
		if gen > s.lastGen.Load() {
			s.lastGen.Store(gen)
		}
		r := &resumeEntry{key: k, id: sp.ID, gen: gen, offset: sp.Offset, fromSaved: true, restored: true, closedSize: -1, closedMtime: -1}
		if len(sp.Meta) > 0 {
			m, err := decodeMeta(sp.Meta)
			if err != nil {
				s.log.Warn().Err(err).Str("id", sp.ID).Msg("file: ignoring unreadable position meta; identity checked by inode and id only")
			} else {
				r.meta, r.hasMeta, r.rotated = m, true, m.rotated
				if l, ok := where[k]; !ok || gen > l.gen {
					where[k] = located{gen, m}
				}
			}
		}
		if head.n > r.meta.fp.n {
			r.meta.fp = head
		}
		if old := s.resume[k]; old != nil {
			if old.id == r.id {
				// The same id twice: keep the further position.
				old.offset = max(old.offset, r.offset)
				continue
			}
			if old.gen > gen || (old.gen == gen && old.offset >= r.offset) {
				s.stale = append(s.stale, r)
				continue
			}
			s.stale = append(s.stale, old)
		}
		s.resume[k] = r
	}
	for k, r := range s.resume {
		if l, ok := where[k]; ok && !r.hasMeta {
			r.meta.path, r.meta.stream, r.meta.seen, r.hasMeta = l.m.path, l.m.stream, l.m.seen, true
		}
	}
	for _, r := range s.stale {
		if l, ok := where[r.key]; ok && !r.hasMeta {
			r.meta.path, r.meta.stream, r.meta.seen, r.hasMeta = l.m.path, l.m.stream, l.m.seen, true
		}
	}
	s.triggers = append(s.triggers, s.unseenLiveTriggers()...)
}

// unseenLiveTriggers asks the first scan to look for the rotated files of
// every stream whose saved positions are all of rotated files: the stop
// came after the live file was seen leaving its path and before a line of
// its successor was captured. That successor, rotated in turn while the
// agent was down, is at a rotated name, known to no position; without the
// search it would be taken for a new file of its own name (its lines
// misfiled), or, when rotated names are not matched, never read. Files
// changed after the stream's live path was last seen qualify, as for the
// search a scan asks for when it sees the live file leave (the stream's
// live file known from a position triggers its own search when it moved).
func (s *Source) unseenLiveTriggers() []rotationTrigger {
	live := map[string]bool{}
	seen := map[string]int64{}
	for _, r := range s.resume {
		if !r.hasMeta {
			continue // its stream is guessed when its file is found
		}
		st := r.meta.streamPath()
		if r.liveFile() {
			live[st] = true
		}
		seen[st] = max(seen[st], r.meta.seen)
	}
	var trs []rotationTrigger
	for st, at := range seen {
		if live[st] || at == 0 {
			continue
		}
		trs = append(trs, rotationTrigger{stream: st, notBefore: at - int64(s.siblingSlack())})
	}
	return trs
}

// searchStaleCopies looks, once, for rotated copies of the content of
// superseded generations: a generation truncated by copytruncate just before
// a crash lives on in its copy, which may hold bytes beyond its position,
// and which must be known (not read again) either way.
func (s *Source) searchStaleCopies() {
	stale := s.stale
	s.stale = nil
	for _, r := range stale {
		if !r.hasMeta || r.meta.fp.n == 0 || r.offset == 0 {
			continue
		}
		for _, m := range s.findCopies(filepath.Dir(r.meta.path), r.key, r.meta.fp, r.offset, r.meta.mark, r.meta.markOff, nil) {
			if s.claimCopy(m, r.meta, r.offset) && m.read {
				s.cnt.rotCopytruncate.Add(1)
			}
		}
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
// goroutine it started has stopped. It runs one goroutine per open file
// plus its own, which scans, routes file system events and hands out slots.
func (s *Source) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	for _, r := range s.stale {
		s.cp.DeletePosition(r.id)
	}

	var wg sync.WaitGroup
	var (
		w      *fsnotify.Watcher
		events <-chan fsnotify.Event
		werrs  <-chan error
	)
	s.notifyOff = true
	if !s.cfg.DisableNotify {
		var err error
		w, err = fsnotify.NewBufferedWatcher(4096)
		if err != nil {
			// Typically the inotify instance limit (fs.inotify.max_user_instances).
			s.cnt.watchErrors.Add(1)
			s.cnt.notifyFallbacks.Add(1)
			s.log.Warn().Err(err).Msg("file: no file system notifications (inotify limits?); polling only")
			w = nil
		} else {
			s.notifyOff = false
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
		case <-s.kick:
			s.fill(ctx, &wg)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Has(fsnotify.Write) && !s.poke(ev.Name) {
				if s.wakeClosed(ev.Name) {
					s.fill(ctx, &wg)
				} else if s.matched(ev.Name) {
					// A matched file not followed yet (new, or left waiting
					// while it was empty or a copy) was written to.
					requestScan()
				}
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
				s.cnt.overflows.Add(1)
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
	s.mu.Lock()
	s.urgent, s.queue = nil, nil
	clear(s.queued)
	s.mu.Unlock()
	s.cnt.filesWaiting.Store(0)
	return nil
}

// discovered is one file matched by the include patterns.
type discovered struct {
	path  string
	key   fileKey
	size  int64
	mtime int64
}

// discover lists the matched regular files, each inode once, and the
// directories worth watching. Of several paths to one inode the first real
// file wins over symbolic links, then include order, then lexical order.
func (s *Source) discover() ([]discovered, map[string]bool) {
	seen := map[fileKey]int{}
	links := map[fileKey]bool{}
	dirs := map[string]bool{}
	var out []discovered
	for _, pat := range s.cfg.Include {
		if fi, err := os.Stat(staticPrefix(pat)); err == nil && fi.IsDir() {
			dirs[staticPrefix(pat)] = true
		}
		for _, p := range expandPattern(pat) {
			if excluded(s.cfg.Exclude, p) || (!s.readCompress && compressedName(p)) {
				continue
			}
			fi, err := os.Lstat(p)
			if err != nil {
				continue
			}
			link := fi.Mode()&os.ModeSymlink != 0
			if link {
				if fi, err = os.Stat(p); err != nil {
					continue
				}
				// Writes to the target show up in its own directory.
				if real, err := filepath.EvalSymlinks(p); err == nil {
					dirs[filepath.Dir(real)] = true
				}
			}
			if !fi.Mode().IsRegular() {
				continue
			}
			k, ok := keyOf(fi)
			if !ok {
				continue
			}
			d := discovered{path: p, key: k, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
			dirs[filepath.Dir(p)] = true
			if i, dup := seen[k]; dup {
				if links[k] && !link {
					out[i] = d
					links[k] = false
				}
				continue
			}
			seen[k] = len(out)
			links[k] = link
			out = append(out, d)
		}
	}
	return out, dirs
}

// scan is the truth about which files exist: it queues new and changed
// files, tells open files that left every matched path to drain and close,
// matches saved positions to files, looks for rotated files, and forgets
// positions of files that are gone.
func (s *Source) scan(ctx context.Context, wg *sync.WaitGroup, w *fsnotify.Watcher) {
	s.cnt.scans.Add(1)
	first := s.firstStart
	s.firstStart = false
	found, dirs := s.discover()
	now := time.Now()

	seen := make(map[fileKey]discovered, len(found))
	live := make(map[string]bool, len(found))
	for _, d := range found {
		live[d.path] = true
	}
	var fresh []discovered
	var saved []*resumeEntry
	triggers := s.triggers
	s.triggers = nil
	s.mu.Lock()
	for _, d := range found {
		seen[d.key] = d
		if t := s.tailers[d.key]; t != nil {
			old, tr := t.seenAt(d.path, now)
			if old != d.path {
				if s.byPath[old] == t {
					delete(s.byPath, old)
				}
				s.byPath[d.path] = t
			}
			if tr != nil {
				triggers = append(triggers, *tr)
			}
			continue
		}
		if it := s.queued[d.key]; it != nil {
			it.path, it.orphan = d.path, false
			continue
		}
		r := s.resume[d.key]
		if r == nil {
			fresh = append(fresh, d)
			continue
		}
		if r.fromSaved {
			saved = append(saved, r)
			continue
		}
		if r.meta.path != d.path {
			if s.closedAt[r.meta.path] == r.key {
				delete(s.closedAt, r.meta.path)
			}
			if r.meta.path == r.meta.streamPath() && !r.rotated {
				triggers = append(triggers, s.triggerFor(r.meta))
			}
			r.moveTo(d.path)
		}
		r.rotated, r.missed = false, 0
		s.closedAt[d.path] = r.key
		if d.path == r.meta.streamPath() {
			r.meta.seen = now.UnixNano()
		}
		if r.closedSize != d.size || r.closedMtime != d.mtime {
			s.enqueueLocked(&startItem{path: d.path, key: d.key, first: first})
		}
	}
	for k, t := range s.tailers {
		if _, ok := seen[k]; ok {
			continue
		}
		if path, tr, left := t.leave(now); left {
			if s.byPath[path] == t {
				delete(s.byPath, path)
			}
			kind := "renamed"
			if fi, err := t.f.Stat(); err == nil && unlinked(fi) {
				kind = "deleted"
				s.cnt.rotDelete.Add(1)
			} else {
				s.cnt.rotRename.Add(1)
			}
			if tr != nil {
				triggers = append(triggers, *tr)
			}
			s.log.Info().Str("path", path).Str("how", kind).Msg("file: file left its path; draining it")
		}
	}
	for k, it := range s.queued {
		if _, ok := seen[k]; !ok {
			it.orphan = true // moved before it was opened: found by inode at start
		}
	}
	var gone []*resumeEntry
	for k, r := range s.resume {
		if _, ok := seen[k]; ok || s.queued[k] != nil {
			continue
		}
		gone = append(gone, r)
	}
	s.mu.Unlock()

	// Saved positions of files at matched paths: identity checked now, so
	// that copies and unseen rotated files are sorted out before new files.
	for _, r := range saved {
		triggers = append(triggers, s.matchSaved(r, seen[r.key], first, live)...)
	}
	// Known files no pattern matches (any more).
	dirCache := map[string][]os.DirEntry{}
	for _, r := range gone {
		triggers = append(triggers, s.followGone(r, dirCache, dirs, live)...)
	}
	s.searchStaleCopies()
	s.adopt(fresh, triggers, first, dirCache)
	s.fill(ctx, wg)
	s.watch(w, dirs)
}

// rotationTrigger asks for a search of rotated files of stream in dir that
// were never seen: files changed after notBefore.
type rotationTrigger struct {
	stream    string
	notBefore int64
}

// siblingSlack widens a trigger's window: mtimes are coarse, and the scan
// that last saw the file at its stream path may be a scan interval old.
func (s *Source) siblingSlack() time.Duration { return s.cfg.ScanInterval + time.Second }

func (s *Source) triggerFor(m meta) rotationTrigger {
	return rotationTrigger{stream: m.streamPath(), notBefore: m.seen - int64(s.siblingSlack())}
}

// matchSaved checks a saved position whose inode is at a matched path (d):
// unchanged, it is queued to resume; otherwise its rotated copy is looked
// for and the file is queued to start again from 0.
func (s *Source) matchSaved(r *resumeEntry, d discovered, first bool, live map[string]bool) []rotationTrigger {
	var trs []rotationTrigger
	s.mu.Lock()
	r.fromSaved = false
	switch {
	case !r.hasMeta:
		// Known from the WAL tail only: where it is, and its stream guessed.
		r.meta.path, r.meta.stream, r.hasMeta = d.path, "", true
		if st := guessStream(d.path, live); st != d.path {
			r.meta.stream = st
			trs = append(trs, rotationTrigger{stream: st, notBefore: d.mtime - int64(time.Second)})
		}
	case d.path != r.meta.path && r.meta.path == r.meta.streamPath() && !r.rotated:
		// Rotated while stopped, to a name that is still matched.
		trs = append(trs, s.triggerFor(r.meta))
	}
	s.mu.Unlock()
	if f, err := os.Open(d.path); err == nil {
		fi, err := f.Stat()
		v := identSame
		if k, ok := keyOf(fi); err == nil && ok && k == r.key {
			v = s.classify(f, uint64(fi.Size()), r)
		}
		if v == identSame && !r.liveFile() && uint64(d.size) == r.offset {
			// A rotated file read to its end before the stop: nothing to
			// open until it grows.
			s.persistRestored(r, f)
			_ = f.Close()
			s.mu.Lock()
			if s.resume[r.key] == r {
				r.moveTo(d.path)
				r.closedSize, r.closedMtime = d.size, d.mtime
				s.closedAt[d.path] = r.key
			}
			s.mu.Unlock()
			return trs
		}
		_ = f.Close()
		if v != identSame {
			if !r.liveFile() {
				// Another file in this inode: forgotten (see decideStart).
				trs = append(trs, s.resolveChanged(r, "", v)...)
				s.dropPosition(r, "inode holds another file")
				return trs
			}
			trs = append(trs, s.resolveChanged(r, d.path, v)...)
		}
	}
	s.mu.Lock()
	if s.resume[r.key] == r {
		r.moveTo(d.path)
		r.rotated = false // at a matched path
		s.closedAt[d.path] = r.key
	}
	s.enqueueLocked(&startItem{path: d.path, key: d.key, first: first})
	s.mu.Unlock()
	return trs
}

// followGone handles a known file found at no matched path: a saved file
// rotated while the agent was stopped, or a closed file rotated since. It
// is looked for by inode in the directory it was last seen in (or, known
// from the WAL tail only, in every directory the patterns reach); found, it
// is drained when it has bytes not yet read. Not found, its position is
// dropped (after a last look for a rotated copy of a saved file).
func (s *Source) followGone(r *resumeEntry, dirCache map[string][]os.DirEntry, dirs, live map[string]bool) []rotationTrigger {
	var trs []rotationTrigger
	var (
		path  string
		fi    os.FileInfo
		found bool
		// guessed: known from the WAL tail only, found by inode; it was
		// the live file of the stream guessed for it (with its trigger).
		guessed bool
	)
	if r.hasMeta {
		path, fi, found = findByKey(r.meta.path, r.key, dirCache)
	} else if r.fromSaved {
		for d := range dirs {
			if path, fi, found = findInDir(d, r.key, dirCache); found {
				break
			}
		}
		if found {
			guessed = true
			s.mu.Lock()
			r.meta.path, r.meta.stream, r.hasMeta = path, "", true
			if st := guessStream(path, live); st != path {
				r.meta.stream = st
				trs = append(trs, rotationTrigger{stream: st, notBefore: fi.ModTime().UnixNano() - int64(time.Second)})
			}
			s.mu.Unlock()
		}
	}
	wasLive := r.hasMeta && !r.rotated && r.meta.path == r.meta.streamPath()
	if !found {
		// A directory listing races with renames (a rotation moves every
		// file of it): gone only when two scans in a row do not find it.
		s.mu.Lock()
		r.missed++
		missed := r.missed
		s.mu.Unlock()
		if missed < 2 {
			return trs
		}
		if r.fromSaved && r.hasMeta && wasLive {
			trs = append(trs, s.resolveChanged(r, "", identGone)...)
		}
		s.dropPosition(r, "file gone")
		if wasLive {
			trs = append(trs, s.triggerFor(r.meta))
		}
		return trs
	}
	s.mu.Lock()
	if s.resume[r.key] != r || s.queued[r.key] != nil {
		s.mu.Unlock()
		return nil
	}
	if s.closedAt[r.meta.path] == r.key {
		delete(s.closedAt, r.meta.path)
	}
	fromSaved := r.fromSaved
	r.fromSaved, r.missed = false, 0
	r.moveTo(path)
	if wasLive {
		trs = append(trs, s.triggerFor(r.meta))
	}
	newlyRotated := !r.rotated
	if newlyRotated {
		r.rotated = true
		if !fromSaved {
			s.cnt.rotRename.Add(1)
		}
	}
	size, mtime := fi.Size(), fi.ModTime().UnixNano()
	wasLive = wasLive || guessed
	if fromSaved && !wasLive {
		// A rotated file known before the stop: read only if it grew.
		r.closedSize, r.closedMtime = int64(r.offset), -1
	}
	grew := size != r.closedSize || mtime != r.closedMtime
	// Drained when it has unread bytes that changed since it was closed, or
	// that were left unread because it was live then (an incomplete line).
	switch {
	case fromSaved && wasLive:
		s.enqueueLocked(&startItem{path: path, key: r.key, orphan: true, why: whyRotated})
	case size != int64(r.offset) && (grew || newlyRotated):
		s.enqueueLocked(&startItem{path: path, key: r.key, orphan: true, why: whyLate})
	default:
		r.closedSize, r.closedMtime = size, mtime
	}
	restored := r.restored && s.queued[r.key] == nil
	s.mu.Unlock()
	if restored {
		if f, err := os.Open(path); err == nil {
			if fi, err := f.Stat(); err == nil {
				if k, ok := keyOf(fi); ok && k == r.key && s.classify(f, uint64(fi.Size()), r) == identSame {
					s.persistRestored(r, f)
				}
			}
			_ = f.Close()
		}
	}
	return trs
}

// persistRestored persists a position loaded at start again, with a fresh
// meta (mark at its offset), once its file was found to match it.
func (s *Source) persistRestored(r *resumeEntry, f *os.File) {
	s.mu.Lock()
	if !r.restored || r.id == "" {
		s.mu.Unlock()
		return
	}
	r.restored = false
	id, off, m := r.id, r.offset, r.meta
	s.mu.Unlock()
	mk, ok, err := markAt(f, off)
	if err != nil || !ok {
		return
	}
	m.mark, m.markOff = mk, off
	s.mu.Lock()
	r.meta.mark, r.meta.markOff = mk, off
	s.mu.Unlock()
	s.cp.SetPosition(id, off, 0, m.encode())
}

// findByKey looks for the file key: at path, else anywhere in path's
// directory.
func findByKey(path string, key fileKey, dirCache map[string][]os.DirEntry) (string, os.FileInfo, bool) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		if k, ok := keyOf(fi); ok && k == key {
			return path, fi, true
		}
	}
	return findInDir(filepath.Dir(path), key, dirCache)
}

// findInDir looks for the file key in dir, listed once per scan through
// dirCache (nil: not cached).
func findInDir(dir string, key fileKey, dirCache map[string][]os.DirEntry) (string, os.FileInfo, bool) {
	entries, ok := dirCache[dir]
	if !ok {
		entries, _ = os.ReadDir(dir)
		if dirCache != nil {
			dirCache[dir] = entries
		}
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if k, ok := keyOf(fi); ok && k == key {
			return filepath.Join(dir, e.Name()), fi, true
		}
	}
	return "", nil, false
}

// dropPosition forgets a known file that is gone.
func (s *Source) dropPosition(r *resumeEntry, why string) {
	s.mu.Lock()
	if s.resume[r.key] == r {
		delete(s.resume, r.key)
		if s.closedAt[r.meta.path] == r.key {
			delete(s.closedAt, r.meta.path)
		}
	}
	s.mu.Unlock()
	s.cnt.positionsDropped.Add(1)
	s.deletePosition(r.id)
	s.log.Info().Str("id", r.id).Str("path", r.meta.path).Str("why", why).Msg("file: position dropped")
}

// deletePosition forgets id (nothing for a generation without an id yet).
func (s *Source) deletePosition(id string) {
	if id != "" {
		s.cp.DeletePosition(id)
	}
}

// enqueueLocked queues it unless its file is open or queued. Rotated files
// go first: their names may be taken by the next rotation. s.mu is held.
func (s *Source) enqueueLocked(it *startItem) {
	if s.tailers[it.key] != nil {
		return
	}
	if old := s.queued[it.key]; old != nil {
		if it.orphan && !old.orphan {
			old.orphan, old.path = true, it.path
		}
		return
	}
	s.queued[it.key] = it
	if it.orphan {
		s.urgent = append(s.urgent, it)
	} else {
		s.queue = append(s.queue, it)
	}
	s.cnt.filesWaiting.Store(int64(len(s.urgent) + len(s.queue)))
}

// fill starts queued files while slots are free.
func (s *Source) fill(ctx context.Context, wg *sync.WaitGroup) {
	for ctx.Err() == nil {
		s.mu.Lock()
		var it *startItem
		if len(s.tailers) < s.cfg.MaxOpenFiles {
			switch {
			case len(s.urgent) > 0:
				it, s.urgent = s.urgent[0], s.urgent[1:]
			case len(s.queue) > 0:
				it, s.queue = s.queue[0], s.queue[1:]
			}
		}
		if it != nil {
			delete(s.queued, it.key)
		}
		s.cnt.filesWaiting.Store(int64(len(s.urgent) + len(s.queue)))
		s.mu.Unlock()
		if it == nil {
			return
		}
		s.startTailer(ctx, wg, it)
	}
}

// waiting reports whether files wait for a slot.
func (s *Source) waiting() bool { return s.cnt.filesWaiting.Load() > 0 }

// kickRun asks Run to hand out free slots.
func (s *Source) kickRun() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// tailerExited is called by a tailer's goroutine as it ends. hb, when not
// nil, is the file's position, kept so that a scan reopens it when it
// changes or forgets it when it is gone. requeue queues the file again at
// once (it gave up its slot with data left).
func (s *Source) tailerExited(t *tailer, hb *resumeEntry, requeue bool) {
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
		if !hb.rotated {
			s.closedAt[hb.meta.path] = t.key
		}
		if requeue {
			s.enqueueLocked(&startItem{path: hb.meta.path, key: t.key, orphan: hb.rotated, why: whyPressure})
		}
	}
	s.mu.Unlock()
	s.kickRun()
}

// poke wakes the open file at path; false when none is open there.
func (s *Source) poke(path string) bool {
	s.mu.Lock()
	t := s.byPath[path]
	s.mu.Unlock()
	if t != nil {
		t.poke()
	}
	return t != nil
}

// wakeClosed queues the closed file at path (it was written to).
func (s *Source) wakeClosed(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.closedAt[path]
	if !ok || s.resume[k] == nil {
		return false
	}
	s.enqueueLocked(&startItem{path: path, key: k})
	return true
}

func (s *Source) pokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tailers {
		t.poke()
	}
}

// watch makes the watched directories those of the last scan. A directory
// that cannot be watched (inotify watch limit) is logged once, counted, and
// left to polling: scans and the files' own polls still find everything,
// only later.
func (s *Source) watch(w *fsnotify.Watcher, dirs map[string]bool) {
	if w == nil {
		s.cnt.pollingDirs.Store(int64(len(dirs)))
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
				s.cnt.notifyFallbacks.Add(1)
				s.log.Warn().Err(err).Str("dir", d).Msg("file: cannot watch directory (inotify limits?); polling it")
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
	for d := range s.watchFailed {
		if !dirs[d] {
			delete(s.watchFailed, d)
		}
	}
	s.cnt.pollingDirs.Store(int64(len(s.watchFailed)))
}

// Positions describes every followed file, open or closed, sorted by path
// (open files first for one path).
func (s *Source) Positions() []PositionInfo {
	s.mu.Lock()
	ts := make([]*tailer, 0, len(s.tailers))
	for _, t := range s.tailers {
		ts = append(ts, t)
	}
	out := make([]PositionInfo, 0, len(s.tailers)+len(s.resume))
	for _, r := range s.resume {
		if r.fromSaved {
			continue
		}
		out = append(out, PositionInfo{
			ID: r.id, Path: r.meta.path, Stream: r.meta.streamPath(),
			ReadOffset: r.offset, AckedOffset: r.offset, Size: uint64(max(r.closedSize, 0)),
		})
	}
	s.mu.Unlock()
	for _, t := range ts {
		out = append(out, t.info())
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Open && !out[j].Open
	})
	return out
}

// Stats returns the source's counters.
func (s *Source) Stats() Stats { return s.cnt.snapshot() }

// labelsFor is the label set of the lines of stream path under route r
// (nil: no route).
func (s *Source) labelsFor(path string, r *route) *record.LabelSet {
	static := s.static
	if r != nil {
		static = r.static
	}
	ls := make([]record.Label, 0, len(static)+1)
	ls = append(ls, static...)
	ls = append(ls, record.Label{Name: LabelFilename, Value: path})
	return record.NewLabelSet(ls)
}

// compressedName reports whether a file name has the extension of a
// compressed file: rotated and compressed logs are not read as text.
func compressedName(p string) bool {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".lz", ".z", ".zip", ".7z", ".br", ".tgz":
		return true
	}
	return false
}
