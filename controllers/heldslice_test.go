package controllers

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/keyslice"
)

func TestHeldSliceKeepsItsEntriesPacked(t *testing.T) {
	var keys []octopodsv1alpha1.SlicedKey
	for i := range 3 {
		name := fmt.Sprintf("ws-%d", i)
		keys = append(keys, octopodsv1alpha1.SlicedKey{Kind: octopodsv1alpha1.WorkspaceKey.Kind, Name: name, Owner: name,
			Scope:         octopodsv1alpha1.KeyScope{Type: octopodsv1alpha1.KeyTypeWorkspace, Workspace: name},
			PublishedKeys: []octopodsv1alpha1.PublishedKey{{KeyID: fmt.Sprintf("%012d", i), Digest: fmt.Sprintf("sha256:%064d", i)}}})
	}
	h, err := newHeldSlice("7", keys)
	if err != nil {
		t.Fatal(err)
	}
	if h.size != 3 || h.resourceVersion != "7" || !equality.Semantic.DeepEqual(h.keys(), keys) {
		t.Fatalf("held %d entries at %q: %+v", h.size, h.resourceVersion, h.keys())
	}
	for i := range keys {
		if !h.holds(keyslice.RefOf(&keys[i])) {
			t.Errorf("does not hold %s", keys[i].Name)
		}
	}
	for _, other := range []keyslice.Ref{{Kind: octopodsv1alpha1.WorkspaceKey.Kind, Name: "ws-9"}, {Kind: octopodsv1alpha1.ChannelKey.Kind, Name: "ws-0"}} {
		if h.holds(other) {
			t.Errorf("holds %v", other)
		}
		if h.holdsAny(map[keyslice.Ref]bool{other: true}) {
			t.Errorf("holds any of %v", other)
		}
	}
	if !h.holdsAny(map[keyslice.Ref]bool{{Kind: octopodsv1alpha1.WorkspaceKey.Kind, Name: "ws-9"}: true, keyslice.RefOf(&keys[1]): true}) {
		t.Error("holds none of a set with one of its entries")
	}
	got := h.keys()
	got[0].Name = "changed"
	if h.keys()[0].Name != "ws-0" {
		t.Error("a decoded copy changed what is held")
	}
}

func fullSlice() []octopodsv1alpha1.SlicedKey {
	var keys []octopodsv1alpha1.SlicedKey
	for i := range keyslice.KeysPerSlice {
		name := fmt.Sprintf("ws-%06d", i)
		keys = append(keys, octopodsv1alpha1.SlicedKey{Kind: octopodsv1alpha1.WorkspaceKey.Kind, Name: name, Owner: name,
			Scope:         octopodsv1alpha1.KeyScope{Type: octopodsv1alpha1.KeyTypeWorkspace, Workspace: name},
			PublishedKeys: []octopodsv1alpha1.PublishedKey{{KeyID: fmt.Sprintf("%012x", i*7919), Digest: fmt.Sprintf("sha256:%064x", i*104729)}}})
	}
	return keys
}

// What the slice writer pays to hold a slice it wrote, and to read it back.
func BenchmarkHeldSlice(b *testing.B) {
	keys := fullSlice()
	b.Run("hold", func(b *testing.B) {
		for b.Loop() {
			if _, err := newHeldSlice("1", keys); err != nil {
				b.Fatal(err)
			}
		}
	})
	h, _ := newHeldSlice("1", keys)
	b.ReportMetric(float64(h.packed.Size())/float64(len(keys)), "packed-B/entry")
	b.Run("keys", func(b *testing.B) {
		for b.Loop() {
			_ = h.keys()
		}
	})
}

func TestEntryOfKeepsAnEarlyEntryUntilTheCacheShowsIt(t *testing.T) {
	ref := keyslice.Ref{Kind: octopodsv1alpha1.WorkspaceKey.Kind, Name: "acme"}
	entry := func(digests ...string) octopodsv1alpha1.SlicedKey {
		e := octopodsv1alpha1.SlicedKey{Kind: ref.Kind, Name: ref.Name, Owner: ref.Name,
			Scope: octopodsv1alpha1.KeyScope{Type: octopodsv1alpha1.KeyTypeWorkspace, Workspace: ref.Name}}
		for _, d := range digests {
			e.PublishedKeys = append(e.PublishedKeys, octopodsv1alpha1.PublishedKey{KeyID: d, Digest: d})
		}
		return e
	}
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		cached     octopodsv1alpha1.SlicedKey
		cachedOK   bool
		gone       bool
		after      time.Duration
		withdrawn  bool
		want       []string // published digests of the entry a sync writes (nil: none)
		earlyAfter bool     // the early entry is still kept
	}{
		{name: "the cache has no status yet", want: []string{"new"}, earlyAfter: true},
		{name: "the cached status still publishes the key before", cached: entry("old"), cachedOK: true, want: []string{"new"}, earlyAfter: true},
		{name: "the cached status caught up", cached: entry("new"), cachedOK: true, want: []string{"new"}},
		{name: "the cached status went further", cached: entry("new", "prev"), cachedOK: true, want: []string{"new", "prev"}},
		{name: "the key object is being deleted", gone: true},
		{name: "expired: its status write never landed", after: earlyMemory + time.Second},
		{name: "withdrawn before a later Secret write", withdrawn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := &sliceSpace{}
			sp.publishEarly(entry("new"), at)
			if !sp.takeChanged()[ref] {
				t.Error("an early entry does not mark its key object changed")
			}
			if tc.withdrawn {
				sp.forgetEarly(ref)
			}
			got, ok := sp.entryOf(ref, tc.cached, tc.cachedOK, tc.gone, at.Add(tc.after))
			var digests []string
			for _, p := range got.PublishedKeys {
				digests = append(digests, p.Digest)
			}
			if !ok {
				digests = nil
			}
			if fmt.Sprint(digests) != fmt.Sprint(tc.want) {
				t.Errorf("a sync writes %v, want %v", digests, tc.want)
			}
			if _, kept := sp.early[ref]; kept != tc.earlyAfter {
				t.Errorf("early entry kept: %t, want %t", kept, tc.earlyAfter)
			}
		})
	}
}
