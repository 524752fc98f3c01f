package keyslice

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

func entry(name string, digests ...string) octopodsv1alpha1.SlicedKey {
	e := octopodsv1alpha1.SlicedKey{Kind: octopodsv1alpha1.WorkspaceKey.Kind, Name: name, Owner: name, Scope: octopodsv1alpha1.KeyScope{Type: "workspace", Workspace: name}}
	for _, d := range digests {
		e.PublishedKeys = append(e.PublishedKeys, octopodsv1alpha1.PublishedKey{KeyID: d, Digest: d})
	}
	return e
}

func names(keys []octopodsv1alpha1.SlicedKey) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.Name)
	}
	return out
}

func want(entries ...octopodsv1alpha1.SlicedKey) map[Ref]octopodsv1alpha1.SlicedKey {
	m := map[Ref]octopodsv1alpha1.SlicedKey{}
	for _, e := range entries {
		m[RefOf(&e)] = e
	}
	return m
}

// describe renders a packing as "name:[a b] new:[c] -gone".
func describe(p Packing) string {
	out := ""
	for _, s := range p.Write {
		name := s.Name
		if name == "" {
			name = "new"
		}
		out += fmt.Sprintf("%s:%v ", name, names(s.Keys))
	}
	for _, d := range p.Delete {
		out += "-" + d + " "
	}
	return out
}

func TestPack(t *testing.T) {
	a, b, c, d, e := entry("a", "1"), entry("b", "2"), entry("c", "3"), entry("d", "4"), entry("e", "5")
	a2 := entry("a", "9")
	cases := []struct {
		name     string
		existing []Slice
		desired  map[Ref]octopodsv1alpha1.SlicedKey
		want     string
	}{
		{"nothing to do", []Slice{{"s1", []octopodsv1alpha1.SlicedKey{a, b}}}, want(a, b), ""},
		{"first keys fill new slices of 2", nil, want(a, b, c), "new:[a b] new:[c] "},
		{"a changed entry rewrites its slice only", []Slice{{"s1", []octopodsv1alpha1.SlicedKey{a, b}}, {"s2", []octopodsv1alpha1.SlicedKey{c}}}, want(a2, b, c), "s1:[a b] "},
		{"a new key goes to a slice written anyway", []Slice{{"s1", []octopodsv1alpha1.SlicedKey{a}}, {"s2", []octopodsv1alpha1.SlicedKey{c}}}, want(a2, c, d), "s1:[a d] "},
		{"else to the fullest slice with room", []Slice{{"s1", []octopodsv1alpha1.SlicedKey{a, b}}, {"s2", []octopodsv1alpha1.SlicedKey{c}}}, want(a, b, c, d), "s2:[c d] "},
		{"a key gone leaves its slice; an emptied slice is deleted", []Slice{{"s1", []octopodsv1alpha1.SlicedKey{a, b}}, {"s2", []octopodsv1alpha1.SlicedKey{c}}}, want(a), "s1:[a] -s2 "},
		{"keys never move between slices", []Slice{{"s1", []octopodsv1alpha1.SlicedKey{a}}, {"s2", []octopodsv1alpha1.SlicedKey{c}}}, want(a, c, d, e), "s1:[a d] s2:[c e] "},
		{"a key in two slices stays in the first", []Slice{{"s2", []octopodsv1alpha1.SlicedKey{a, c}}, {"s1", []octopodsv1alpha1.SlicedKey{a}}}, want(a, c), "s2:[c] s1:[a] "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(Pack(tc.existing, tc.desired, nil, 2)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// A burst of 10,000 new keys in a namespace with 500 a slice is 20 writes.
func TestPackABurst(t *testing.T) {
	desired := map[Ref]octopodsv1alpha1.SlicedKey{}
	for i := range 10_000 {
		e := entry(fmt.Sprint("ws-", i), "d")
		desired[RefOf(&e)] = e
	}
	p := Pack(nil, desired, nil, 500)
	if len(p.Write) != 20 || len(p.Delete) != 0 {
		t.Fatalf("%d writes, %d deletes; want 20 new slices", len(p.Write), len(p.Delete))
	}
	again := Pack(p.Write, desired, nil, 500) // written: nothing more to do
	if len(again.Write)+len(again.Delete) != 0 {
		t.Fatalf("a second pass writes %s", describe(again))
	}
}

func TestWithdraw(t *testing.T) {
	now := time.Now()
	e := entry("a", "cur", "prev")
	e.PublishedKeys[1].ValidUntil = nil
	if Withdraw(&e, func(string) bool { return true }, now) {
		t.Fatal("nothing to withdraw, yet something was")
	}
	if !Withdraw(&e, func(d string) bool { return d == "cur" }, now) {
		t.Fatal("prev not withdrawn")
	}
	if len(e.PublishedKeys) != 1 || e.PublishedKeys[0].Digest != "cur" || len(e.RevokedKeys) != 1 || e.RevokedKeys[0].Digest != "prev" {
		t.Fatalf("after withdrawing prev: %+v", e)
	}
	stale := entry("a", "cur", "prev") // a cached status that still publishes prev
	Without(&stale, map[string]time.Time{"prev": now})
	if got := slices.Collect(func(yield func(string) bool) {
		for _, p := range stale.PublishedKeys {
			yield(p.Digest)
		}
	}); !slices.Equal(got, []string{"cur"}) || len(stale.RevokedKeys) != 1 {
		t.Fatalf("a withdrawn digest came back from a stale status: %+v", stale)
	}
}

// The incremental pass: only the changed entries are looked up; a slice
// holding none of them is left alone, however its entries differ from
// what desired would say; a changed entry gone leaves its slice; a new one
// is placed as in a full pass.
func TestPackChangedOnly(t *testing.T) {
	a, b, c, d := entry("a", "1"), entry("b", "2"), entry("c", "3"), entry("d", "4")
	a2, c2 := entry("a", "9"), entry("c", "8")
	existing := []Slice{{"s1", []octopodsv1alpha1.SlicedKey{a, b}}, {"s2", []octopodsv1alpha1.SlicedKey{c}}}
	cases := []struct {
		name    string
		desired map[Ref]octopodsv1alpha1.SlicedKey
		changed []string
		want    string
	}{
		{"one entry changed: its slice only", want(a2), []string{"a"}, "s1:[a b] "},
		{"an entry gone", want(), []string{"b"}, "s1:[a] "},
		{"a new entry, to the slice with room", want(d), []string{"d"}, "s2:[c d] "},
		{"unchanged entries are not looked up", want(c2), []string{"d"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			changed := map[Ref]bool{}
			for _, n := range tc.changed {
				changed[Ref{Kind: octopodsv1alpha1.WorkspaceKey.Kind, Name: n}] = true
			}
			if got := describe(Pack(existing, tc.desired, changed, 2)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// The manager's incremental sync leaves out, undecoded, the slices that
// are full and hold no changed entry (controllers' heldSlice): Pack must
// write the same with and without them.
func TestPackChangedOnlyNeedsNoFullQuietSlice(t *testing.T) {
	const perSlice = 3
	rng := rand.New(rand.NewPCG(1, 2))
	ref := func(n int) Ref { return Ref{Kind: octopodsv1alpha1.WorkspaceKey.Kind, Name: fmt.Sprint(n)} }
	for round := range 2000 {
		var existing []Slice
		next := 0
		for s := range 1 + rng.IntN(5) {
			sl := Slice{Name: fmt.Sprintf("s%d", s)}
			for range rng.IntN(perSlice + 1) {
				sl.Keys = append(sl.Keys, entry(fmt.Sprint(next), "1"))
				next++
			}
			existing = append(existing, sl)
		}
		changed, desired := map[Ref]bool{}, map[Ref]octopodsv1alpha1.SlicedKey{}
		for range 1 + rng.IntN(3) {
			n := rng.IntN(next + 3) // some new
			changed[ref(n)] = true
			if rng.IntN(3) > 0 { // else gone
				desired[ref(n)] = entry(fmt.Sprint(n), "2")
			}
		}
		var needed []Slice
		for _, s := range existing {
			if len(s.Keys) < perSlice || slices.ContainsFunc(s.Keys, func(e octopodsv1alpha1.SlicedKey) bool { return changed[RefOf(&e)] }) {
				needed = append(needed, s)
			}
		}
		all, some := describe(Pack(existing, desired, changed, perSlice)), describe(Pack(needed, desired, changed, perSlice))
		if all != some {
			t.Fatalf("round %d: with every slice %q, without the full quiet ones %q", round, all, some)
		}
	}
}
