package file

import (
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

const doubleStar = "**"

// hasMeta reports whether a path element uses glob syntax.
func hasMeta(el string) bool { return strings.ContainsAny(el, `*?[\`) }

func splitPath(p string) []string {
	return strings.Split(filepath.ToSlash(filepath.Clean(p)), "/")
}

// staticPrefix is the directory part of pattern before its first glob
// element: where matches can start and what is worth watching.
func staticPrefix(pattern string) string {
	els := splitPath(pattern)
	i := 0
	for i < len(els) && !hasMeta(els[i]) {
		i++
	}
	if i == len(els) {
		// No glob at all: the pattern names one file; its directory is static.
		return filepath.Dir(filepath.Clean(pattern))
	}
	prefix := strings.Join(els[:i], "/")
	switch {
	case prefix == "" && strings.HasPrefix(filepath.ToSlash(pattern), "/"):
		return "/"
	case prefix == "":
		return "."
	}
	return filepath.FromSlash(prefix)
}

// matchPath reports whether path matches pattern: filepath.Match per element,
// with "**" matching zero or more whole elements.
func matchPath(pattern, path string) bool {
	return matchElems(compactStars(splitPath(pattern)), splitPath(path))
}

// compactStars folds runs of "**" into one, so matching stays polynomial.
func compactStars(els []string) []string {
	out := els[:0:0]
	for _, el := range els {
		if el == doubleStar && len(out) > 0 && out[len(out)-1] == doubleStar {
			continue
		}
		out = append(out, el)
	}
	return out
}

func matchElems(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == doubleStar {
			rest := pat[1:]
			for i := 0; i <= len(name); i++ {
				if matchElems(rest, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := filepath.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// expandPattern lists the paths matching pattern, sorted. Directories reached
// through symbolic links are not descended by "**" (no loops); a symbolic
// link to a file is listed like the file.
func expandPattern(pattern string) []string {
	if !slices.Contains(splitPath(pattern), doubleStar) {
		m, _ := filepath.Glob(pattern) // the only error is ErrBadPattern, refused by Validate
		return m
	}
	var out []string
	_ = filepath.WalkDir(staticPrefix(pattern), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// An unreadable directory is skipped, not fatal: the next scan retries.
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() && matchPath(pattern, p) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// excluded reports whether any exclude pattern matches path or its base name.
func excluded(patterns []string, path string) bool {
	base := filepath.Base(path)
	for _, p := range patterns {
		if matchPath(p, path) {
			return true
		}
		if ok, _ := filepath.Match(p, base); ok {
			return true
		}
	}
	return false
}
