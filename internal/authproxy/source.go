package authproxy

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/keyslice"
	"github.com/octopods/octopods-operator/internal/memlimit"
)

// probeInterval is how often the API server is asked whether it is still
// there, so a quiet cluster does not look stale and a lost one does.
const probeInterval = 5 * time.Second

// Source keeps the index in step with the KeyDigestSlices the operator
// writes: per namespace (or once for all namespaces), a paginated list and
// then a watch from its resourceVersion, relisting when the watch falls too
// far behind. A slice holds up to a few hundred key objects' digests, so the
// first sync of 100k keys lists a few hundred objects, not 100k. Each page
// is turned into index entries at once; of a slice only the names of its
// key objects are kept (to drop those a later version of it no longer
// holds), never the slice.
type Source struct {
	index  *keyindex.Index
	client SlicesClient
	log    *slog.Logger
	scopes []*feed
	// started is when Run began: a scope never confirmed is as stale as the
	// proxy is old, never fresh.
	started time.Time
	// afterFirstSync puts the soft memory limit back, once, when every
	// scope has synced (Run lifts it for the first sync).
	afterFirstSync sync.Once
	restoreLimit   func()
	// PageSize is how many slices each list request asks for.
	PageSize int64
	// Marker, when set, is the KeyDigestSlice the manager writes once it
	// has built every namespace's slices: the proxy is not synced before it
	// exists (an upgrade from a release without slices).
	Marker types.NamespacedName
	marked atomic.Bool
}

// feed is one namespace (or "" for all) with its own list/watch.
type feed struct {
	namespace string
	synced    atomic.Bool
	// lastConfirmed is when this scope was last known to match the API
	// server (unix nanoseconds); 0 before its first list.
	lastConfirmed atomic.Int64
	// watching: a watch is open and has not failed. Only then does a
	// reachable API server mean the view is current (the probe).
	watching atomic.Bool
	errors   *logLimiter
	// held are the key objects each slice (namespace/name) holds, as last
	// seen; only the follow goroutine touches it.
	held map[types.NamespacedName][]slicedRef
}

// slicedRef is one key object of a slice, as the index names it.
type slicedRef struct{ keyType, name string }

// Paging and retry of the list/watch loop.
const (
	// DefaultListPageSize keeps the first sync's peak memory within the
	// Deployment's budget: a page of about 10,000 keys, a few MiB of JSON.
	DefaultListPageSize = 10_000 / keyslice.KeysPerSlice
	minRetryDelay       = 250 * time.Millisecond
	maxRetryDelay       = 30 * time.Second
	watchTimeout        = 5 * time.Minute
	watchJitterMax      = 5 * time.Minute
	// A watch that ends sooner than this with no event was refused in
	// effect (a proxy or API server closing it at once): back off, or the
	// loop would open watches as fast as the network allows.
	minHealthyWatch = time.Second
	// errorLogInterval bounds list/watch error logs to one per scope per
	// interval, with the count of those left out.
	errorLogInterval = 30 * time.Second
)

// NewSource follows the slices of the given namespaces (none: all).
func NewSource(ix *keyindex.Index, client SlicesClient, namespaces []string, log *slog.Logger) *Source {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	s := &Source{index: ix, client: client, log: log, started: time.Now(), PageSize: DefaultListPageSize}
	for _, ns := range namespaces {
		s.scopes = append(s.scopes, &feed{namespace: ns, errors: &logLimiter{interval: errorLogInterval}})
	}
	return s
}

// Run watches until ctx ends.
func (s *Source) Run(ctx context.Context) {
	s.started = time.Now()
	s.restoreLimit = memlimit.Lift()
	// Marked before any list can end: a first sync that ended earlier
	// would find the proxy not synced yet, and leave the limit lifted.
	noMarker := s.Marker.Name == ""
	s.marked.Store(noMarker)
	for _, sc := range s.scopes {
		go s.follow(ctx, sc)
	}
	go s.probe(ctx)
	if !noMarker {
		go s.awaitMarker(ctx)
	}
}

// awaitMarker asks for the marker every markerInterval until it exists.
func (s *Source) awaitMarker(ctx context.Context) {
	errs := &logLimiter{interval: errorLogInterval}
	for ctx.Err() == nil {
		err := s.client.Get(ctx, s.Marker)
		if err == nil {
			s.marked.Store(true)
			s.endFirstSync()
			return
		}
		if suppressed, ok := errs.allow(time.Now()); ok {
			s.log.Info("waiting for the manager to build the key digest slices", "marker", s.Marker.String(), "error", err.Error(), "suppressed", suppressed)
		}
		select {
		case <-ctx.Done():
		case <-time.After(markerInterval):
		}
	}
}

// markerInterval is how often a proxy waiting for the slices asks again.
const markerInterval = time.Second

// follow lists, then watches, forever: a closed watch resumes from the last
// resourceVersion seen; an expired one (410 Gone) or one asked for a version
// the server has not reached ("too large resource version") relists.
func (s *Source) follow(ctx context.Context, sc *feed) {
	delay := minRetryDelay
	retry := func(what string, err error) {
		s.logError(sc, what, err)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetryDelay)
	}
	for ctx.Err() == nil {
		rv, err := s.list(ctx, sc)
		if err != nil {
			retry("list", err)
			continue
		}
		sc.synced.Store(true)
		sc.confirm()
		s.endFirstSync()
		delay = minRetryDelay
		for ctx.Err() == nil {
			var events int
			began := time.Now()
			rv, events, err = s.watch(ctx, sc, rv)
			if mustRelist(err) {
				s.logError(sc, "watch (relisting)", err)
				break
			}
			switch {
			case err != nil:
				retry("watch", err)
			case events == 0 && time.Since(began) < minHealthyWatch:
				retry("watch", errWatchClosedAtOnce)
			default:
				delay = minRetryDelay // the watch ran and ended normally
			}
		}
	}
}

// causeClientWatchDecoding is client-go's cause for an event it could not
// decode: the watch would replay it from the same resourceVersion forever.
const causeClientWatchDecoding metav1.CauseType = "ClientWatchDecoding"

// errWatchClosedAtOnce names a watch that ended at once without an event.
var errWatchClosedAtOnce = apierrors.NewServiceUnavailable("the watch ended at once with no event")

// mustRelist: the watch cannot resume from its resourceVersion, or an
// event at it cannot be decoded (a list decodes objects one by one).
func mustRelist(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) ||
		apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge) ||
		apierrors.HasStatusCause(err, causeClientWatchDecoding)
}

// list loads every slice of the scope, a page at a time, and removes
// from the index what the API server no longer has.
func (s *Source) list(ctx context.Context, sc *feed) (string, error) {
	relist := s.index.BeginSync()
	held := map[types.NamespacedName][]slicedRef{}
	var rv string
	err := listPages(ctx, s.client, sc.namespace, metav1.ListOptions{Limit: s.PageSize, LabelSelector: slicesSelector}, func(page *octopodsv1alpha1.KeyDigestSliceList) error {
		now := time.Now()
		for i := range page.Items {
			slice := &page.Items[i]
			if keyslice.IsWithdrawal(slice) {
				relist.SetWithdrawn(slice.Namespace, keyslice.Withdrawn(slice))
				continue
			}
			held[types.NamespacedName{Namespace: slice.Namespace, Name: slice.Name}] = refsOf(slice)
			for j := range slice.Keys {
				relist.Set(keyslice.Keys(slice.Namespace, &slice.Keys[j], now))
			}
		}
		rv = page.ResourceVersion
		return nil
	})
	if err != nil {
		return "", err
	}
	for _, kind := range octopodsv1alpha1.KeyKinds {
		relist.End(sc.namespace, kind.KeyType)
	}
	relist.EndWithdrawn(sc.namespace)
	sc.held = held
	return rv, nil
}

// slicesSelector selects the slices of keys and the withdrawal slices, not
// the marker: one list and one watch, so a digest withdrawn ahead of its
// slice of keys and that slice rewritten without it arrive in the order
// they were written, and the withdrawal is never dropped before the
// rewrite is applied.
var slicesSelector = octopodsv1alpha1.SliceLabel + " in (" + octopodsv1alpha1.SliceRoleKeys + "," + octopodsv1alpha1.SliceRoleWithdrawn + ")"

func refsOf(slice *octopodsv1alpha1.KeyDigestSlice) []slicedRef {
	refs := make([]slicedRef, len(slice.Keys))
	for i := range slice.Keys {
		kind, _ := octopodsv1alpha1.KeyKindOf(slice.Keys[i].Kind)
		refs[i] = slicedRef{kind.KeyType, slice.Keys[i].Name}
	}
	return refs
}

// apply puts a slice's entries in the index and forgets the key objects a
// previous version of it held that it no longer does (nil: it was deleted).
// The manager never moves a key object from one slice to another, so what
// leaves a slice is gone.
func (s *Source) apply(sc *feed, name types.NamespacedName, slice *octopodsv1alpha1.KeyDigestSlice) {
	var refs []slicedRef
	if slice != nil {
		refs = refsOf(slice)
		now := time.Now()
		for i := range slice.Keys {
			s.index.Set(keyslice.Keys(slice.Namespace, &slice.Keys[i], now))
		}
	}
	if old := sc.held[name]; len(old) > 0 {
		kept := make(map[slicedRef]bool, len(refs))
		for _, r := range refs {
			kept[r] = true
		}
		for _, r := range old {
			if !kept[r] {
				s.index.Delete(name.Namespace, r.keyType, r.name)
			}
		}
	}
	if slice == nil {
		delete(sc.held, name)
	} else {
		sc.held[name] = refs
	}
}

// watch applies changes from rv on, and returns the last resourceVersion
// seen and how many events came.
func (s *Source) watch(ctx context.Context, sc *feed, rv string) (string, int, error) {
	timeout := int64((watchTimeout + time.Duration(rand.Int64N(int64(watchJitterMax)))).Seconds())
	w, err := s.client.Watch(ctx, sc.namespace, metav1.ListOptions{
		ResourceVersion: rv, AllowWatchBookmarks: true, TimeoutSeconds: &timeout, LabelSelector: slicesSelector,
	})
	if err != nil {
		return rv, 0, err
	}
	defer w.Stop()
	sc.watching.Store(true)
	defer sc.watching.Store(false)
	events := 0
	for ev := range w.ResultChan() {
		events++
		switch ev.Type {
		case watch.Added, watch.Modified, watch.Deleted:
			if slice, ok := ev.Object.(*octopodsv1alpha1.KeyDigestSlice); ok {
				name := types.NamespacedName{Namespace: slice.Namespace, Name: slice.Name}
				switch {
				case keyslice.IsWithdrawal(slice) && ev.Type == watch.Deleted:
					// The manager never deletes it: someone else did, and
					// deleting a slice must never admit a key. What it
					// listed stays refused until the manager writes it
					// again or a relist.
				case keyslice.IsWithdrawal(slice):
					s.index.SetWithdrawn(slice.Namespace, keyslice.Withdrawn(slice))
				case ev.Type == watch.Deleted:
					s.apply(sc, name, nil)
				default:
					s.apply(sc, name, slice)
				}
				rv = ev.Object.(*octopodsv1alpha1.KeyDigestSlice).ResourceVersion
			}
		case watch.Bookmark:
			if m, err := meta.Accessor(ev.Object); err == nil {
				rv = m.GetResourceVersion()
			}
		case watch.Error:
			sc.watching.Store(false)
			return rv, events, apierrors.FromObject(ev.Object)
		}
		sc.confirm()
	}
	return rv, events, nil
}

// endFirstSync, once the proxy is synced for the first time, puts the soft
// memory limit back and hands the garbage of the first full lists back to
// the OS: with 100k keys it is several times the index, and the Go runtime
// would otherwise keep it resident for minutes.
func (s *Source) endFirstSync() {
	if !s.Synced() {
		return
	}
	s.afterFirstSync.Do(func() {
		s.restoreLimit()
		debug.FreeOSMemory()
	})
}

// Synced reports whether every scope has completed its first full list,
// and the manager has said the slices are built (Marker).
func (s *Source) Synced() bool {
	if !s.marked.Load() {
		return false
	}
	for _, sc := range s.scopes {
		if !sc.synced.Load() {
			return false
		}
	}
	return true
}

// Staleness is how long ago the stalest scope was last confirmed current; a
// scope never confirmed counts from the start.
func (s *Source) Staleness() time.Duration {
	var worst time.Duration
	for _, sc := range s.scopes {
		since := s.started
		if last := sc.lastConfirmed.Load(); last != 0 {
			since = time.Unix(0, last)
		}
		worst = max(worst, time.Since(since))
	}
	return worst
}

func (sc *feed) confirm() { sc.lastConfirmed.Store(time.Now().UnixNano()) }

// probe confirms, scope by scope, that the API server is reachable while
// watches are quiet: a reachable API server with running watches means the
// cache is current. (RBAC may allow one namespace and not another.) A scope
// whose list or watch keeps failing is not confirmed, however reachable
// the API server is: its staleness grows.
func (s *Source) probe(ctx context.Context) {
	every(ctx, probeInterval, func() {
		for _, sc := range s.scopes {
			if !sc.synced.Load() || !sc.watching.Load() {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, probeInterval)
			_, err := s.client.List(pctx, sc.namespace, metav1.ListOptions{Limit: 1, LabelSelector: slicesSelector})
			cancel()
			if err == nil {
				sc.confirm()
			} else {
				s.logError(sc, "probe", err)
			}
		}
	})
}

func (s *Source) logError(sc *feed, what string, err error) {
	if suppressed, ok := sc.errors.allow(time.Now()); ok {
		s.log.Warn("reading key digest slices failed; serving the last known keys", "namespace", sc.namespace, "operation", what, "error", err.Error(), "suppressed", suppressed)
	}
}

// logLimiter lets one log line through per interval and counts the rest.
type logLimiter struct {
	interval   time.Duration
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// allow reports whether to log now, and how many lines were left out since
// the last one logged.
func (l *logLimiter) allow(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.next, l.suppressed = now.Add(l.interval), 0
	return n, true
}

// every calls f each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
