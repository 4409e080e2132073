package config

import (
	"errors"
	"math"
	"strconv"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseByteSize(t *testing.T) {
	tests := map[string]struct {
		in   string
		want ByteSize
		err  string
	}{
		"plain bytes":        {in: "4096", want: 4096},
		"B":                  {in: "10B", want: 10},
		"KiB":                {in: "512KiB", want: 512 * 1024},
		"MiB":                {in: "64MiB", want: 64 << 20},
		"GiB":                {in: "1GiB", want: 1 << 30},
		"TiB":                {in: "2TiB", want: 2 << 40},
		"MB is decimal":      {in: "4MB", want: 4_000_000},
		"KB is decimal":      {in: "1KB", want: 1000},
		"case-insensitive":   {in: "64mib", want: 64 << 20},
		"space before unit":  {in: " 8 MiB ", want: 8 << 20},
		"fraction":           {in: "1.5KiB", want: 1536},
		"fraction decimal":   {in: "0.5MB", want: 500_000},
		"zero":               {in: "0", want: 0},
		"max int64":          {in: strconv.FormatInt(math.MaxInt64, 10), want: math.MaxInt64},
		"empty":              {in: "", err: "want a number"},
		"no number":          {in: "MiB", err: "want a number"},
		"negative":           {in: "-1MiB", err: "must not be negative"},
		"plus sign":          {in: "+1MiB", err: "want a number"},
		"bare M":             {in: "64M", err: `unknown unit "M"`},
		"no bit units":       {in: "64Mb", want: 64_000_000},
		"trailing junk":      {in: "64MiBs", err: `unknown unit "MiBs"`},
		"exponent":           {in: "1e6", err: `unknown unit "e6"`},
		"dot without digits": {in: "1.MiB", err: "no digits after the decimal point"},
		"not whole bytes":    {in: "1.5", err: "not a whole number of bytes"},
		"overflow":           {in: "8EiB", err: `unknown unit`},
		"overflow TiB":       {in: "9000000TiB", err: "too large"},
		"too many digits":    {in: "1234567890123456789012345678901234567890123", err: "too many digits"},
		"underscore":         {in: "1_000", err: "unknown unit"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseByteSize(tc.in)
			if tc.err != "" {
				wantErr(t, err, tc.err)
				if !errors.Is(err, ErrInvalidSize) {
					t.Errorf("error does not wrap ErrInvalidSize: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	for in, want := range map[ByteSize]string{
		0: "0B", 1: "1B", 1000: "1KB", 1024: "1KiB", 8 * MiB: "8MiB", GiB: "1GiB",
		4 * MB: "4MB", 1536: "1536B", 1025: "1025B", 3 * TiB: "3TiB",
	} {
		if got := in.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int64(in), got, want)
		}
	}
}

func TestByteSizeYAML(t *testing.T) {
	tests := map[string]struct {
		doc  string
		want ByteSize
		err  string
	}{
		"int":        {doc: "v: 1048576", want: MiB},
		"hex int":    {doc: "v: 0x400", want: KiB},
		"string":     {doc: "v: 64MiB", want: 64 * MiB},
		"quoted":     {doc: `v: "1GiB"`, want: GiB},
		"negative":   {doc: "v: -5", err: "must not be negative"},
		"float":      {doc: "v: 1.5", err: "want an integer or a string"},
		"bool":       {doc: "v: true", err: "want an integer or a string"},
		"list":       {doc: "v: [1]", err: "want an integer or a string"},
		"bad string": {doc: "v: lots", err: `invalid size "lots"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out struct{ V ByteSize }
			err := yaml.Unmarshal([]byte(tc.doc), &out)
			if tc.err != "" {
				wantErr(t, err, tc.err)
				return
			}
			if err != nil || out.V != tc.want {
				t.Fatalf("got %d, %v; want %d", out.V, err, tc.want)
			}
		})
	}
}

func TestByteSizeText(t *testing.T) {
	var b ByteSize
	if err := b.UnmarshalText([]byte("2MiB")); err != nil || b != 2*MiB {
		t.Fatalf("UnmarshalText = %d, %v", b, err)
	}
	if err := b.UnmarshalText([]byte("2 furlongs")); err == nil {
		t.Fatal("want an error")
	}
	if b != 2*MiB {
		t.Fatalf("a failed UnmarshalText changed the value to %d", b)
	}
	txt, _ := (4 * MB).MarshalText()
	if string(txt) != "4MB" {
		t.Fatalf("MarshalText = %q", txt)
	}
}

// Parsing outside input never panics, never yields a negative size, and
// whatever it accepts renders to a string that parses back to the same value.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"0", "4096", "64MiB", "1.5 GiB", "4MB", "-1", "1e6", "9223372036854775807", "8EiB", "0.0000001KB", " 7 kib "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSize) {
				t.Fatalf("error does not wrap ErrInvalidSize: %v", err)
			}
			return
		}
		if b < 0 {
			t.Fatalf("ParseByteSize(%q) = %d < 0", s, b)
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Fatalf("round trip of %q: %d -> %q -> %d, %v", s, b, b.String(), back, err)
		}
	})
}
