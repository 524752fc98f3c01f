package controllers

import (
	"testing"
	"time"
)

func TestCacheHealth(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	h := NewCacheHealth()
	h.now = func() time.Time { return now }
	const typ = "*v1alpha1.WorkspaceAPIKey"
	if h.Checker(nil) != nil {
		t.Fatal("not ready before any error")
	}
	// Errors every 30 s (the reflector's longest backoff): ready for the
	// grace period, then not.
	for range 4 {
		h.record(typ, now)
		now = now.Add(30 * time.Second)
	}
	if err := h.Checker(nil); err != nil {
		t.Fatalf("not ready after 1m30s of errors (grace 2m): %v", err)
	}
	h.record(typ, now)
	if err := h.Checker(nil); err == nil {
		t.Fatal("ready after 2m of errors")
	}
	// Once errors stop for a minute, ready again.
	now = now.Add(cacheQuietAfter + time.Second)
	if err := h.Checker(nil); err != nil {
		t.Fatalf("not ready a minute after the last error: %v", err)
	}
	// A single error later starts a new streak.
	h.record(typ, now)
	if err := h.Checker(nil); err != nil {
		t.Fatalf("one error: %v", err)
	}
}
