package authproxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/keyslice"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// scriptedKeys is a SlicesClient that answers lists from a script and
// hands each watch to the test, recording the resourceVersion asked for.
type scriptedKeys struct {
	mu       sync.Mutex
	lists    []*octopodsv1alpha1.KeyDigestSliceList // one per List call; the last repeats
	listRVs  []string
	watchRVs []string
	watches  chan *watch.FakeWatcher
	marked   atomic.Bool
}

func newScriptedKeys(lists ...*octopodsv1alpha1.KeyDigestSliceList) *scriptedKeys {
	return &scriptedKeys{lists: lists, watches: make(chan *watch.FakeWatcher, 8)}
}

// List scripts the slices.
func (c *scriptedKeys) List(_ context.Context, _ string, opts metav1.ListOptions) (*octopodsv1alpha1.KeyDigestSliceList, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if opts.Limit == 1 { // the Source's liveness probe
		return &octopodsv1alpha1.KeyDigestSliceList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}, nil
	}
	page := c.lists[min(len(c.listRVs), len(c.lists)-1)].DeepCopy()
	c.listRVs = append(c.listRVs, page.ResourceVersion)
	return page, nil
}

// Get finds the marker when the test says it exists.
func (c *scriptedKeys) Get(context.Context, types.NamespacedName) error {
	if c.marked.Load() {
		return nil
	}
	return apierrors.NewNotFound(octopodsv1alpha1.GroupVersion.WithResource("keydigestslices").GroupResource(), octopodsv1alpha1.SlicesBuiltName)
}

func (c *scriptedKeys) Watch(_ context.Context, _ string, opts metav1.ListOptions) (watch.Interface, error) {
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

func keyList(rv string, items ...*octopodsv1alpha1.KeyDigestSlice) *octopodsv1alpha1.KeyDigestSliceList {
	l := &octopodsv1alpha1.KeyDigestSliceList{ListMeta: metav1.ListMeta{ResourceVersion: rv}}
	for _, s := range items {
		l.Items = append(l.Items, *s)
	}
	return l
}

// keyVersion is a slice of its own (named after the key object) holding
// the WorkspaceAPIKey name publishing key, at a given resourceVersion, as a
// list or watch returns it.
func keyVersion(name, rv, key string) *octopodsv1alpha1.KeyDigestSlice {
	e, _ := keyslice.Entry(publishedKeyObject("team-a", name, key))
	return &octopodsv1alpha1.KeyDigestSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "slice-" + name, ResourceVersion: rv},
		Keys: []octopodsv1alpha1.SlicedKey{e}}
}

// runSource runs a Source over client, across all namespaces, until the
// test ends.
func runSource(t *testing.T, client SlicesClient) (*Source, *keyindex.Index) {
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
			t.Fatal("the feed never synced")
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
	first.Action(watch.Bookmark, &octopodsv1alpha1.KeyDigestSlice{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "15"}})
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

func (c *failingKeys) List(ctx context.Context, ns string, opts metav1.ListOptions) (*octopodsv1alpha1.KeyDigestSliceList, error) {
	if c.listErr != nil {
		return nil, c.listErr
	}
	return c.scriptedKeys.List(ctx, ns, opts)
}

// Watch fails every watch.
func (c *failingKeys) Watch(context.Context, string, metav1.ListOptions) (watch.Interface, error) {
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

// A slice's later version that no longer holds a key object removes it
// from the index; another slice's keys stay; a deleted slice removes all
// of its own.
func TestSourceForgetsWhatASliceNoLongerHolds(t *testing.T) {
	a, b, c := mustGenerate(t), mustGenerate(t), mustGenerate(t)
	both := keyVersion("alpha", "5", a)
	both.Keys = append(both.Keys, keyVersion("beta", "5", b).Keys...)
	client := newScriptedKeys(keyList("10", both, keyVersion("gamma", "6", c)))
	_, ix := runSource(t, client)
	w := client.nextWatch(t)
	eventuallyAdmits(t, ix, map[string]bool{a: true, b: true, c: true})

	onlyBeta := both.DeepCopy()
	onlyBeta.Keys, onlyBeta.ResourceVersion = onlyBeta.Keys[1:], "11"
	w.Modify(onlyBeta)
	eventuallyAdmits(t, ix, map[string]bool{a: false, b: true, c: true})
	w.Delete(onlyBeta)
	eventuallyAdmits(t, ix, map[string]bool{a: false, b: false, c: true})
}

// The proxy is not ready before the manager says the slices are built,
// whatever it listed: an upgrade from a release without slices lists none.
func TestSourceWaitsForTheMarker(t *testing.T) {
	client := newScriptedKeys(keyList("10"))
	ix := keyindex.New()
	src := NewSource(ix, client, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	src.Marker = types.NamespacedName{Namespace: "octopods-system", Name: octopodsv1alpha1.SlicesBuiltName}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	src.Run(ctx)
	client.nextWatch(t)
	time.Sleep(2 * markerInterval)
	if src.Synced() {
		t.Fatal("synced before the marker exists")
	}
	client.marked.Store(true)
	for deadline := time.Now().Add(5 * time.Second); !src.Synced(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not synced once the marker exists")
		}
	}
}

// withdrawalVersion is team-a's withdrawal slice refusing the given keys.
func withdrawalVersion(rv string, keys ...string) *octopodsv1alpha1.KeyDigestSlice {
	s := &octopodsv1alpha1.KeyDigestSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: octopodsv1alpha1.SliceWithdrawnName, ResourceVersion: rv,
		Labels: map[string]string{octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleWithdrawn}}}
	for _, k := range keys {
		s.WithdrawnKeys = append(s.WithdrawnKeys, octopodsv1alpha1.RevokedDigest{KeyID: apikey.ID(k), Digest: apikey.DigestOf(k).String()})
	}
	return s
}

// A key the withdrawal slice lists is refused as revoked while its slice
// of keys still publishes it, and its slice's later version keeps it
// refused once the withdrawal slice lets it go; a withdrawal slice deleted
// by someone else admits nothing, and a relist that finds none forgets
// what one refused; the withdrawal slice holds no key object, so it
// removes none.
func TestSourceRefusesWhatTheWithdrawalSliceLists(t *testing.T) {
	a, b, b2 := mustGenerate(t), mustGenerate(t), mustGenerate(t)
	client := newScriptedKeys(
		keyList("10", keyVersion("alpha", "5", a), keyVersion("beta", "6", b), withdrawalVersion("7", a)),
		keyList("20", keyVersion("alpha", "5", a), keyVersion("beta", "6", b)),
	)
	_, ix := runSource(t, client)
	w := client.nextWatch(t)
	eventuallyAdmits(t, ix, map[string]bool{a: false, b: true})
	if r, who := ix.Lookup(a, time.Now()); r != keyindex.Revoked || who.Name != "alpha" || who.KeyID != apikey.ID(a) {
		t.Fatalf("a withdrawn key: %v %+v, want Revoked as alpha's", r, who)
	}

	w.Modify(withdrawalVersion("11", a, b)) // beta rotated: refused at once
	eventuallyAdmits(t, ix, map[string]bool{a: false, b: false})
	rotated := keyVersion("beta", "12", b2)
	rotated.Keys[0].RevokedKeys = []octopodsv1alpha1.RevokedDigest{{KeyID: apikey.ID(b), Digest: apikey.DigestOf(b).String(), RevokedAt: metav1.Now()}}
	w.Modify(rotated)
	w.Modify(withdrawalVersion("13", a)) // settled: the slice says it now
	eventuallyAdmits(t, ix, map[string]bool{a: false, b: false, b2: true})
	if r, _ := ix.Lookup(b, time.Now()); r != keyindex.Revoked {
		t.Fatalf("the rotated key after its withdrawal settled: %v, want Revoked", r)
	}

	// Deleted by someone else: deleting a slice admits nothing.
	w.Delete(withdrawalVersion("14", a))
	w.Modify(keyVersion("beta", "15", b2))
	eventuallyAdmits(t, ix, map[string]bool{a: false, b2: true})
	w.Error(&apierrors.NewResourceExpired("too old resource version: 15 (16)").ErrStatus)
	client.nextWatch(t)
	eventuallyAdmits(t, ix, map[string]bool{a: true, b: true})
}

// limitAtList records the soft memory limit at each list.
type limitAtList struct {
	*scriptedKeys
	mu     sync.Mutex
	limits []int64
}

func (c *limitAtList) List(ctx context.Context, ns string, opts metav1.ListOptions) (*octopodsv1alpha1.KeyDigestSliceList, error) {
	c.mu.Lock()
	c.limits = append(c.limits, debug.SetMemoryLimit(-1))
	c.mu.Unlock()
	return c.scriptedKeys.List(ctx, ns, opts)
}

// The first sync lists under a lifted soft memory limit (its pages would
// make the garbage collector run over and over under the Deployment's), and
// the configured limit is back once the proxy is synced.
func TestSourceLiftsTheSoftMemoryLimitForTheFirstSyncOnly(t *testing.T) {
	const configured = 48 << 20
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(configured))
	client := &limitAtList{scriptedKeys: newScriptedKeys(keyList("10", keyVersion("alpha", "5", mustGenerate(t))))}
	src, _ := runSource(t, client)
	deadline := time.Now().Add(5 * time.Second)
	for !src.Synced() || debug.SetMemoryLimit(-1) != configured {
		if time.Now().After(deadline) {
			t.Fatalf("synced %t, soft limit %d after the first sync; want %d", src.Synced(), debug.SetMemoryLimit(-1), int64(configured))
		}
		time.Sleep(5 * time.Millisecond)
	}
	client.mu.Lock()
	defer client.mu.Unlock()
	if len(client.limits) == 0 || client.limits[0] <= configured {
		t.Fatalf("soft limits at the lists: %v; want the first above %d", client.limits, int64(configured))
	}
}
