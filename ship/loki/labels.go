package loki

import (
	"strings"
	"unicode/utf8"
)

// SanitizeLabelName maps name onto Loki's label-name grammar
// [a-zA-Z_][a-zA-Z0-9_]*: every other character (one per rune; one per byte
// of invalid UTF-8) becomes '_', a leading digit gets a '_' prefix, and an
// empty name becomes "_". So com.docker.compose.service becomes
// com_docker_compose_service. A valid name is returned unchanged without
// allocating.
//
// It does not strip the reserved "__" prefix: whether such a label is
// dropped or renamed is the caller's policy.
func SanitizeLabelName(name string) string {
	if validLabelName(name) {
		return name
	}
	var b strings.Builder
	b.Grow(len(name) + 1)
	if name == "" || isDigit(name[0]) {
		b.WriteByte('_')
	}
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			if isNameChar(c) {
				b.WriteByte(c)
			} else {
				b.WriteByte('_')
			}
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(name[i:])
		b.WriteByte('_')
		i += size
	}
	return b.String()
}

func validLabelName(name string) bool {
	if name == "" || isDigit(name[0]) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isNameChar(name[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isNameChar(c byte) bool {
	return c == '_' || isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}
