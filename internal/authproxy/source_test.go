package authproxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// scriptedKeys is a KeysClient that answers lists from a script and
// hands each watch to the test, recording the resourceVersion asked for.
type scriptedKeys struct {
	mu       sync.Mutex
	lists    []*octopodsv1alpha1.WorkspaceAPIKeyList // one per List call; the last repeats
	listRVs  []string
	watchRVs []string
	watches  chan *watch.FakeWatcher
}

func newScriptedKeys(lists ...*octopodsv1alpha1.WorkspaceAPIKeyList) *scriptedKeys {
	return &scriptedKeys{lists: lists, watches: make(chan *watch.FakeWatcher, 8)}
}

// List scripts the workspace keys; the other kinds have none, and a watch
// of them that never sends.
func (c *scriptedKeys) List(_ context.Context, kind octopodsv1alpha1.KeyKind, _ string, opts metav1.ListOptions) (*KeyPage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if opts.Limit == 1 || kind.Kind != octopodsv1alpha1.WorkspaceKey.Kind { // the Source's liveness probe, or no keys
		return &KeyPage{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}, nil
	}
	page := c.lists[min(len(c.listRVs), len(c.lists)-1)].DeepCopy()
	c.listRVs = append(c.listRVs, page.ResourceVersion)
	out := &KeyPage{ListMeta: page.ListMeta}
	for i := range page.Items {
		out.Items = append(out.Items, &page.Items[i])
	}
	return out, nil
}

func (c *scriptedKeys) Watch(_ context.Context, kind octopodsv1alpha1.KeyKind, _ string, opts metav1.ListOptions) (watch.Interface, error) {
	if kind.Kind != octopodsv1alpha1.WorkspaceKey.Kind {
		return watch.NewFakeWithChanSize(1, false), nil
	}
	c.mu.Lock()
	c.watchRVs = append(c.watchRVs, opts.ResourceVersion)
	c.mu.Unlock()
	w := watch.NewFakeWithChanSize(8, false)
	c.watches <- w
	return w, nil
}

func (c *scriptedKeys) calls() (lists, watches []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.listRVs...), append([]string(nil), c.watchRVs...)
}

func (c *scriptedKeys) nextWatch(t *testing.T) *watch.FakeWatcher {
	t.Helper()
	select {
	case w := <-c.watches:
		return w
	case <-time.After(5 * time.Second):
		t.Fatal("the Source did not watch")
		return nil
	}
}

func keyList(rv string, keys ...*octopodsv1alpha1.WorkspaceAPIKey) *octopodsv1alpha1.WorkspaceAPIKeyList {
	l := &octopodsv1alpha1.WorkspaceAPIKeyList{ListMeta: metav1.ListMeta{ResourceVersion: rv}}
	for _, k := range keys {
		l.Items = append(l.Items, *k)
	}
	return l
}

// keyVersion is a WorkspaceAPIKey publishing key, at a given
// resourceVersion, as a list or watch returns it.
func keyVersion(name, rv, key string) *octopodsv1alpha1.WorkspaceAPIKey {
	k := publishedKeyObject("team-a", name, key)
	k.ResourceVersion = rv
	return k
}

// runSource runs a Source over client, across all namespaces, until the
// test ends.
func runSource(t *testing.T, client KeysClient) (*Source, *keyindex.Index) {
	ix := keyindex.New()
	src := NewSource(ix, client, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	src.Run(ctx)
	return src, ix
}

// eventuallyAdmits waits until each key's lookup gives want.
func eventuallyAdmits(t *testing.T, ix *keyindex.Index, want map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		wrong := ""
		for key, admitted := range want {
			if r, _ := ix.Lookup(key, time.Now()); (r == keyindex.Allowed) != admitted {
				wrong = apikey.ID(key)
			}
		}
		if wrong == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %s: lookup still not as expected", wrong)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An expired watch (410 Gone, after etcd compaction) must lead to a full
// relist that also forgets what was deleted while the proxy was not
// watching, then a watch from the new list's resourceVersion.
func TestSourceRelistsAfterTheWatchExpires(t *testing.T) {
	a, b, b2, c := mustGenerate(t), mustGenerate(t), mustGenerate(t), mustGenerate(t)
	client := newScriptedKeys(
		keyList("10", keyVersion("alpha", "5", a), keyVersion("beta", "6", b)),
		// Meanwhile alpha was deleted, beta rotated and gamma created,
		// none of it seen by the expired watch.
		keyList("20", keyVersion("beta", "15", b2), keyVersion("gamma", "18", c)),
	)
	src, ix := runSource(t, client)

	first := client.nextWatch(t)
	eventuallyAdmits(t, ix, map[string]bool{a: true, b: true, b2: false, c: false})
	for deadline := time.Now().Add(5 * time.Second); !src.Synced(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the other key kinds' feeds never synced")
		}
	}
	first.Error(&apierrors.NewResourceExpired("too old resource version: 10 (12)").ErrStatus)

	second := client.nextWatch(t)
	eventuallyAdmits(t, ix, map[string]bool{a: false, b: false, b2: true, c: true})
	lists, watches := client.calls()
	if want := []string{"10", "20"}; !slices.Equal(lists, want) || !slices.Equal(watches, want) {
		t.Fatalf("lists %v and watches from %v; want both %v", lists, watches, want)
	}
	if !src.Synced() {
		t.Fatal("a relist must not make the proxy unready")
	}
	second.Stop()
}

// A watch that ends normally (server timeout) resumes from the last
// resourceVersion it saw, bookmarks included, without a relist.
func TestSourceResumesAWatchFromItsLastResourceVersion(t *testing.T) {
	a, a2 := mustGenerate(t), mustGenerate(t)
	client := newScriptedKeys(keyList("10", keyVersion("alpha", "5", a)))
	_, ix := runSource(t, client)

	first := client.nextWatch(t)
	first.Modify(keyVersion("alpha", "11", a2))
	first.Action(watch.Bookmark, &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "15"}})
	eventuallyAdmits(t, ix, map[string]bool{a: false, a2: true})
	first.Stop()

	client.nextWatch(t)
	lists, watches := client.calls()
	if !slices.Equal(lists, []string{"10"}) || !slices.Equal(watches, []string{"10", "15"}) {
		t.Fatalf("lists %v, watches from %v; want one list and watches from [10 15]", lists, watches)
	}
}

// Any other watch error is retried from the same resourceVersion: only 410
// may cost a relist of every key Secret.
func TestSourceRetriesOtherWatchErrorsWithoutRelisting(t *testing.T) {
	client := newScriptedKeys(keyList("10"))
	runSource(t, client)

	client.nextWatch(t).Error(&apierrors.NewGenericServerResponse(http.StatusInternalServerError, "watch", octopodsv1alpha1.GroupVersion.WithResource("workspaceapikeys").GroupResource(), "", "etcd unavailable", 0, true).ErrStatus)
	client.nextWatch(t)
	lists, watches := client.calls()
	if !slices.Equal(lists, []string{"10"}) || !slices.Equal(watches, []string{"10", "10"}) {
		t.Fatalf("lists %v, watches from %v; want one list and two watches from 10", lists, watches)
	}
}

// An event client-go cannot decode would come again from the same
// resourceVersion forever: relist, where objects are decoded one by one.
func TestSourceRelistsOnAnUndecodableEvent(t *testing.T) {
	client := newScriptedKeys(keyList("10"), keyList("20"))
	runSource(t, client)
	undecodable := apierrors.NewInternalError(errors.New(`unable to decode an event from the watch stream: time: unknown unit "d" in duration "30d"`))
	undecodable.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: causeClientWatchDecoding, Message: "unable to decode"}}
	client.nextWatch(t).Error(&undecodable.ErrStatus)
	client.nextWatch(t)
	if lists, _ := client.calls(); !slices.Equal(lists, []string{"10", "20"}) {
		t.Fatalf("lists %v; want a relist", lists)
	}
}

// A scope whose watch keeps failing is not current, however reachable the
// API server is: the probe must not confirm it, so its staleness grows.
func TestSourceIsStaleWhileItsWatchFails(t *testing.T) {
	client := &failingKeys{scriptedKeys: *newScriptedKeys(keyList("10"))}
	src, _ := runSource(t, client)
	time.Sleep(probeInterval + time.Second)
	if s := src.Staleness(); s < probeInterval {
		t.Fatalf("staleness %s after %s of failing watches; the probe confirmed a view that is not being kept", s, probeInterval+time.Second)
	}
}

// failingKeys refuses every list, or closes every watch at once.
type failingKeys struct {
	scriptedKeys
	listErr       error
	watchesOpened atomic.Int64
}

func (c *failingKeys) List(ctx context.Context, kind octopodsv1alpha1.KeyKind, ns string, opts metav1.ListOptions) (*KeyPage, error) {
	if c.listErr != nil {
		return nil, c.listErr
	}
	return c.scriptedKeys.List(ctx, kind, ns, opts)
}

// Watch fails the workspace keys' watches; the other kinds' watches stay
// open and quiet, so the count is of one kind's.
func (c *failingKeys) Watch(ctx context.Context, kind octopodsv1alpha1.KeyKind, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	if kind.Kind != octopodsv1alpha1.WorkspaceKey.Kind {
		return c.scriptedKeys.Watch(ctx, kind, ns, opts)
	}
	c.watchesOpened.Add(1)
	w := watch.NewFake()
	w.Stop() // ends at once, with no event
	return w, nil
}

// A watch that ends at once with no event must back off like an error: a
// fake client once produced 456,869 watches in 200ms.
func TestSourceBacksOffAWatchThatEndsAtOnce(t *testing.T) {
	client := &failingKeys{scriptedKeys: *newScriptedKeys(keyList("10"))}
	runSource(t, client)
	time.Sleep(time.Second)
	// With a 250ms first delay doubling: watches at ~0, 0.25, 0.75s.
	if n := client.watchesOpened.Load(); n < 2 || n > 5 {
		t.Fatalf("%d watches opened in 1s; want a few, backing off", n)
	}
}

// "Too large resource version" (a watch or list ahead of the API server it
// reached) cannot be resumed: relist, as for 410 Gone.
func TestSourceRelistsOnTooLargeResourceVersion(t *testing.T) {
	client := newScriptedKeys(keyList("10"), keyList("20"))
	runSource(t, client)
	tooLarge := apierrors.NewTimeoutError("Too large resource version: 10, current: 9", 1)
	tooLarge.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}
	client.nextWatch(t).Error(&tooLarge.ErrStatus)
	client.nextWatch(t)
	if lists, _ := client.calls(); !slices.Equal(lists, []string{"10", "20"}) {
		t.Fatalf("lists %v; want a relist", lists)
	}
}

// List errors are logged, once per interval per scope with a count of the
// rest, and the cache is never reported fresh before its first list.
func TestSourceLogsErrorsAndIsStaleBeforeItsFirstList(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	client := &failingKeys{listErr: apierrors.NewForbidden(octopodsv1alpha1.GroupVersion.WithResource("workspaceapikeys").GroupResource(), "", nil)}
	ix := keyindex.New()
	src := NewSource(ix, client, []string{"team-a", "team-b"}, slog.New(slog.NewJSONHandler(logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	src.Run(ctx)
	time.Sleep(1200 * time.Millisecond)
	if src.Synced() {
		t.Fatal("synced without a list")
	}
	if s := src.Staleness(); s < time.Second {
		t.Fatalf("staleness %s before the first list; want the time since start", s)
	}
	out := logs.String()
	for _, ns := range []string{"team-a", "team-b"} {
		if n := strings.Count(out, `"namespace":"`+ns+`"`); n != 1 {
			t.Fatalf("%d log lines for %s in 1.2s; want exactly 1 (rate-limited):\n%s", n, ns, out)
		}
	}
	if !strings.Contains(out, "forbidden") {
		t.Fatalf("the error is not logged: %s", out)
	}
}

func TestLogLimiter(t *testing.T) {
	l := logLimiter{interval: time.Minute}
	t0 := time.Now()
	if _, ok := l.allow(t0); !ok {
		t.Fatal("first line suppressed")
	}
	for i := range 5 {
		if _, ok := l.allow(t0.Add(time.Duration(i) * time.Second)); ok {
			t.Fatal("line within the interval let through")
		}
	}
	if n, ok := l.allow(t0.Add(time.Minute)); !ok || n != 5 {
		t.Fatalf("after the interval: %d suppressed, %v", n, ok)
	}
}

func TestPublishedKeys(t *testing.T) {
	now := time.Now()
	cur, prev := mustGenerate(t), mustGenerate(t)
	pub := func(key string, until *time.Time) octopodsv1alpha1.PublishedKey {
		d := apikey.DigestOf(key)
		p := octopodsv1alpha1.PublishedKey{KeyID: d.ID(), Digest: d.String()}
		if until != nil {
			p.ValidUntil = &metav1.Time{Time: *until}
		}
		return p
	}
	hour, y2099, past := now.Add(time.Hour), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(-time.Second)
	rotated := func(ago time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(-ago)} }
	cases := []struct {
		name                string
		published           []octopodsv1alpha1.PublishedKey
		rotatedAt           *metav1.Time
		deleting            bool
		current, previous   bool
		previousUntilBefore time.Time
	}{
		{"current only", []octopodsv1alpha1.PublishedKey{pub(cur, nil)}, nil, false, true, false, time.Time{}},
		{"current and previous in grace", []octopodsv1alpha1.PublishedKey{pub(cur, nil), pub(prev, &hour)}, rotated(time.Minute), false, true, true, hour.Add(time.Second)},
		{"previous to 2099 capped at rotatedAt+24h", []octopodsv1alpha1.PublishedKey{pub(cur, nil), pub(prev, &y2099)}, rotated(time.Hour), false, true, true, now.Add(23*time.Hour + time.Second)},
		{"previous past rotatedAt+24h", []octopodsv1alpha1.PublishedKey{pub(cur, nil), pub(prev, &y2099)}, rotated(48 * time.Hour), false, true, false, time.Time{}},
		{"previous without rotatedAt", []octopodsv1alpha1.PublishedKey{pub(cur, nil), pub(prev, &hour)}, nil, false, true, false, time.Time{}},
		{"previous expired", []octopodsv1alpha1.PublishedKey{pub(cur, nil), pub(prev, &past)}, rotated(time.Minute), false, true, false, time.Time{}},
		{"being deleted", []octopodsv1alpha1.PublishedKey{pub(cur, nil)}, nil, true, false, false, time.Time{}},
		{"malformed digest", []octopodsv1alpha1.PublishedKey{{KeyID: "x", Digest: "sha256:zz"}}, nil, false, false, false, time.Time{}},
		{"nothing published", nil, nil, false, false, false, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme"}}
			k.Spec.WorkspaceName = "acme"
			k.Status.PublishedKeys, k.Status.RotatedAt = tc.published, tc.rotatedAt
			if tc.deleting {
				k.DeletionTimestamp = &metav1.Time{Time: now}
			}
			got := PublishedKeys(k, now)
			if got.HasCurrent != tc.current || got.HasPrevious != tc.previous {
				t.Fatalf("current %v previous %v", got.HasCurrent, got.HasPrevious)
			}
			if tc.current && got.Current != apikey.DigestOf(cur) {
				t.Fatal("wrong current digest")
			}
			if tc.previous && (got.Previous != apikey.DigestOf(prev) || !got.PreviousValidUntil.Before(tc.previousUntilBefore)) {
				t.Fatalf("previous until %s, want before %s", got.PreviousValidUntil, tc.previousUntilBefore)
			}
		})
	}
}

func TestPublishedKeysRevoked(t *testing.T) {
	now := time.Now()
	recent, old := mustGenerate(t), mustGenerate(t)
	revoked := func(key string, ago time.Duration) octopodsv1alpha1.RevokedKey {
		d := apikey.DigestOf(key)
		return octopodsv1alpha1.RevokedKey{KeyID: d.ID(), Digest: d.String(), RevokedAt: metav1.Time{Time: now.Add(-ago)}}
	}
	k := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme"}}
	k.Status.RevokedKeys = []octopodsv1alpha1.RevokedKey{
		revoked(recent, time.Hour),
		revoked(old, octopodsv1alpha1.RevokedKeyRetention+time.Minute), // the operator has not trimmed it yet
		{KeyID: "x", Digest: "sha256:zz"},
	}
	if got := PublishedKeys(k, now).Revoked; len(got) != 1 || got[0] != apikey.DigestOf(recent) {
		t.Fatalf("revoked %v: want only the recent, well-formed one", got)
	}
	k.DeletionTimestamp = &metav1.Time{Time: now}
	if got := PublishedKeys(k, now).Revoked; len(got) != 0 {
		t.Fatalf("a key being deleted forgets its revoked keys: %v", got)
	}
}
