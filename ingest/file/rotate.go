package file

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// identVerdict is what a known file's content looks like against its saved
// position.
type identVerdict uint8

const (
	identSame      identVerdict = iota
	identReused                 // the head differs: another file in this inode
	identTruncated              // shorter than the position
	identRewritten              // the bytes before the position differ (truncated and regrown)
	identGone                   // the inode is nowhere to be found
)

func (v identVerdict) String() string {
	return [...]string{"same", "inode reused", "truncated", "rewritten past the position", "gone"}[v]
}

// classify checks an opened file against a known position: head
// fingerprint (from the meta or the id), size, and the mark.
func (s *Source) classify(f *os.File, size uint64, r *resumeEntry) identVerdict {
	if r.meta.fp.n > 0 {
		if ok, err := r.meta.fp.matchesFile(f); err != nil || !ok {
			if size < uint64(r.meta.fp.n) && size < r.offset {
				return identTruncated
			}
			return identReused
		}
	}
	if r.offset > size {
		return identTruncated
	}
	if r.meta.mark.n > 0 {
		mk, ok, err := markAt(f, r.meta.markOff)
		if err != nil || !ok {
			return identTruncated
		}
		if mk != r.meta.mark {
			return identRewritten
		}
	}
	return identSame
}

// guessStream names the stream of a file known only by its inode (a
// position from the WAL tail, begun after the last checkpoint): the matched
// file in its directory whose name its own extends by a rotation suffix
// (app.log for app.log.1 or app.log-20240101), else its own path.
func guessStream(path string, live map[string]bool) string {
	dir, base := filepath.Dir(path), filepath.Base(path)
	best := path
	for lp := range live {
		lb := filepath.Base(lp)
		if filepath.Dir(lp) != dir || len(lb) >= len(base) || !strings.HasPrefix(base, lb) || !strings.ContainsRune(".-_", rune(base[len(lb)])) {
			continue
		}
		if best == path || len(lb) > len(filepath.Base(best)) {
			best = lp
		}
	}
	return best
}

// resolveChanged handles a known position whose file no longer holds the
// content it was taken on (v): the rotated copy holding the bytes after the
// position is looked for in its directory and queued to be drained (a
// copytruncate while the file was closed or the agent stopped), and the file
// at livePath, if any, is given a new generation that starts at 0,
// persisted at once so that it supersedes records of the old id left in the
// WAL. It returns the rotated-file search the change calls for.
func (s *Source) resolveChanged(r *resumeEntry, livePath string, v identVerdict) []rotationTrigger {
	s.log.Warn().Str("path", r.meta.path).Str("id", r.id).Uint64("offset", r.offset).Stringer("change", v).
		Msg("file: file changed since its position was saved")
	var trs []rotationTrigger
	wasLive := r.hasMeta && !r.rotated && r.meta.path == r.meta.streamPath()
	if wasLive {
		trs = append(trs, s.triggerFor(r.meta))
	}
	recovered := false
	if r.hasMeta && r.meta.fp.n > 0 && r.offset > 0 {
		for _, m := range s.findCopies(filepath.Dir(r.meta.path), r.key, r.meta.fp, r.offset, r.meta.mark, r.meta.markOff, nil) {
			if s.claimCopy(m, r.meta, r.offset) && m.read {
				recovered = true
			}
		}
	}
	switch {
	case recovered:
		s.cnt.rotCopytruncate.Add(1)
	case v == identReused:
		s.cnt.inodeReuses.Add(1)
	case v == identTruncated || v == identRewritten:
		s.cnt.truncations.Add(1)
	}
	if livePath == "" {
		return trs
	}
	nm := meta{path: livePath, seen: time.Now().UnixNano()}
	if v != identReused || recovered {
		// Same lineage of content: its lines stay in their stream.
		nm.stream = r.meta.streamPath()
	}
	if nm.stream == nm.path {
		nm.stream = ""
	}
	// The new generation's id is minted when its first bytes are read (it
	// carries their fingerprint); an old id's records left in the WAL are
	// superseded by it, or, if none comes, the file is new again.
	s.deletePosition(r.id)
	s.mu.Lock()
	r.id, r.gen, r.offset, r.meta, r.hasMeta, r.midLine = "", 0, 0, nm, true, false
	r.closedSize, r.closedMtime, r.fromSaved = -1, -1, false
	s.mu.Unlock()
	return trs
}

// copyMatch is a rotated copy of a followed file: a file in the same
// directory with the same head whose bytes before the position are those
// read. read says it holds bytes beyond the position (to be read from it);
// otherwise every byte of it was read already.
type copyMatch struct {
	path       string
	key        fileKey
	size       uint64
	mtime      int64
	read       bool
	unverified bool   // taken on its head alone (see findCopies)
	stale      string // id of a position of the inode for the file it held before
}

// findCopies looks in dir for copies of the content identified by head and
// by the bytes before off: tail itself (the bytes read just before off, when
// the caller has them), or else the hash mark of the bytes before markOff
// (<= off), or else the head alone. Known files are skipped. At
// most one copy to read is returned (the oldest), plus every copy already
// read through.
//
// A copy shorter than off (the writer's lines after the copy were read
// before the truncation) is checked against tail when tail reaches back far
// enough; otherwise, with a head of at least minUnverifiedHead bytes, it is
// taken as read on the head alone and counted, since a different file with
// the same long head appearing at that moment is far less likely than a
// copy, and reading it again would duplicate a whole rotation.
func (s *Source) findCopies(dir string, self fileKey, head fingerprint, off uint64, mark fingerprint, markOff uint64, tail []byte) []copyMatch {
	if head.n == 0 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []copyMatch
	var best *copyMatch
	var mb [markBytes]byte
	for _, e := range entries {
		if !e.Type().IsRegular() || compressedName(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Size() < int64(head.n) {
			continue
		}
		k, ok := keyOf(fi)
		if !ok || k == self {
			continue
		}
		open, known := s.knownEntry(k)
		if open {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		size := uint64(fi.Size())
		m := copyMatch{path: path, key: k, size: size, mtime: fi.ModTime().UnixNano()}
		if known != nil {
			// The inode has a position: a copy only if it now holds
			// another file (logrotate gzips and deletes the old copy, and
			// the new one often gets its inode).
			if s.classify(f, size, known) == identSame {
				_ = f.Close()
				continue
			}
			m.stale = known.id
		}
		match := false
		if ok, err := head.matchesFile(f); err == nil && ok {
			if size >= off {
				switch {
				case len(tail) > 0:
					got, full, err := readMark(f, off, mb[:0])
					match = err == nil && full && len(tail) >= len(got) && bytes.Equal(got, tail[len(tail)-len(got):])
				case mark.n > 0:
					mk, full, err := markAt(f, markOff)
					match = err == nil && full && mk == mark
				default:
					match = true
				}
				m.read = match && size > off
			} else {
				got, full, err := readMark(f, size, mb[:0])
				tailStart := off - uint64(len(tail))
				switch {
				case err != nil || !full:
				case size-uint64(len(got)) >= tailStart && len(tail) > 0:
					i := size - uint64(len(got)) - tailStart
					match = bytes.Equal(got, tail[i:i+uint64(len(got))])
				case head.n >= minUnverifiedHead:
					match, m.unverified = true, true
				}
			}
		}
		_ = f.Close()
		if !match {
			s.log.Debug().Str("candidate", path).Uint64("size", size).Uint64("off", off).Uint32("head", head.n).
				Int("tail", len(tail)).Msg("file: not a copy")
			continue
		}
		if m.read {
			if best == nil || m.mtime < best.mtime {
				mm := m
				best = &mm
			}
			continue
		}
		out = append(out, m)
	}
	if best != nil {
		out = append(out, *best)
	}
	return out
}

// minUnverifiedHead is the shortest head on which a copy is taken as read
// without a check of its end (see findCopies).
const minUnverifiedHead = 256

// isKnown reports whether key is open, queued or has a position.
func (s *Source) isKnown(k fileKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tailers[k] != nil || s.resume[k] != nil || s.queued[k] != nil
}

// knownEntry reports whether key is open (or queued without a position),
// else a copy of its position, if any.
func (s *Source) knownEntry(k fileKey) (open bool, r *resumeEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tailers[k] != nil {
		return true, nil
	}
	if e := s.resume[k]; e != nil {
		c := *e
		return false, &c
	}
	return s.queued[k] != nil, nil
}

// claimCopy registers a copy found by findCopies for the content described
// by m at offset off, unless another claim came first, and queues it to be
// drained when it holds bytes beyond off. Its lines keep m's stream.
func (s *Source) claimCopy(c copyMatch, m meta, off uint64) bool {
	r, ok := s.newCopyEntry(c, m, off)
	if !ok {
		return false
	}
	s.mu.Lock()
	if c.read {
		s.enqueueLocked(&startItem{path: c.path, key: c.key, orphan: true, why: whyCopy})
	}
	s.mu.Unlock()
	s.cp.SetPosition(r.id, r.offset, 0, r.meta.encode())
	s.kickRun()
	return true
}

// staleEntry reports whether the file key at path (size bytes) is known:
// open, queued as new, or with a position that still describes it. A
// position that no longer does (the inode now holds another file) is
// returned as stale: the file counts as never seen.
func (s *Source) staleEntry(path string, k fileKey, size int64) (stale string, known bool) {
	open, r := s.knownEntry(k)
	if open {
		return "", true
	}
	if r == nil {
		return "", false
	}
	f, err := os.Open(path)
	if err != nil {
		return "", true
	}
	defer f.Close()
	if s.classify(f, uint64(size), r) == identSame {
		return "", true
	}
	return r.id, false
}

// copyPos is the position of a claimed copy, to persist once it is read.
type copyPos struct {
	id     string
	offset uint64
	meta   []byte
}

// reserveCopy registers a copy that the caller reads itself, to its end,
// and then persists at the returned position.
func (s *Source) reserveCopy(c copyMatch, m meta) (copyPos, bool) {
	cc := c
	cc.read = false
	r, ok := s.newCopyEntry(cc, m, c.size)
	if !ok {
		return copyPos{}, false
	}
	return copyPos{id: r.id, offset: r.offset, meta: r.meta.encode()}, true
}

// newCopyEntry adds the position of a claimed copy: at off when it is to be
// read from there, else at its end.
func (s *Source) newCopyEntry(c copyMatch, m meta, off uint64) (*resumeEntry, bool) {
	cm := meta{path: c.path, stream: m.streamPath(), fp: m.fp, seen: m.seen, rotated: true}
	if cm.stream == cm.path {
		cm.stream = ""
	}
	pos := c.size
	if c.read {
		pos, cm.mark, cm.markOff = off, m.mark, m.markOff
	} else if f, err := os.Open(c.path); err == nil {
		cm.mark, _, _ = markAt(f, c.size)
		cm.markOff = c.size
		_ = f.Close()
	}
	gen := s.nextGen()
	r := &resumeEntry{key: c.key, id: formatID(c.key, gen, m.fp), gen: gen, offset: pos, meta: cm, hasMeta: true,
		closedSize: int64(c.size), closedMtime: c.mtime, rotated: !s.matched(c.path)}
	snap := *r
	s.mu.Lock()
	old := s.resume[c.key]
	switch {
	case s.tailers[c.key] != nil:
		s.mu.Unlock()
		return nil, false
	case old != nil && (c.stale == "" || old.id != c.stale):
		s.mu.Unlock()
		return nil, false
	case old == nil && s.queued[c.key] != nil:
		s.mu.Unlock()
		return nil, false
	}
	if old != nil && s.closedAt[old.meta.path] == c.key {
		delete(s.closedAt, old.meta.path)
	}
	s.resume[c.key] = r
	if !r.rotated {
		s.closedAt[c.path] = c.key
	}
	s.mu.Unlock()
	if old != nil {
		s.deletePosition(old.id)
	}
	if c.unverified {
		s.cnt.copyUnverified.Add(1)
	}
	s.log.Info().Str("path", c.path).Str("of", m.path).Uint64("from", pos).Uint64("size", c.size).Bool("read", c.read).
		Bool("unverified", c.unverified).Msg("file: rotated copy found")
	return &snap, true
}

// matched reports whether path is matched by the include patterns and not
// excluded.
func (s *Source) matched(path string) bool {
	if excluded(s.cfg.Exclude, path) || (!s.readCompress && compressedName(path)) {
		return false
	}
	for _, p := range s.cfg.Include {
		if matchPath(p, path) {
			return true
		}
	}
	return false
}

// knownFile is what adopt compares a new file with.
type knownFile struct {
	key     fileKey
	path    string
	fp      fingerprint
	markOff uint64 // mark is of the bytes before it
	mark    fingerprint
	f       *os.File // the open file, or nil
}

// knownByDir indexes the known files with a head by directory.
func (s *Source) knownByDir() map[string][]knownFile {
	idx := map[string][]knownFile{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tailers {
		k := t.known()
		if k.fp.n > 0 {
			d := filepath.Dir(k.path)
			idx[d] = append(idx[d], k)
		}
	}
	for _, r := range s.resume {
		if r.hasMeta && r.meta.fp.n > 0 {
			d := filepath.Dir(r.meta.path)
			idx[d] = append(idx[d], knownFile{key: r.key, path: r.meta.path, fp: r.meta.fp, markOff: r.meta.markOff, mark: r.meta.mark})
		}
	}
	return idx
}

// copyOfKnown reports whether the file at path (size bytes) may hold
// nothing but content of a known file in its directory, so that it must not
// be read on its own (yet): the same head and the same bytes before the
// known file's mark; or, shorter than the mark, the same bytes before its
// own end as the known file has there; or, shorter than the known file's
// head, the same bytes as its beginning (a copy being written); or empty (a
// copy about to be written). Such a file is a copy (copytruncate, cp),
// claimed by its original when the truncation is seen; until then, and for a
// copy whose original is never truncated, it waits here, checked again by
// every scan: once it holds bytes of its own it is read like any file.
func (s *Source) copyOfKnown(path string, key fileKey, size int64, known []knownFile) bool {
	if len(known) == 0 {
		return false
	}
	if size == 0 {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	heads := map[uint32]fingerprint{}
	var a, b [markBytes]byte
	for _, k := range known {
		if k.fp.n == 0 || k.key == key {
			continue // nothing to compare, or its own stale position
		}
		var other *os.File
		theirs := func() *os.File {
			if other != nil {
				return other
			}
			if k.f != nil {
				other = k.f
				return other
			}
			o, err := os.Open(k.path)
			if err != nil {
				return nil
			}
			if fi, err := o.Stat(); err != nil {
				_ = o.Close()
				return nil
			} else if kk, ok := keyOf(fi); !ok || kk != k.key {
				_ = o.Close()
				return nil
			}
			other = o
			return other
		}
		match := false
		switch {
		case uint64(size) < uint64(k.fp.n):
			if o := theirs(); o != nil {
				match = samePrefix(f, o, size)
			}
		default:
			h, ok := heads[k.fp.n]
			if !ok {
				h, _ = computeFingerprint(f, int(k.fp.n))
				heads[k.fp.n] = h
			}
			switch {
			case h != k.fp:
			case uint64(size) >= k.markOff:
				mk, ok, _ := markAt(f, k.markOff)
				match = ok && mk == k.mark
			default:
				if o := theirs(); o != nil {
					mine, ok1, _ := readMark(f, uint64(size), a[:0])
					their, ok2, err := readMark(o, uint64(size), b[:0])
					switch {
					case !ok1:
					case ok2:
						match = bytes.Equal(mine, their)
					case err == nil:
						// The known file is shorter now than this one, which
						// has its head and ends before its mark: it was
						// truncated after it was read past here. This is its
						// copytruncate copy, found before its reader saw the
						// truncation; the reader claims it then (it kept the
						// bytes it read). If it does not, the known file's
						// head changes, and a later scan reads this one.
						match = true
					}
				}
			}
		}
		if other != nil && other != k.f {
			_ = other.Close()
		}
		if match {
			return true
		}
	}
	return false
}

// samePrefix reports whether a and b begin with the same n bytes (n is
// small: less than a head fingerprint).
func samePrefix(a, b *os.File, n int64) bool {
	x, y := make([]byte, n), make([]byte, n)
	na, _ := a.ReadAt(x, 0)
	nb, _ := b.ReadAt(y, 0)
	return int64(na) == n && int64(nb) == n && bytes.Equal(x, y)
}

// adopt queues the files a scan found that are not known: first the rotated
// files of the triggers (files of a stream's rotation, never seen, changed
// since the stream was last seen), then the new matched files. Copies of
// known files are left for their originals to claim.
func (s *Source) adopt(fresh []discovered, triggers []rotationTrigger, first bool, dirCache map[string][]os.DirEntry) {
	if len(fresh) == 0 && len(triggers) == 0 {
		return
	}
	idx := s.knownByDir()
	taken := map[fileKey]bool{}
	byStream := map[string]int64{}
	for _, tr := range triggers {
		if nb, ok := byStream[tr.stream]; !ok || tr.notBefore < nb {
			byStream[tr.stream] = tr.notBefore
		}
	}
	for stream, notBefore := range byStream {
		dir, base := filepath.Dir(stream), filepath.Base(stream)
		entries, ok := dirCache[dir]
		if !ok {
			entries, _ = os.ReadDir(dir)
			dirCache[dir] = entries
		}
		for _, e := range entries {
			name := e.Name()
			rest, ok := strings.CutPrefix(name, base)
			if !ok || rest == "" || !strings.ContainsRune(".-_", rune(rest[0])) || !e.Type().IsRegular() || compressedName(name) {
				continue
			}
			path := filepath.Join(dir, name)
			if excluded(s.cfg.Exclude, path) {
				continue
			}
			fi, err := e.Info()
			if err != nil || fi.Size() == 0 || fi.ModTime().UnixNano() <= notBefore {
				continue
			}
			k, ok := keyOf(fi)
			if !ok || taken[k] {
				continue
			}
			stale, known := s.staleEntry(path, k, fi.Size())
			if known || s.copyOfKnown(path, k, fi.Size(), idx[dir]) {
				continue
			}
			taken[k] = true
			s.cnt.rotatedFound.Add(1)
			s.log.Info().Str("path", path).Str("stream", stream).Msg("file: found a rotated file never seen at its path; reading it")
			it := &startItem{path: path, key: k, orphan: !s.matched(path), stream: stream, why: whyUnseen}
			s.mu.Lock()
			if e := s.resume[k]; stale != "" && e != nil && e.id == stale {
				delete(s.resume, k)
				if s.closedAt[e.meta.path] == k {
					delete(s.closedAt, e.meta.path)
				}
			}
			if q := s.queued[k]; q != nil {
				// Queued on the strength of the stale position: started as
				// what it is now.
				q.path, q.orphan, q.stream, q.why = it.path, it.orphan, it.stream, it.why
			} else {
				s.enqueueLocked(it)
			}
			s.mu.Unlock()
			s.deletePosition(stale)
		}
	}
	for _, d := range fresh {
		if taken[d.key] || s.isKnown(d.key) {
			continue
		}
		if s.copyOfKnown(d.path, d.key, d.size, idx[filepath.Dir(d.path)]) {
			s.log.Debug().Str("path", d.path).Msg("file: new file is a copy of a followed one; left to it")
			continue
		}
		s.mu.Lock()
		s.enqueueLocked(&startItem{path: d.path, key: d.key, first: first})
		s.mu.Unlock()
	}
}
