package packedcache

import (
	"sync"
	"sync/atomic"

	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/buffer"
)

// relay hands an event handler the notifications of a packed informer
// from a buffer of its own, which shrinks back once drained.
//
// Why: client-go buffers each handler's notifications in a ring that only
// grows. A start lists every object at once, faster than a handler that
// decodes each one keeps up with, so each handler's ring grew to about
// 100,000 slots at 100,000 keys and kept them: 0.2 to 0.3 KiB a workspace
// over the manager's dozen handlers. The relay takes each notification at
// once (client-go's ring stays at its first size), and its own ring
// (k8s.io/utils/buffer.Ring) gives its room back when drained. The order of
// one handler's notifications is kept.
type relay struct {
	handler toolscache.ResourceEventHandler
	stopped <-chan struct{} // the informer stopped

	mu      sync.Mutex
	pending *buffer.Ring[notification]
	wake    chan struct{}
	// initial counts the initial list's notifications not yet handed on;
	// initialDone is poked when it drops to zero.
	initial     atomic.Int64
	initialDone chan struct{}
	removed     chan struct{}
	removeOnce  sync.Once
}

// relayRingSize is the relay's ring when at rest (notifications).
const relayRingSize = 64

type notificationKind uint8

const (
	added notificationKind = iota
	updated
	deleted
)

type notification struct {
	kind     notificationKind
	initial  bool
	old, obj any
}

func newRelay(h toolscache.ResourceEventHandler, stopped <-chan struct{}) *relay {
	r := &relay{
		handler:     h,
		stopped:     stopped,
		pending:     buffer.NewRing[notification](buffer.RingOptions{InitialSize: relayRingSize, NormalSize: relayRingSize}),
		wake:        make(chan struct{}, 1),
		initialDone: make(chan struct{}, 1),
		removed:     make(chan struct{}),
	}
	go r.run()
	return r
}

func (r *relay) push(n notification) {
	if n.initial {
		r.initial.Add(1)
	}
	r.mu.Lock()
	r.pending.WriteOne(n)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *relay) OnAdd(obj any, isInInitialList bool) {
	r.push(notification{kind: added, obj: obj, initial: isInInitialList})
}
func (r *relay) OnUpdate(old, obj any) { r.push(notification{kind: updated, old: old, obj: obj}) }
func (r *relay) OnDelete(obj any)      { r.push(notification{kind: deleted, obj: obj}) }

func (r *relay) run() {
	for {
		select {
		case <-r.stopped:
			return
		case <-r.removed:
			return
		case <-r.wake:
		}
		for {
			r.mu.Lock()
			n, ok := r.pending.ReadOne()
			r.mu.Unlock()
			if !ok {
				break
			}
			switch n.kind {
			case added:
				r.handler.OnAdd(n.obj, n.initial)
			case updated:
				r.handler.OnUpdate(n.old, n.obj)
			case deleted:
				r.handler.OnDelete(n.obj)
			}
			if n.initial && r.initial.Add(-1) == 0 {
				select {
				case r.initialDone <- struct{}{}:
				default:
				}
			}
		}
	}
}

func (r *relay) remove() { r.removeOnce.Do(func() { close(r.removed) }) }

// registration is client-go's registration of a relay: synced once
// client-go handed the relay the initial list and the relay handed it on.
type registration struct {
	toolscache.ResourceEventHandlerRegistration
	relay *relay

	checkerOnce sync.Once
	synced      chan struct{}
}

func (g *registration) HasSynced() bool {
	return g.ResourceEventHandlerRegistration.HasSynced() && g.relay.initial.Load() == 0
}

func (g *registration) HasSyncedChecker() toolscache.DoneChecker {
	g.checkerOnce.Do(func() {
		g.synced = make(chan struct{})
		inner := g.ResourceEventHandlerRegistration.HasSyncedChecker()
		go func() {
			select {
			case <-inner.Done():
			case <-g.relay.removed:
				return
			}
			for g.relay.initial.Load() != 0 {
				select {
				case <-g.relay.initialDone:
				case <-g.relay.removed:
					return
				}
			}
			close(g.synced)
		}()
	})
	return syncedChecker{name: g.ResourceEventHandlerRegistration.HasSyncedChecker().Name(), done: g.synced}
}

type syncedChecker struct {
	name string
	done chan struct{}
}

func (c syncedChecker) Name() string          { return c.name }
func (c syncedChecker) Done() <-chan struct{} { return c.done }
