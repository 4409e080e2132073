package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a size in bytes. In YAML it is an integer (bytes) or a string
// with a unit: binary KiB, MiB, GiB, TiB (powers of 1024) or decimal KB, MB,
// GB, TB (powers of 1000), B for bytes. Units are case-insensitive, a space
// before the unit is allowed and a fraction is allowed when the result is a
// whole number of bytes ("1.5KiB" is 1536). There are no bit units: "Mb"
// is read as MB.
type ByteSize int64

// Binary and decimal size units.
const (
	B   ByteSize = 1
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
	KB  ByteSize = 1000
	MB  ByteSize = 1000 * KB
	GB  ByteSize = 1000 * MB
	TB  ByteSize = 1000 * GB
)

// ErrInvalidSize is wrapped by every size parse error.
var ErrInvalidSize = errors.New("invalid size")

var sizeUnits = map[string]ByteSize{
	"": B, "b": B,
	"kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
	"kb": KB, "mb": MB, "gb": GB, "tb": TB,
}

// maxSizeDigits bounds the number part so parsing outside input stays cheap.
const maxSizeDigits = 40

// ParseByteSize parses a size such as "64MiB", "4MB", "1.5 GiB" or "4096".
func ParseByteSize(s string) (ByteSize, error) {
	in := s
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[:i]
	fracPart := ""
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		fracPart = s[i+1 : j]
		if fracPart == "" {
			return 0, sizeErr(in, "no digits after the decimal point")
		}
		i = j
	}
	if intPart == "" {
		if strings.HasPrefix(s, "-") {
			return 0, sizeErr(in, "must not be negative")
		}
		return 0, sizeErr(in, "want a number with an optional unit, e.g. 512KiB, 64MiB, 1GiB or 4MB")
	}
	if len(intPart)+len(fracPart) > maxSizeDigits {
		return 0, sizeErr(in, "too many digits")
	}
	unit := strings.ToLower(strings.TrimLeft(s[i:], " "))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, sizeErr(in, fmt.Sprintf("unknown unit %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", strings.TrimLeft(s[i:], " ")))
	}

	// Exact arithmetic: value = digits * mult / 10^len(frac).
	n, _ := new(big.Int).SetString(intPart+fracPart, 10)
	n.Mul(n, big.NewInt(int64(mult)))
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(fracPart))), nil)
	q, r := new(big.Int).QuoRem(n, scale, new(big.Int))
	if r.Sign() != 0 {
		return 0, sizeErr(in, "not a whole number of bytes")
	}
	if !q.IsInt64() {
		return 0, sizeErr(in, "too large")
	}
	return ByteSize(q.Int64()), nil
}

func sizeErr(in, why string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidSize, in, why)
}

// String renders the size in the largest unit that divides it exactly,
// preferring binary units: 8MiB, 4MB, 1000B. ParseByteSize reads it back.
func (b ByteSize) String() string {
	if b == 0 {
		return "0B"
	}
	if b < 0 {
		return strconv.FormatInt(int64(b), 10) + "B"
	}
	for _, u := range []struct {
		n string
		v ByteSize
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"TB", TB}, {"GB", GB}, {"MB", MB}, {"KB", KB}} {
		if b%u.v == 0 {
			return strconv.FormatInt(int64(b/u.v), 10) + u.n
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Bytes returns the size as an int64 count of bytes.
func (b ByteSize) Bytes() int64 { return int64(b) }

// MarshalText renders the size as String does.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses a size as ParseByteSize does.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalYAML accepts a non-negative integer (bytes) or a size string.
func (b *ByteSize) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return fmt.Errorf("%w: want an integer or a string such as 64MiB", ErrInvalidSize)
	}
	switch node.ShortTag() {
	case "!!int":
		var v int64
		if err := node.Decode(&v); err != nil {
			return sizeErr(node.Value, "not an integer that fits in 64 bits")
		}
		if v < 0 {
			return sizeErr(node.Value, "must not be negative")
		}
		*b = ByteSize(v)
		return nil
	case "!!str":
		return b.UnmarshalText([]byte(node.Value))
	default:
		return sizeErr(node.Value, "want an integer or a string such as 64MiB")
	}
}

// addClamped is a + b, saturating at MaxInt64 (both non-negative).
func addClamped(a, b ByteSize) ByteSize {
	if a > ByteSize(math.MaxInt64)-b {
		return ByteSize(math.MaxInt64)
	}
	return a + b
}
