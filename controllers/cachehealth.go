package controllers

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// A list or watch of the manager's cache that keeps failing leaves every
// key of that kind unreconciled while the manager looks healthy. These
// bound how long a failing streak may last before readiness says so, and
// how quiet a streak must be to count as over (the reflector retries with a
// backoff of at most 30 s, so a failing cache reports at least that often).
const (
	cacheFailureGrace = 2 * time.Minute
	cacheQuietAfter   = time.Minute
)

var (
	cacheErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "octopods_operator_cache_list_watch_errors_total",
		Help: "Failed lists and watches of the manager's cache, by the type they read.",
	}, []string{"type"})
	cacheFailing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "octopods_operator_cache_failing",
		Help: "1 while the manager's cache of this type has failed to list or watch for longer than 2 minutes (readyz fails meanwhile), else 0.",
	}, []string{"type"})
)

func init() { metrics.Registry.MustRegister(cacheErrors, cacheFailing) }

// CacheHealth follows the list and watch errors of the manager's cache
// (its WatchErrorHandler) and fails readiness while one keeps failing.
type CacheHealth struct {
	mu      sync.Mutex
	streaks map[string]*failureStreak
	now     func() time.Time
}

type failureStreak struct{ first, last time.Time }

// NewCacheHealth is ready for the manager's cache options.
func NewCacheHealth() *CacheHealth {
	return &CacheHealth{streaks: map[string]*failureStreak{}, now: time.Now}
}

// WatchErrorHandler records err, then logs it as client-go would.
func (h *CacheHealth) WatchErrorHandler(ctx context.Context, r *toolscache.Reflector, err error) {
	h.record(r.TypeDescription(), h.now())
	toolscache.DefaultWatchErrorHandler(ctx, r, err)
}

func (h *CacheHealth) record(typ string, now time.Time) {
	cacheErrors.WithLabelValues(typ).Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.streaks[typ]
	if s == nil || now.Sub(s.last) > cacheQuietAfter {
		s = &failureStreak{first: now}
		h.streaks[typ] = s
	}
	s.last = now
}

// failing names the types whose errors have gone on past cacheFailureGrace.
func (h *CacheHealth) failing() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	var out []string
	for typ, s := range h.streaks {
		bad := now.Sub(s.last) <= cacheQuietAfter && s.last.Sub(s.first) >= cacheFailureGrace
		if bad {
			out = append(out, typ)
			cacheFailing.WithLabelValues(typ).Set(1)
		} else {
			cacheFailing.WithLabelValues(typ).Set(0)
		}
	}
	return out
}

// Checker is a readyz check: it fails while a cache keeps failing.
func (h *CacheHealth) Checker(*http.Request) error {
	if f := h.failing(); len(f) > 0 {
		return fmt.Errorf("the cache cannot list or watch %v: keys of that kind are not reconciled; see the manager's log", f)
	}
	return nil
}
