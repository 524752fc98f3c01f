package keyindex

import (
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is a key object's spec.rateLimit as published; zero: none.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// limited reports whether r limits anything.
func (r RateLimit) limited() bool { return r.PerSecond > 0 }

// bucket is one key object's token bucket in this replica. It is made on
// the first admission that needs it and dropped when idle (full), so only
// objects in use cost memory (about 100 bytes each).
type bucket struct {
	// limiter is x/time/rate's token bucket: it locks for a few ns.
	limiter *rate.Limiter
	// declared is the RateLimit it was made for, at share.
	declared RateLimit
	share    int32
}

// shareOf is r divided among replicas, the burst rounded up and never
// under one (a burst of 5 over 4 replicas is 2 each).
func shareOf(r RateLimit, replicas int32) (rate.Limit, int) {
	n := float64(max(replicas, 1))
	return rate.Limit(r.PerSecond / n), max(1, int(math.Ceil(float64(r.Burst)/n)))
}

// allow takes one token from the object's bucket, making it if needed,
// and says when to retry when there is none.
func (e *entryLimits) allow(r RateLimit, replicas int32, now time.Time) (bool, time.Duration) {
	b := e.bucket.Load()
	if b == nil || b.declared != r || b.share != replicas {
		limit, burst := shareOf(r, replicas)
		next := &bucket{limiter: rate.NewLimiter(limit, burst), declared: r, share: replicas}
		if b != nil {
			// A new limit keeps what was spent: a change never refills.
			tokens := min(b.limiter.TokensAt(now), float64(burst))
			next.limiter.AllowN(now, burst-int(math.Floor(tokens)))
		}
		if !e.bucket.CompareAndSwap(b, next) {
			next = e.bucket.Load()
		}
		b = next
	}
	if b.limiter.AllowN(now, 1) {
		return true, 0
	}
	e.limited.Add(1)
	tokens := b.limiter.TokensAt(now)
	wait := time.Duration((1 - tokens) / float64(b.limiter.Limit()) * float64(time.Second))
	return false, wait
}

// idle reports whether the bucket is full at now: forgetting it changes
// nothing.
func (b *bucket) idle(now time.Time) bool {
	return b.limiter.TokensAt(now) >= float64(b.limiter.Burst())
}

// DropIdleBuckets forgets the buckets of objects not limited right now,
// and returns how many buckets remain.
func (ix *Index) DropIdleBuckets(now time.Time) int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	kept := 0
	ix.each(func(s *entry) {
		if l := s.limits; l != nil {
			if b := l.bucket.Load(); b != nil {
				if b.idle(now) {
					l.bucket.CompareAndSwap(b, nil)
				} else {
					kept++
				}
			}
		}
	})
	return kept
}

// SetReplicas sets how many replicas share each object's rate limit: each
// enforces requestsPerSecond/replicas (at least 1).
func (ix *Index) SetReplicas(n int) {
	ix.replicas.Store(int32(max(n, 1)))
}

// Replicas is the current divisor of rate limits.
func (ix *Index) Replicas() int { return int(ix.replicas.Load()) }

// RateLimited returns, per workspace, the requests refused over a rate
// limit since the proxy started (workspaces with none are left out).
func (ix *Index) RateLimited() []WorkspaceCount {
	return ix.perWorkspace(func(s *entry) uint64 {
		if s.limits == nil {
			return 0
		}
		return s.limits.limited.Load()
	})
}

// limitCounters of an entry's limits.
type limitCounters struct {
	bucket  atomic.Pointer[bucket]
	limited atomic.Uint64
	// lastLimited is the latest refusal kept for status.lastRateLimited.
	lastLimited        atomic.Pointer[Sighting]
	lastLimitedFlushed atomic.Int64
}
