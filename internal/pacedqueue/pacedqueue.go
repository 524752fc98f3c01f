// Package pacedqueue keeps a controller's work queue small while it works
// through a restart: the requests that say "nothing changed" (the initial
// list, resyncs) wait in a backlog of their own and enter the queue as it
// drains, at most Depth of them at a time.
//
// Why: controller-runtime's priority queue keeps, for every request it
// holds, an entry in two maps (its items, and its metrics' add times), and
// a Go map never gives back the room it grew to. A manager restarted over
// 100,000 keys queued every key at once, in two controllers, and kept about
// 0.4 KiB a workspace of empty map room for as long as it ran. The backlog
// is a slice and a set that are dropped whenever it empties.
//
// Requests that say something changed (any other priority, a delay, a rate
// limit) go to the queue at once, ahead of the backlog, as they would
// ahead of low-priority requests in the queue itself. One due now drops its
// object's backlogged request, as the queue would merge the two; a delayed
// one leaves it, as the queue would keep the earlier time.
package pacedqueue

import (
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/handler"
)

// Depth is how many backlogged requests the queue holds at most: enough
// that a worker never waits on the backlog (a Get tops the queue up), few
// enough that the queue's maps stay a few kilobytes.
const Depth = 256

// Queue is a priority queue whose low-priority requests are paced.
type Queue[T comparable] struct {
	priorityqueue.PriorityQueue[T]
	// depth is Depth, or less in tests.
	depth int
	// report, if set, is told the backlog's length whenever it changes.
	report func(int)

	mu sync.Mutex
	// backlog holds requests in arrival order; those no longer in
	// backlogged (queued meanwhile) are skipped.
	backlog    []T
	backlogged map[T]struct{}
	// fed are the low-priority requests this Queue put in the queue and
	// no worker took yet (at most about its depth): another such request
	// merges with its queued one instead of waiting in the backlog.
	fed map[T]struct{}
}

// New paces the low-priority requests of queue; report, if not nil, is
// told the backlog's length (a gauge) whenever it changes.
func New[T comparable](queue priorityqueue.PriorityQueue[T], report func(backlog int)) *Queue[T] {
	return &Queue[T]{PriorityQueue: queue, depth: Depth, report: report, fed: map[T]struct{}{}}
}

// AddWithOpts queues items, or backlogs them if they are low-priority
// requests and the queue already holds its depth.
func (q *Queue[T]) AddWithOpts(o priorityqueue.AddOpts, items ...T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !paced(o) {
		if o.After <= 0 && !o.RateLimited {
			for _, item := range items {
				delete(q.backlogged, item) // this request covers it
			}
		}
		q.PriorityQueue.AddWithOpts(o, items...)
		return
	}
	for _, item := range items {
		if _, waiting := q.backlogged[item]; waiting {
			continue
		}
		if _, queued := q.fed[item]; queued || len(q.backlogged) == 0 && q.PriorityQueue.Len() < q.depth {
			q.feedLocked(item)
			continue
		}
		if q.backlogged == nil {
			q.backlogged = map[T]struct{}{}
		}
		q.backlogged[item] = struct{}{}
		q.backlog = append(q.backlog, item)
	}
	q.reportLocked()
}

// paced says whether a request only says "nothing changed".
func paced(o priorityqueue.AddOpts) bool {
	return o.Priority != nil && *o.Priority == handler.LowPriority && o.After <= 0 && !o.RateLimited
}

// Add queues item now. Like AddAfter and AddRateLimited, it goes through
// AddWithOpts, so that a change drops its backlogged request.
func (q *Queue[T]) Add(item T) { q.AddWithOpts(priorityqueue.AddOpts{}, item) }

// AddAfter queues item once after has passed.
func (q *Queue[T]) AddAfter(item T, after time.Duration) {
	q.AddWithOpts(priorityqueue.AddOpts{After: after}, item)
}

// AddRateLimited queues item once the rate limiter allows.
func (q *Queue[T]) AddRateLimited(item T) {
	q.AddWithOpts(priorityqueue.AddOpts{RateLimited: true}, item)
}

// Get tops the queue up from the backlog, then waits for a request.
func (q *Queue[T]) Get() (item T, shutdown bool) {
	q.topUp()
	item, shutdown = q.PriorityQueue.Get()
	q.taken(item)
	return item, shutdown
}

// GetWithPriority tops the queue up from the backlog, then waits for a
// request.
func (q *Queue[T]) GetWithPriority() (item T, priority int, shutdown bool) {
	q.topUp()
	item, priority, shutdown = q.PriorityQueue.GetWithPriority()
	q.taken(item)
	return item, priority, shutdown
}

// Len counts the backlog with the queue's ready requests.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.PriorityQueue.Len() + len(q.backlogged)
}

// topUp moves backlogged requests to the queue until it holds its depth,
// and drops the backlog's storage once it is empty.
func (q *Queue[T]) topUp() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.backlog) == 0 {
		return
	}
	room := q.depth - q.PriorityQueue.Len()
	feed := make([]T, 0, min(max(room, 0), len(q.backlog)))
	next := 0
	for ; next < len(q.backlog) && len(feed) < room; next++ {
		item := q.backlog[next]
		if _, waiting := q.backlogged[item]; !waiting {
			continue // queued meanwhile by a change
		}
		delete(q.backlogged, item)
		feed = append(feed, item)
	}
	q.feedLocked(feed...)
	clear(q.backlog[:next]) // nothing kept alive by the slice's head
	q.backlog = q.backlog[next:]
	if len(q.backlogged) == 0 {
		q.backlog, q.backlogged = nil, nil
	}
	q.reportLocked()
}

// lowPriority is handler.LowPriority, for AddOpts (never written).
var lowPriority = handler.LowPriority

// feedLocked puts low-priority requests in the queue.
func (q *Queue[T]) feedLocked(items ...T) {
	if len(items) == 0 {
		return
	}
	for _, item := range items {
		q.fed[item] = struct{}{}
	}
	q.PriorityQueue.AddWithOpts(priorityqueue.AddOpts{Priority: &lowPriority}, items...)
}

// taken forgets a request a worker took: another one for it is new work.
func (q *Queue[T]) taken(item T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.fed, item)
}

func (q *Queue[T]) reportLocked() {
	if q.report != nil {
		q.report(len(q.backlogged))
	}
}
