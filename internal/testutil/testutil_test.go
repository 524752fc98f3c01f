package testutil

import (
	"runtime"
	"testing"
	"time"
)

// Every worker stopping (as a failed assertion stops it) must not hang.
func TestParallelReturnsWhenEveryWorkerStops(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Parallel(100, 4, func(int) { runtime.Goexit() })
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Parallel hangs once its workers have stopped")
	}
}
