package logsafe

import (
	"testing"

	"github.com/go-logr/logr/funcr"
)

func TestCapped(t *testing.T) {
	var lines []string
	l := Capped(funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: 10}))
	l.V(1).Info("decision")
	l.V(MaxVerbosity).Info("detail")
	l.V(8).Info("Response Body", "body", "secret")
	l.WithName("x").WithValues("a", 1).V(9).Info("Request Body")
	if len(lines) != 2 {
		t.Fatalf("logged %v", lines)
	}
}
