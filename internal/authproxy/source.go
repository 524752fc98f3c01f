package authproxy

import (
	"context"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// probeInterval is how often the API server is asked whether it is still
// there, so a quiet cluster does not look stale and a lost one does.
const probeInterval = 5 * time.Second

// Source keeps the index in step with the key Secrets: per namespace (or
// once for all), a paginated list and then a watch from its resourceVersion,
// relisting when the watch falls too far behind. Each page is turned into
// digests at once, so no copy of 100k Secrets is ever held, not even while
// the first list runs (a client-go Reflector keeps the whole list).
type Source struct {
	index      *keyindex.Index
	client     SecretsClient
	namespaces []string // "" = all
	synced     []atomic.Bool
	// lastConfirmed is when the cache was last known to match the API
	// server (unix nanoseconds).
	lastConfirmed atomic.Int64
	releaseOnce   sync.Once
}

// Paging and retry of the list/watch loop.
const (
	listPageSize   = 500
	minRetryDelay  = 250 * time.Millisecond
	maxRetryDelay  = 30 * time.Second
	watchTimeout   = 5 * time.Minute
	watchJitterMax = 5 * time.Minute
)

// NewSource watches key Secrets in the given namespaces (none: all).
func NewSource(ix *keyindex.Index, client SecretsClient, namespaces []string) *Source {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	return &Source{index: ix, client: client, namespaces: namespaces, synced: make([]atomic.Bool, len(namespaces))}
}

var keySecretSelector = fields.OneTermEqualSelector("type", octopodsv1alpha1.SecretType).String()

// Run watches until ctx ends.
func (s *Source) Run(ctx context.Context) {
	for i, ns := range s.namespaces {
		go s.follow(ctx, ns, &s.synced[i])
	}
	go s.probe(ctx)
}

// follow lists, then watches, forever: a closed watch resumes from the last
// resourceVersion seen, an expired one (410 Gone) relists.
func (s *Source) follow(ctx context.Context, ns string, synced *atomic.Bool) {
	delay := minRetryDelay
	retry := func() {
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetryDelay)
	}
	for ctx.Err() == nil {
		rv, err := s.list(ctx, ns)
		if err != nil {
			retry()
			continue
		}
		synced.Store(true)
		s.confirm()
		if s.Synced() {
			// Hand the garbage of the first full lists back to the OS: with
			// 100k keys it is several times the index, and the Go runtime
			// would otherwise keep it resident for minutes.
			s.releaseOnce.Do(debug.FreeOSMemory)
		}
		delay = minRetryDelay
		for ctx.Err() == nil {
			rv, err = s.watch(ctx, ns, rv)
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				break // too far behind: list again
			}
			if err != nil {
				retry()
			} else {
				delay = minRetryDelay // the watch ran and ended normally
			}
		}
	}
}

// list loads every key Secret of the scope, a page at a time, and removes
// from the index what the API server no longer has.
func (s *Source) list(ctx context.Context, ns string) (string, error) {
	sync := s.index.BeginSync()
	opts := metav1.ListOptions{FieldSelector: keySecretSelector, Limit: listPageSize}
	for {
		page, err := s.client.List(ctx, ns, opts)
		if err != nil {
			return "", err
		}
		for i := range page.Items {
			sync.Set(secretKeys(&page.Items[i]))
		}
		if page.Continue == "" {
			sync.End(ns)
			return page.ResourceVersion, nil
		}
		opts.Continue = page.Continue
	}
}

// watch applies changes from rv on, and returns the last resourceVersion seen.
func (s *Source) watch(ctx context.Context, ns, rv string) (string, error) {
	timeout := int64((watchTimeout + time.Duration(rand.Int64N(int64(watchJitterMax)))).Seconds())
	w, err := s.client.Watch(ctx, ns, metav1.ListOptions{
		FieldSelector: keySecretSelector, ResourceVersion: rv, AllowWatchBookmarks: true, TimeoutSeconds: &timeout,
	})
	if err != nil {
		return rv, err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Added, watch.Modified:
			if secret, ok := ev.Object.(*corev1.Secret); ok {
				s.index.Set(secretKeys(secret))
				rv = secret.ResourceVersion
			}
		case watch.Deleted:
			if secret, ok := ev.Object.(*corev1.Secret); ok {
				s.index.Delete(secret.Namespace, secret.Name)
				rv = secret.ResourceVersion
			}
		case watch.Bookmark:
			if m, err := meta.Accessor(ev.Object); err == nil {
				rv = m.GetResourceVersion()
			}
		case watch.Error:
			return rv, apierrors.FromObject(ev.Object)
		}
		s.confirm()
	}
	return rv, nil
}

// Synced reports whether every scope has completed its first full list.
func (s *Source) Synced() bool {
	for i := range s.synced {
		if !s.synced[i].Load() {
			return false
		}
	}
	return true
}

// Staleness is how long ago the cache was last confirmed current.
func (s *Source) Staleness() time.Duration {
	last := s.lastConfirmed.Load()
	if last == 0 {
		return 0
	}
	return time.Since(time.Unix(0, last))
}

func (s *Source) confirm() { s.lastConfirmed.Store(time.Now().UnixNano()) }

// probe confirms the API server is reachable while watches are quiet: a
// reachable API server with running watches means the cache is current.
func (s *Source) probe(ctx context.Context) {
	every(ctx, probeInterval, func() {
		if !s.Synced() {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, probeInterval)
		_, err := s.client.List(pctx, s.namespaces[0], metav1.ListOptions{FieldSelector: keySecretSelector, Limit: 1})
		cancel()
		if err == nil {
			s.confirm()
		}
	})
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

// secretKeys reads a key Secret into digests. A malformed key is left out: no
// well-formed presented key could match it anyway.
func secretKeys(s *corev1.Secret) keyindex.SecretKeys {
	k := keyindex.SecretKeys{Namespace: s.Namespace, Name: s.Name, Workspace: s.Labels[octopodsv1alpha1.WorkspaceLabel]}
	if key := string(s.Data[octopodsv1alpha1.SecretKeyAPIKey]); apikey.Validate(key) == nil {
		k.Current, k.HasCurrent = apikey.DigestOf(key), true
	}
	if key := string(s.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey]); apikey.Validate(key) == nil {
		if until, err := time.Parse(time.RFC3339, s.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation]); err == nil {
			k.Previous, k.HasPrevious, k.PreviousValidUntil = apikey.DigestOf(key), true, until
		}
	}
	return k
}
