package config

import (
	"fmt"
	"path/filepath"
	"unicode/utf8"
)

// checkGlob reports whether p is valid filepath.Match syntax. Match itself
// cannot be used as the check: it stops at the first mismatch and so accepts
// "x*[z" when tried against any one name. "**" is valid syntax (two stars)
// and left to the file source to interpret.
func checkGlob(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %s", filepath.ErrBadPattern, why) }
	for i := 0; i < len(p); {
		switch p[i] {
		case '\\':
			if i+1 >= len(p) {
				return bad("trailing backslash")
			}
			i += 2
		case '[':
			i++
			if i < len(p) && p[i] == '^' {
				i++
			}
			for n := 0; ; n++ {
				if i >= len(p) {
					return bad("unclosed [")
				}
				if p[i] == ']' && n > 0 {
					i++
					break
				}
				next, err := globRangeChar(p, i)
				if err != nil {
					return bad(err.Error())
				}
				i = next
				if i < len(p) && p[i] == '-' {
					if i, err = globRangeChar(p, i+1); err != nil {
						return bad(err.Error())
					}
				}
			}
		default:
			i++
		}
	}
	return nil
}

// globRangeChar checks one character of a [...] class at i and returns the
// index after it.
func globRangeChar(p string, i int) (int, error) {
	if i >= len(p) {
		return 0, fmt.Errorf("unclosed [")
	}
	switch p[i] {
	case '-', ']':
		return 0, fmt.Errorf("unexpected %q in character class", p[i])
	case '\\':
		if i+1 >= len(p) {
			return 0, fmt.Errorf("trailing backslash")
		}
		i++
	}
	r, n := utf8.DecodeRuneInString(p[i:])
	if r == utf8.RuneError && n == 1 {
		return 0, fmt.Errorf("invalid UTF-8 in character class")
	}
	return i + n, nil
}
