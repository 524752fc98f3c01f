package authproxy

import (
	"unicode/utf8"
)

// Bounds on what a caller controls. Every such value is bounded here before
// it is stored, used as a map key or logged, on every interface: a gRPC
// caller can send megabytes in any string field, and an HTTP client up to
// maxHeaderBytes.
const (
	// maxLoggedPath truncates paths, URIs and user agents in the log.
	maxLoggedPath = 256
	// maxLoggedMethod: the longest registered method (UPDATEREDIRECTREF)
	// has 17 characters; anything longer is a probe, not a method.
	maxLoggedMethod = 20
	// invalidAddress stands for a client address that is not an IP address:
	// it is logged, recorded and budgeted as this word, never verbatim.
	invalidAddress = "invalid"
)

// truncate shortens s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func truncatePath(p string) string { return truncate(p, maxLoggedPath) }
