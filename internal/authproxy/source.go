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
	"k8s.io/apimachinery/pkg/watch"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/clientaddr"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// probeInterval is how often the API server is asked whether it is still
// there, so a quiet cluster does not look stale and a lost one does.
const probeInterval = 5 * time.Second

// Source keeps the index in step with the keys the operator publishes in
// the status of the three key kinds: per kind and namespace (or once for
// all namespaces), a paginated list
// and then a watch from its resourceVersion, relisting when the watch falls
// too far behind. Each page is turned into digests at once, so no copy of
// 100k objects is ever held, not even while the first list runs (a client-go
// Reflector keeps the whole list, and an informer a copy of every object).
type Source struct {
	index  *keyindex.Index
	client KeysClient
	log    *slog.Logger
	scopes []*feed
	// started is when Run began: a scope never confirmed is as stale as the
	// proxy is old, never fresh.
	started     time.Time
	releaseOnce sync.Once
	// PageSize is how many key objects each list request asks for.
	PageSize int64
}

// feed is one key kind in one namespace (or "" for all) with its own
// list/watch.
type feed struct {
	kind      octopodsv1alpha1.KeyKind
	namespace string
	synced    atomic.Bool
	// lastConfirmed is when this scope was last known to match the API
	// server (unix nanoseconds); 0 before its first list.
	lastConfirmed atomic.Int64
	// watching: a watch is open and has not failed. Only then does a
	// reachable API server mean the view is current (the probe).
	watching atomic.Bool
	errors   *logLimiter
}

// Paging and retry of the list/watch loop.
const (
	// DefaultListPageSize keeps the first sync's peak memory within the
	// Deployment's budget. Measured at 100k keys (make bench-restart, one
	// run): 500 a page ready in 40 s, peak 63 MiB; 2000: 24 s, 67 MiB;
	// 5000: 32 s, 79 MiB. The API server's list of 100k custom resources,
	// not the client's rate limit, is most of the time.
	DefaultListPageSize = 500
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

// NewSource follows the key objects of every kind in the given namespaces
// (none: all).
func NewSource(ix *keyindex.Index, client KeysClient, namespaces []string, log *slog.Logger) *Source {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	s := &Source{index: ix, client: client, log: log, started: time.Now(), PageSize: DefaultListPageSize}
	for _, ns := range namespaces {
		// One error log budget per namespace, shared by its kinds' feeds:
		// RBAC missing in a namespace is one problem, not three.
		errs := &logLimiter{interval: errorLogInterval}
		for _, kind := range octopodsv1alpha1.KeyKinds {
			s.scopes = append(s.scopes, &feed{kind: kind, namespace: ns, errors: errs})
		}
	}
	return s
}

// Run watches until ctx ends.
func (s *Source) Run(ctx context.Context) {
	s.started = time.Now()
	for _, sc := range s.scopes {
		go s.follow(ctx, sc)
	}
	go s.probe(ctx)
}

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
		if s.Synced() {
			// Hand the garbage of the first full lists back to the OS: with
			// 100k keys it is several times the index, and the Go runtime
			// would otherwise keep it resident for minutes.
			s.releaseOnce.Do(debug.FreeOSMemory)
		}
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

// list loads every key object of the scope, a page at a time, and
// removes from the index what the API server no longer has.
func (s *Source) list(ctx context.Context, sc *feed) (string, error) {
	relist := s.index.BeginSync()
	opts := metav1.ListOptions{Limit: s.PageSize}
	for {
		page, err := s.client.List(ctx, sc.kind, sc.namespace, opts)
		if err != nil {
			return "", err
		}
		now := time.Now()
		for _, k := range page.Items {
			relist.Set(PublishedKeys(k, now))
		}
		if page.Continue == "" {
			relist.End(sc.namespace, sc.kind.KeyType)
			return page.ResourceVersion, nil
		}
		opts.Continue = page.Continue
	}
}

// watch applies changes from rv on, and returns the last resourceVersion
// seen and how many events came.
func (s *Source) watch(ctx context.Context, sc *feed, rv string) (string, int, error) {
	timeout := int64((watchTimeout + time.Duration(rand.Int64N(int64(watchJitterMax)))).Seconds())
	w, err := s.client.Watch(ctx, sc.kind, sc.namespace, metav1.ListOptions{
		ResourceVersion: rv, AllowWatchBookmarks: true, TimeoutSeconds: &timeout,
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
		case watch.Added, watch.Modified:
			if key, ok := ev.Object.(octopodsv1alpha1.KeyObject); ok && key.KeyKind().Kind == sc.kind.Kind {
				s.index.Set(PublishedKeys(key, time.Now()))
				rv = key.GetResourceVersion()
			}
		case watch.Deleted:
			if key, ok := ev.Object.(octopodsv1alpha1.KeyObject); ok && key.KeyKind().Kind == sc.kind.Kind {
				s.index.Delete(key.GetNamespace(), sc.kind.KeyType, key.GetName())
				rv = key.GetResourceVersion()
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

// Synced reports whether every scope has completed its first full list.
func (s *Source) Synced() bool {
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
			_, err := s.client.List(pctx, sc.kind, sc.namespace, metav1.ListOptions{Limit: 1})
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
		s.log.Warn("reading key objects failed; serving the last known keys", "resource", sc.kind.Resource, "namespace", sc.namespace, "operation", what, "error", err.Error(), "suppressed", suppressed)
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

// PublishedKeys reads what a key object publishes into the index's form,
// with the scope the operator published beside the keys. A key being
// deleted publishes nothing: its Secret is on the way out. A channel or
// WhatsApp key without a published scope of its own type publishes nothing
// either (fail closed); a workspace key's scope is its workspace, as before
// scopes were published. Entries that do not parse are left out. Listed
// keys carry only the fields listedKey decodes: a field read here must be
// added there (TestListDecodesWhatPublishedKeysReads).
func PublishedKeys(key octopodsv1alpha1.KeyObject, now time.Time) keyindex.Keys {
	kind, st := key.KeyKind(), key.KeyStatus()
	out := keyindex.Keys{Namespace: key.GetNamespace(), Name: key.GetName(), Workspace: key.OwnerName(), Scope: keyindex.Scope{Type: kind.KeyType}}
	if sc := st.Scope; sc != nil && sc.Type == kind.KeyType {
		out.Workspace = sc.Workspace
		out.Scope = keyindex.Scope{Type: sc.Type, ChannelType: string(sc.ChannelType)}
		out.AllowedSourceRanges = clientaddr.Ranges(sc.AllowedSourceRanges)
		if r := sc.RateLimit; r != nil && r.RequestsPerSecond > 0 {
			out.RateLimit = keyindex.RateLimit{PerSecond: float64(r.RequestsPerSecond), Burst: int(r.EffectiveBurst())}
		}
	} else if kind.KeyType != octopodsv1alpha1.KeyTypeWorkspace {
		return out
	}
	if key.GetDeletionTimestamp() != nil {
		return out
	}
	// The recorded last use seeds the index only when it is the current
	// key's: a new key's first use is then written at once.
	if used, issued := st.LastUsedTime, st.IssuedAt; used != nil && issued != nil && !used.Before(issued) {
		out.LastUsed = used.Time
	}
	for _, r := range st.RevokedKeys {
		if d, err := apikey.ParseDigest(r.Digest); err == nil && now.Sub(r.RevokedAt.Time) < octopodsv1alpha1.RevokedKeyRetention {
			out.Revoked = append(out.Revoked, d)
		}
	}
	for _, p := range st.PublishedKeys {
		d, err := apikey.ParseDigest(p.Digest)
		if err != nil {
			continue
		}
		if p.ValidUntil == nil {
			if !out.HasCurrent {
				out.Current, out.HasCurrent = d, true
			}
			continue
		}
		if out.HasPrevious || st.RotatedAt == nil {
			continue
		}
		until := p.ValidUntil.Time
		if limit := st.RotatedAt.Add(octopodsv1alpha1.MaxPreviousKeyLifetime); limit.Before(until) {
			until = limit
		}
		if until.After(now) {
			out.Previous, out.HasPrevious, out.PreviousValidUntil = d, true, until
		}
	}
	return out
}
