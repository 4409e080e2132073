package multiline

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// One benchmark op is one line, so ns/op is ns/line and allocs/op is
// allocations per line. The input is the preset's fixture, fed round and
// round (offsets keep growing).
func benchmarkPreset(b *testing.B, preset string, files ...string) {
	var lines []fline
	var size int
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range frame(data) {
			lines = append(lines, l)
			size += len(l.text) + 1
		}
	}
	a := mustNew(b, Config{Preset: preset})
	entries := 0
	emit := func([]byte, uint64, record.Flags) error { entries++; return nil }
	b.SetBytes(int64(size / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	var base uint64
	for i := 0; b.Loop(); i++ {
		k := i % len(lines)
		if k == 0 && i > 0 {
			base += uint64(size)
		}
		l := lines[k]
		if err := a.Add(l.text, base+l.end, 0, t0, emit); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/float64(max(entries, 1)), "lines/entry")
}

func BenchmarkAssemblerSIP(b *testing.B) {
	benchmarkPreset(b, PresetSIP, "opensips.log", "opensips_syslog.log")
}

func BenchmarkAssemblerJava(b *testing.B) { benchmarkPreset(b, PresetJava, "java.log") }

func BenchmarkAssemblerPython(b *testing.B) { benchmarkPreset(b, PresetPython, "python.log") }

func BenchmarkAssemblerGo(b *testing.B) { benchmarkPreset(b, PresetGo, "go_panic.log") }

func BenchmarkAssemblerMySQLSlow(b *testing.B) {
	benchmarkPreset(b, PresetMySQLSlow, "mariadb_slow.log", "mysql8_slow.log")
}

func BenchmarkAssemblerMySQLError(b *testing.B) {
	benchmarkPreset(b, PresetMySQLError, "mariadb_error.log", "mysql8_error.log")
}
