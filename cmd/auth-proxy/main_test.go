package main

import (
	"strings"
	"testing"
)

// A malformed --slices-built-marker names the flag, what it got and the
// form to use; "" is no wait.
func TestParseSlicesMarker(t *testing.T) {
	if m, err := parseSlicesMarker(""); err != nil || m.Name != "" {
		t.Fatalf("empty: %v %v", m, err)
	}
	if m, err := parseSlicesMarker("octopods-system/octopods-slices-built"); err != nil || m.Namespace != "octopods-system" || m.Name != "octopods-slices-built" {
		t.Fatalf("good value: %v %v", m, err)
	}
	for _, bad := range []string{"octopods-slices-built", "/x", "ns/"} {
		_, err := parseSlicesMarker(bad)
		if err == nil || !strings.Contains(err.Error(), "--slices-built-marker \""+bad+"\"") || !strings.Contains(err.Error(), "use NAMESPACE/NAME") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
