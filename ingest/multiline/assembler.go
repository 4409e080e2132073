package multiline

import (
	"fmt"
	"regexp"
	"time"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// EmitFunc receives one assembled entry: its lines joined with "\n", the end
// offset of its last line, and the union of its lines' flags plus
// FlagPartial when the entry is not a whole logical entry. entry is only
// valid during the call (it aliases the Assembler's buffer) and the function
// must not call back into the Assembler. An error is returned by the
// Assembler method that called it, unchanged.
type EmitFunc func(entry []byte, endOffset uint64, flags record.Flags) error

// shrinkCap is the largest entry buffer kept between entries: an agent with
// thousands of files must not keep MaxBytes per file after one big entry.
const shrinkCap = 64 << 10

// Assembler groups framed lines of one stream into entries. It is not safe
// for concurrent use: one per followed file.
type Assembler struct {
	mode     string
	re       *regexp.Regexp
	negate   bool
	hook     hook // nil unless the preset has one
	maxLines int
	maxBytes int
	timeout  time.Duration

	// The pending entry.
	buf   []byte
	lines int
	flags record.Flags
	start uint64    // end offset of the line before the entry's first line
	end   uint64    // end offset of the entry's last line
	first time.Time // when the entry's first line was added

	lastEnd uint64 // end offset of the last line added (or the Reset offset)
	split   bool   // the pending entry continues one cut at a limit

	cnt Counts // since the last TakeCounts
}

// Counts says what an Assembler emitted (see TakeCounts).
type Counts struct {
	// Entries is every entry emitted, pieces of cut entries included.
	Entries uint64
	// Split is the pieces emitted because the next line would have taken
	// the entry past MaxLines or MaxBytes.
	Split uint64
	// Flushed is the entries emitted by Flush because FlushTimeout passed
	// (FlushAll's are not counted here).
	Flushed uint64
}

// TakeCounts returns the counts since the last call and clears them: the
// caller adds them to its own counters when convenient (no atomics here).
func (a *Assembler) TakeCounts() Counts {
	c := a.cnt
	a.cnt = Counts{}
	return c
}

// New validates cfg (after WithDefaults) and builds an Assembler. It returns
// ErrDisabled for a Config that does not enable multiline.
func New(cfg Config) (*Assembler, error) {
	if !cfg.Enabled() {
		return nil, ErrDisabled
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(cfg.Pattern)
	if err != nil { // Validate compiled it already
		return nil, fmt.Errorf("multiline.pattern: invalid regexp %q: %w", cfg.Pattern, err)
	}
	a := &Assembler{
		mode:     cfg.Mode,
		re:       re,
		negate:   cfg.Negate,
		maxLines: cfg.MaxLines,
		maxBytes: cfg.MaxBytes,
		timeout:  cfg.FlushTimeout,
	}
	if p, ok := presets[cfg.Preset]; ok && p.hook != nil {
		a.hook = p.hook()
	}
	return a, nil
}

// Add feeds one framed line (without its newline) whose end offset in the
// source is endOffset (the offset after its newline), and calls emit for
// every entry it completes: at most one entry ended by this line's arrival
// (start and continue modes), one piece cut at MaxLines/MaxBytes, and the
// entry this line ends (end mode). now is the line's arrival time, the start
// of a new entry's FlushTimeout. line is copied; the caller may reuse it.
//
// After an error from emit the Assembler's state is undefined: the caller
// must Reset it (and re-read from a position it saved, which never passes
// Pending's start).
func (a *Assembler) Add(line []byte, endOffset uint64, flags record.Flags, now time.Time, emit EmitFunc) error {
	var begins, ends bool
	matched := a.re.Match(line) != a.negate
	switch a.mode {
	case ModeStart:
		begins = matched
	case ModeContinue:
		begins = !matched
	case ModeEnd:
		ends = matched
	}
	if a.hook != nil {
		begins = a.hook.begins(line, begins)
	}

	if begins {
		a.split = false
		if a.lines > 0 {
			if err := a.emitPending(emit, 0); err != nil {
				return err
			}
		}
	} else if a.lines == 0 && a.mode != ModeEnd {
		// A continuation with nothing to continue: the entry's head was
		// emitted by a timeout or never read (the stream started inside it).
		a.split = true
	}
	if a.lines > 0 && (a.lines >= a.maxLines || len(a.buf)+1+len(line) > a.maxBytes) {
		a.cnt.Split++
		if err := a.emitPending(emit, record.FlagPartial); err != nil {
			return err
		}
		a.split = true
	}

	if a.lines == 0 {
		a.start = a.lastEnd
		a.first = now
		a.flags = 0
		if a.split {
			a.flags = record.FlagPartial
		}
	} else {
		a.buf = append(a.buf, '\n')
	}
	a.buf = append(a.buf, line...)
	a.lines++
	a.flags |= flags &^ record.FlagMeta
	a.end = endOffset
	a.lastEnd = endOffset

	if ends {
		a.split = false
		return a.emitPending(emit, 0)
	}
	return nil
}

// Flush emits the pending entry if its first line is at least FlushTimeout
// old at now. The caller calls it periodically and when the source is idle
// at EOF (NextFlush says when it is due). In end mode an entry flushed
// without its end line is flagged FlagPartial.
func (a *Assembler) Flush(now time.Time, emit EmitFunc) error {
	if a.lines == 0 || now.Sub(a.first) < a.timeout {
		return nil
	}
	a.cnt.Flushed++
	return a.flushPending(emit)
}

// FlushAll emits the pending entry whatever its age: at shutdown, before a
// Reset for rotation or truncation, at the end of a drained file.
func (a *Assembler) FlushAll(emit EmitFunc) error {
	if a.lines == 0 {
		return nil
	}
	return a.flushPending(emit)
}

func (a *Assembler) flushPending(emit EmitFunc) error {
	var extra record.Flags
	if a.mode == ModeEnd {
		extra = record.FlagPartial
		a.split = true
	}
	return a.emitPending(emit, extra)
}

// NextFlush returns when Flush will emit the pending entry; ok is false when
// nothing is pending.
func (a *Assembler) NextFlush() (at time.Time, ok bool) {
	if a.lines == 0 {
		return time.Time{}, false
	}
	return a.first.Add(a.timeout), true
}

// Pending describes the entry being assembled: start is the end offset of
// the line before its first line (where a re-read reproduces it) and end the
// end offset of its last line. ok is false when nothing is pending.
//
// A position saved for the source must not pass start: positions advance
// over emitted entries only. After a crash with an entry pending, reading
// again from start reassembles it whole.
func (a *Assembler) Pending() (start, end uint64, ok bool) {
	if a.lines == 0 {
		return 0, 0, false
	}
	return a.start, a.end, true
}

// Reset drops the pending entry without emitting it and sets the offset at
// which the next line starts: when the stream is (re)opened or seeks, and
// after an emit error. Call FlushAll first to keep the pending entry.
func (a *Assembler) Reset(offset uint64) {
	a.dropPending()
	a.lastEnd = offset
	a.split = false
	if a.hook != nil {
		a.hook.reset()
	}
}

// emitPending hands the pending entry to emit and clears it. The buffer is
// cleared before the call (entry still aliases it) so that the Assembler is
// consistent whatever emit returns.
func (a *Assembler) emitPending(emit EmitFunc, extra record.Flags) error {
	entry, end, flags := a.buf, a.end, a.flags|extra
	a.dropPending()
	a.cnt.Entries++
	return emit(entry, end, flags)
}

func (a *Assembler) dropPending() {
	if cap(a.buf) > shrinkCap {
		a.buf = nil
	} else {
		a.buf = a.buf[:0]
	}
	a.lines = 0
	a.flags = 0
}
