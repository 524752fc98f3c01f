package packedcache

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	fcache "k8s.io/client-go/tools/cache/testing"
)

// TestRelayedHandlerSyncsAfterItsInitialListAndGivesItsRoomBack: a handler
// slower than the initial list is in sync only once it has handled the
// whole list, sees the notifications in order, and its buffer is back to
// its size at rest once drained.
func TestRelayedHandlerSyncsAfterItsInitialListAndGivesItsRoomBack(t *testing.T) {
	const n = 1000
	source := fcache.NewFakeControllerSource()
	for i := range n {
		source.Add(secret(fmt.Sprintf("s-%05d", i), "x"))
	}
	inf := NewInformerFunc(&corev1.Secret{})(source, &corev1.Secret{}, 0, toolscache.Indexers{})
	release, releaseUpdates := make(chan struct{}), make(chan struct{})
	rec := &recorder{}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { <-release; rec.record("add", obj) },
		UpdateFunc: func(_, obj any) { <-releaseUpdates; rec.record("update", obj) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go inf.RunWithContext(ctx)
	r := reg.(*registration).relay

	// client-go hands the whole list over at once: the relay holds it.
	for deadline := time.Now().Add(time.Minute); r.initial.Load() < n-1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the relay took %d of %d notifications while its handler was blocked (informer synced %v, stored %d)", r.initial.Load(), n, inf.HasSynced(), len(inf.GetStore().ListKeys()))
		}
	}
	// client-go's own view: the whole list handed over, to the relay.
	for deadline := time.Now().Add(time.Minute); !reg.(*registration).ResourceEventHandlerRegistration.HasSynced(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("client-go never handed the relay the whole list")
		}
	}
	if reg.HasSynced() {
		t.Fatal("HasSynced before the handler handled the initial list")
	}
	checker := reg.HasSyncedChecker()
	select {
	case <-checker.Done():
		t.Fatal("HasSyncedChecker done before the handler handled the initial list")
	default:
	}
	close(release)
	select {
	case <-checker.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("HasSyncedChecker not done after the initial list was handled")
	}
	if !reg.HasSynced() {
		t.Fatal("HasSynced false after the initial list was handled")
	}
	seen := rec.seen()
	if len(seen) != n {
		t.Fatalf("the handler saw %d notifications, want %d", len(seen), n)
	}
	once := map[string]bool{}
	for _, s := range seen {
		once[s] = true
	}
	if len(once) != n {
		t.Fatalf("the handler saw %d objects of %d", len(once), n)
	}
	r.mu.Lock()
	capacity := r.pending.Cap()
	r.mu.Unlock()
	if capacity != relayRingSize {
		t.Fatalf("the drained relay keeps room for %d notifications, want %d", capacity, relayRingSize)
	}

	// Updates held back by a slow handler come out in their order.
	const updates = 300
	for i := range updates {
		source.Modify(secret(fmt.Sprintf("s-%05d", i), "y"))
	}
	close(releaseUpdates)
	for deadline := time.Now().Add(10 * time.Second); len(rec.seen()) < n+updates; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("relayed %d of %d updates", len(rec.seen())-n, updates)
		}
	}
	for i, s := range rec.seen()[n:] {
		if want := fmt.Sprintf("update s-%05d", i); s != want {
			t.Fatalf("update %d is %q, want %q: order lost", i, s, want)
		}
	}

	cancel()
	select {
	case <-inf.(*informer).stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the informer did not stop")
	}
}
