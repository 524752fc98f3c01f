package pacedqueue

import (
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/handler"
)

func newQueue(t *testing.T, depth int) (*Queue[int], *int) {
	t.Helper()
	backlog := new(int)
	q := New[int](priorityqueue.New[int](""), func(n int) { *backlog = n })
	q.depth = depth
	t.Cleanup(q.ShutDown)
	return q, backlog
}

func low() priorityqueue.AddOpts {
	p := handler.LowPriority
	return priorityqueue.AddOpts{Priority: &p}
}

// get takes the next request and marks it done.
func get(t *testing.T, q *Queue[int]) (int, int) {
	t.Helper()
	item, priority, shutdown := q.GetWithPriority()
	if shutdown {
		t.Fatal("the queue shut down")
	}
	q.Done(item)
	return item, priority
}

func TestInitialListWaitsInTheBacklogAndEveryRequestIsServedOnce(t *testing.T) {
	q, backlog := newQueue(t, 10)
	for i := range 1000 {
		q.AddWithOpts(low(), i, i) // an object and its owned object map to one request
	}
	if held := q.PriorityQueue.Len(); held != 10 {
		t.Fatalf("the queue holds %d requests, want its depth 10", held)
	}
	if *backlog != 990 || q.Len() != 1000 {
		t.Fatalf("backlog %d, Len %d; want 990 and 1000", *backlog, q.Len())
	}
	seen := map[int]bool{}
	for range 1000 {
		item, priority := get(t, q)
		if seen[item] {
			t.Fatalf("request %d served twice", item)
		}
		seen[item] = true
		if priority != handler.LowPriority {
			t.Fatalf("request %d served at priority %d, want the low priority it was added with", item, priority)
		}
		if held := q.PriorityQueue.Len(); held > 10 {
			t.Fatalf("the queue grew to %d requests, past its depth 10", held)
		}
	}
	if q.Len() != 0 || *backlog != 0 || q.backlog != nil || q.backlogged != nil {
		t.Fatalf("after the last request: Len %d, backlog %d, storage kept (%v, %v); want all gone", q.Len(), *backlog, q.backlog != nil, q.backlogged != nil)
	}
}

func TestAChangeIsServedBeforeTheBacklogAndOnlyOnce(t *testing.T) {
	q, _ := newQueue(t, 2)
	for i := range 10 {
		q.AddWithOpts(low(), i)
	}
	q.Add(7) // a change to a backlogged object
	var order []int
	for q.Len() > 0 {
		item, _ := get(t, q)
		order = append(order, item)
	}
	if len(order) != 10 {
		t.Fatalf("served %v: want each of the 10 requests once", order)
	}
	if order[0] != 7 {
		t.Fatalf("served %v: want the changed object's request first", order)
	}
}

func TestADelayedRequestKeepsTheBackloggedOne(t *testing.T) {
	q, _ := newQueue(t, 1)
	q.AddWithOpts(low(), 1, 2)
	q.AddAfter(2, time.Hour) // a requeue later must not postpone a reconcile now
	a, _ := get(t, q)
	b, _ := get(t, q)
	if a != 1 || b != 2 {
		t.Fatalf("served %d then %d, want 1 then 2", a, b)
	}
}

func TestBelowItsDepthTheQueueIsNotPaced(t *testing.T) {
	q, backlog := newQueue(t, 5)
	q.AddWithOpts(low(), 1, 2, 3)
	if held := q.PriorityQueue.Len(); held != 3 || *backlog != 0 {
		t.Fatalf("queue %d, backlog %d; want 3 and 0", held, *backlog)
	}
}
