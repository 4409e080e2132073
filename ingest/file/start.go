package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// startPoint is where a tailer begins.
type startPoint struct {
	id       string
	offset   uint64
	fp       fingerprint
	mark     fingerprint // the bytes before offset
	midLine  bool        // offset is inside a line: drop up to the next '\n'
	register bool        // persist the position at once
	stream   string
	seen     int64
}

// openKey opens the file key, expected at path; a file moved since (rotated
// before it was opened) is looked for in the same directory.
func openKey(path string, key fileKey) (*os.File, os.FileInfo, string, error) {
	try := func(p string) (*os.File, os.FileInfo, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return nil, nil, err
		}
		if k, ok := keyOf(fi); !ok || k != key || !fi.Mode().IsRegular() {
			_ = f.Close()
			return nil, nil, fs.ErrNotExist
		}
		return f, fi, nil
	}
	f, fi, err := try(path)
	if err == nil {
		return f, fi, path, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, "", err
	}
	p, _, found := findByKey(path, key, nil)
	if !found {
		return nil, nil, "", fs.ErrNotExist
	}
	f, fi, err = try(p)
	return f, fi, p, err
}

// startTailer opens a queued file and starts following it.
func (s *Source) startTailer(ctx context.Context, wg *sync.WaitGroup, it *startItem) {
	f, fi, path, err := openKey(it.path, it.key)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.cnt.readErrors.Add(1)
			s.log.Warn().Err(err).Str("path", it.path).Msg("file: open failed")
		}
		return
	}
	s.mu.Lock()
	if s.tailers[it.key] != nil {
		s.mu.Unlock()
		_ = f.Close()
		return
	}
	r := s.resume[it.key]
	delete(s.resume, it.key)
	if r != nil && s.closedAt[r.meta.path] == it.key {
		delete(s.closedAt, r.meta.path)
	}
	s.mu.Unlock()
	giveBack := func() {
		if r == nil {
			return
		}
		s.mu.Lock()
		if s.resume[r.key] == nil && s.tailers[r.key] == nil {
			s.resume[r.key] = r
		}
		s.mu.Unlock()
	}

	size := uint64(fi.Size())
	st, read, err := s.decideStart(f, size, path, it, r)
	if err != nil {
		s.cnt.readErrors.Add(1)
		s.log.Warn().Err(err).Str("path", path).Msg("file: cannot identify file")
		_ = f.Close()
		giveBack()
		return
	}
	if !read {
		_ = f.Close()
		return
	}
	t := newTailer(s, f, it.key, path, size, st)
	t.refreshFingerprint()
	if st.register {
		t.mintID()
		t.mu.Lock()
		id, m := t.id, t.metaLocked(st.mark, st.offset)
		t.mu.Unlock()
		s.cp.SetPosition(id, st.offset, 0, m)
	}
	if it.orphan {
		t.orphaned, t.leftAt = true, time.Now()
	}
	s.mu.Lock()
	s.tailers[it.key] = t
	if !it.orphan {
		s.byPath[path] = t
	}
	s.mu.Unlock()
	s.cnt.opened()
	switch {
	case it.why == whyLate:
		s.cnt.lateWrites.Add(1)
	case it.why == whyRotated && r != nil:
		s.cnt.rotatedFound.Add(1)
		s.log.Info().Str("path", path).Str("was", r.meta.path).Msg("file: found a followed file rotated while stopped; draining it")
	case r != nil && !r.fromSaved && it.why != whyCopy:
		s.cnt.filesReopened.Add(1)
	}
	s.log.Debug().Str("path", path).Str("id", st.id).Uint64("offset", st.offset).Msg("file: following")
	wg.Go(func() { t.run(ctx) })
}

// decideStart matches an opened file against its known position, if any.
// read is false for a file not to be read at all (found away from any
// matched path, but holding other content than the position's).
func (s *Source) decideStart(f *os.File, size uint64, path string, it *startItem, r *resumeEntry) (st startPoint, read bool, err error) {
	stream := path
	if it.stream != "" {
		stream = it.stream
	}
	if r != nil {
		if r.hasMeta {
			stream = r.meta.streamPath()
		}
		v := s.classify(f, size, r)
		if v == identSame {
			s.persistRestored(r, f)
			return startPoint{id: r.id, offset: r.offset, fp: r.meta.fp, mark: r.meta.mark, midLine: r.midLine,
				stream: stream, seen: r.meta.seen}, true, nil
		}
		// A live file (at its stream path) that changed is read again from
		// 0 under a new generation: at once, so that no copytruncate slips
		// by unwatched. A rotated file that changed holds another file (its
		// inode was reused, often by the next rotated copy): its position is
		// forgotten and the file comes back to the next scan as never seen,
		// to be read, or left to the file it is a copy of.
		live := path
		if it.orphan || !r.liveFile() {
			live = ""
		}
		s.triggers = append(s.triggers, s.resolveChanged(r, live, v)...)
		if live == "" {
			s.cnt.positionsDropped.Add(1)
			s.deletePosition(r.id)
			return startPoint{}, false, nil
		}
		return startPoint{id: r.id, stream: r.meta.streamPath(), seen: r.meta.seen}, true, nil
	}
	st = startPoint{stream: stream} // its id is minted with its first bytes
	if it.first && s.cfg.StartAt == StartEnd {
		off, mid, err := findEnd(f, size, s.cfg.MaxLineBytes)
		if err != nil {
			return startPoint{}, false, err
		}
		st.offset, st.midLine, st.register = off, mid, !mid
		if !mid {
			if st.mark, _, err = markAt(f, off); err != nil {
				return startPoint{}, false, err
			}
		}
	}
	return st, true, nil
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
