package authproxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
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

func (c *scriptedKeys) List(_ context.Context, _ string, opts metav1.ListOptions) (*octopodsv1alpha1.WorkspaceAPIKeyList, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if opts.Limit == 1 { // the Source's liveness probe
		return &octopodsv1alpha1.WorkspaceAPIKeyList{}, nil
	}
	page := c.lists[min(len(c.listRVs), len(c.lists)-1)]
	c.listRVs = append(c.listRVs, page.ResourceVersion)
	return page.DeepCopy(), nil
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
