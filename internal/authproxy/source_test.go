package authproxy

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// scriptedSecrets is a SecretsClient that answers lists from a script and
// hands each watch to the test, recording the resourceVersion asked for.
type scriptedSecrets struct {
	mu       sync.Mutex
	lists    []*corev1.SecretList // one per List call; the last repeats
	listRVs  []string
	watchRVs []string
	watches  chan *watch.FakeWatcher
}

func newScriptedSecrets(lists ...*corev1.SecretList) *scriptedSecrets {
	return &scriptedSecrets{lists: lists, watches: make(chan *watch.FakeWatcher, 8)}
}

func (c *scriptedSecrets) List(_ context.Context, _ string, opts metav1.ListOptions) (*corev1.SecretList, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if opts.Limit == 1 { // the Source's liveness probe
		return &corev1.SecretList{}, nil
	}
	page := c.lists[min(len(c.listRVs), len(c.lists)-1)]
	c.listRVs = append(c.listRVs, page.ResourceVersion)
	return page.DeepCopy(), nil
}

func (c *scriptedSecrets) Watch(_ context.Context, _ string, opts metav1.ListOptions) (watch.Interface, error) {
	c.mu.Lock()
	c.watchRVs = append(c.watchRVs, opts.ResourceVersion)
	c.mu.Unlock()
	w := watch.NewFakeWithChanSize(8, false)
	c.watches <- w
	return w, nil
}

func (c *scriptedSecrets) calls() (lists, watches []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.listRVs...), append([]string(nil), c.watchRVs...)
}

func (c *scriptedSecrets) nextWatch(t *testing.T) *watch.FakeWatcher {
	t.Helper()
	select {
	case w := <-c.watches:
		return w
	case <-time.After(5 * time.Second):
		t.Fatal("the Source did not watch")
		return nil
	}
}

func secretList(rv string, secrets ...*corev1.Secret) *corev1.SecretList {
	l := &corev1.SecretList{ListMeta: metav1.ListMeta{ResourceVersion: rv}}
	for _, s := range secrets {
		l.Items = append(l.Items, *s)
	}
	return l
}

// keyVersion is keySecret at a given resourceVersion, as a list or watch
// returns it.
func keyVersion(name, rv, key string) *corev1.Secret {
	s := keySecret("team-a", name, key)
	s.ResourceVersion = rv
	return s
}

// runSource runs a Source over client, across all namespaces, until the
// test ends.
func runSource(t *testing.T, client SecretsClient) (*Source, *keyindex.Index) {
	ix := keyindex.New()
	src := NewSource(ix, client, nil)
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
	client := newScriptedSecrets(
		secretList("10", keyVersion("alpha", "5", a), keyVersion("beta", "6", b)),
		// Meanwhile alpha was deleted, beta rotated and gamma created,
		// none of it seen by the expired watch.
		secretList("20", keyVersion("beta", "15", b2), keyVersion("gamma", "18", c)),
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
	client := newScriptedSecrets(secretList("10", keyVersion("alpha", "5", a)))
	_, ix := runSource(t, client)

	first := client.nextWatch(t)
	first.Modify(keyVersion("alpha", "11", a2))
	first.Action(watch.Bookmark, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "15"}})
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
	client := newScriptedSecrets(secretList("10"))
	runSource(t, client)

	client.nextWatch(t).Error(&apierrors.NewGenericServerResponse(http.StatusInternalServerError, "watch", corev1.Resource("secrets"), "", "etcd unavailable", 0, true).ErrStatus)
	client.nextWatch(t)
	lists, watches := client.calls()
	if !slices.Equal(lists, []string{"10"}) || !slices.Equal(watches, []string{"10", "10"}) {
		t.Fatalf("lists %v, watches from %v; want one list and two watches from 10", lists, watches)
	}
}
