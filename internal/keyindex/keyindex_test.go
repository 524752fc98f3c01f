package keyindex

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/octopods/octopods-operator/internal/apikey"
)

func mustKey(t testing.TB) string {
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLookup(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	current, previous, expired, unknown := mustKey(t), mustKey(t), mustKey(t), mustKey(t)
	ix := New()
	ix.Set(Keys{Namespace: "team-a", Name: "acme-api-key", Workspace: "acme",
		Current: apikey.DigestOf(current), HasCurrent: true,
		Previous: apikey.DigestOf(previous), HasPrevious: true, PreviousValidUntil: now.Add(time.Minute)})
	ix.Set(Keys{Namespace: "team-b", Name: "globex-api-key", Workspace: "globex",
		Current: apikey.DigestOf(mustKey(t)), HasCurrent: true,
		Previous: apikey.DigestOf(expired), HasPrevious: true, PreviousValidUntil: now})
	ix.Set(Keys{Namespace: "team-c", Name: "unbounded", Workspace: "initech",
		Current: apikey.DigestOf(mustKey(t)), HasCurrent: true,
		Previous: apikey.DigestOf(unknown), HasPrevious: true}) // no expiry: never accepted

	acme := Identity{Namespace: "team-a", Workspace: "acme"}
	cases := []struct {
		name string
		key  string
		want Result
		who  Identity
	}{
		{"current", current, Allowed, Identity{Namespace: "team-a", Workspace: "acme", Name: "acme-api-key", KeyID: apikey.ID(current), Type: TypeWorkspace}},
		{"previous within grace", previous, Allowed, Identity{Namespace: acme.Namespace, Workspace: acme.Workspace, Name: "acme-api-key", KeyID: apikey.ID(previous), Type: TypeWorkspace}},
		{"previous at its expiry", expired, Invalid, Identity{}},
		{"previous without expiry", unknown, Invalid, Identity{}},
		{"unknown", mustKey(t), Invalid, Identity{}},
		{"empty", "", Missing, Identity{}},
		{"malformed", "opk_short", Invalid, Identity{}},
		{"bad checksum", current[:52] + string("0123456789"[(int(current[52])+1)%10]), Invalid, Identity{}},
		{"bearer", "Bearer " + current, Invalid, Identity{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, who := ix.Lookup(tc.key, now)
			if got != tc.want || who != tc.who {
				t.Fatalf("Lookup = %v %+v, want %v %+v", got, who, tc.want, tc.who)
			}
		})
	}
}

func TestSetReplacesAndDeleteForgets(t *testing.T) {
	now := time.Now()
	first, second := mustKey(t), mustKey(t)
	ix := New()
	ix.Set(Keys{Namespace: "ns", Name: "s", Workspace: "acme", Current: apikey.DigestOf(first), HasCurrent: true})
	ix.Set(Keys{Namespace: "ns", Name: "s", Workspace: "acme", Current: apikey.DigestOf(second), HasCurrent: true})
	if r, _ := ix.Lookup(first, now); r != Invalid {
		t.Fatal("a rotated-away key (no grace) must stop working")
	}
	if r, _ := ix.Lookup(second, now); r != Allowed {
		t.Fatal("the new key must work")
	}
	if ix.Len() != 1 {
		t.Fatalf("Len = %d", ix.Len())
	}
	ix.Delete("ns", "workspace", "s")
	if r, _ := ix.Lookup(second, now); r != Invalid {
		t.Fatal("a deleted Secret's key must stop working")
	}
	if ix.Len() != 0 || len(ix.byKey) != 0 || len(ix.namespaces) != 0 {
		t.Fatalf("leftovers after delete: %d digests, %d namespaces", ix.Len(), len(ix.byKey))
	}
}

// A key that two objects publish works for neither (which is the owner
// cannot be told), is reported, and works again for the one left.
func TestAKeyPublishedTwiceWorksForNeither(t *testing.T) {
	k := mustKey(t)
	ix := New()
	var reported []string
	ix.OnShared = func(first, second Identity, keyID string) {
		reported = append(reported, first.Namespace+"/"+first.Workspace+" "+second.Namespace+"/"+second.Workspace+" "+keyID)
	}
	ix.Set(Keys{Namespace: "ns", Name: "original", Workspace: "acme", Current: apikey.DigestOf(k), HasCurrent: true})
	ix.Set(Keys{Namespace: "other", Name: "copy", Workspace: "evil", Current: apikey.DigestOf(k), HasCurrent: true})
	if r, who := ix.Lookup(k, time.Now()); r != Invalid {
		t.Fatalf("a key published twice resolved to %+v", who)
	}
	if !slices.Equal(reported, []string{"ns/acme other/evil " + apikey.ID(k)}) {
		t.Fatalf("reported %v", reported)
	}
	// A third publisher, then two leave: the one left has it back.
	ix.Set(Keys{Namespace: "third", Name: "c", Workspace: "c", Current: apikey.DigestOf(k), HasCurrent: true})
	ix.Delete("other", "workspace", "copy")
	if r, _ := ix.Lookup(k, time.Now()); r != Invalid {
		t.Fatal("still published by two")
	}
	ix.Delete("third", "workspace", "c")
	if r, who := ix.Lookup(k, time.Now()); r != Allowed || who.Workspace != "acme" {
		t.Fatalf("after the copies went: %v %+v", r, who)
	}
	ix.Delete("ns", "workspace", "original")
	if ix.Len() != 0 || len(ix.sharers) != 0 {
		t.Fatalf("leftovers: %d digests, %d shared", ix.Len(), len(ix.sharers))
	}
}

func TestUsageIsPendingOnceUntilUsedAgain(t *testing.T) {
	k := mustKey(t)
	ix := New()
	ix.Set(Keys{Namespace: "ns", Name: "s", Workspace: "acme", Current: apikey.DigestOf(k), HasCurrent: true})
	if p := ix.Pending(); len(p) != 0 {
		t.Fatalf("pending before any use: %v", p)
	}
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 1000 {
		ix.Lookup(k, t0.Add(time.Duration(i)*time.Millisecond))
	}
	p := ix.Pending()
	if len(p) != 1 || p[0].Workspace != "acme" || !p[0].LastUsed.Equal(t0) {
		t.Fatalf("pending = %+v", p)
	}
	if again := ix.Pending(); len(again) != 1 {
		t.Fatal("a use not yet flushed stays pending")
	}
	p[0].Flushed()
	if again := ix.Pending(); len(again) != 0 {
		t.Fatalf("flushed use still pending: %+v", again)
	}
	ix.Lookup(k, t0.Add(2*time.Second))
	if p := ix.Pending(); len(p) != 1 || !p[0].LastUsed.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("new use not pending: %+v", p)
	}
	// Rotation keeps the record: it belongs to the workspace's key.
	ix.Set(Keys{Namespace: "ns", Name: "s", Workspace: "acme", Current: apikey.DigestOf(mustKey(t)), HasCurrent: true})
	if p := ix.Pending(); len(p) != 1 {
		t.Fatalf("rotation lost the use: %+v", p)
	}
}

func TestCountsFollowTheirKeyAcrossRotation(t *testing.T) {
	first, second, third := mustKey(t), mustKey(t), mustKey(t)
	now := time.Now()
	ix := New()
	ix.Set(Keys{Namespace: "ns", Name: "s", Workspace: "acme", Current: apikey.DigestOf(first), HasCurrent: true})
	for range 3 {
		ix.Lookup(first, now)
	}
	counts := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, c := range ix.Counts() {
			out[c.KeyID] = c.Allowed
		}
		return out
	}
	if got := counts(); got[apikey.ID(first)] != 3 || len(got) != 1 {
		t.Fatalf("before rotation: %v", got)
	}
	// Rotation with grace: first becomes previous and keeps its count.
	ix.Set(Keys{Namespace: "ns", Name: "s", Workspace: "acme", Current: apikey.DigestOf(second), HasCurrent: true,
		Previous: apikey.DigestOf(first), HasPrevious: true, PreviousValidUntil: now.Add(time.Hour)})
	ix.Lookup(second, now)
	ix.Lookup(first, now)
	if got := counts(); got[apikey.ID(first)] != 4 || got[apikey.ID(second)] != 1 {
		t.Fatalf("after rotation with grace: %v", got)
	}
	// Rotation without grace: both series end, the new key starts at zero.
	ix.Set(Keys{Namespace: "ns", Name: "s", Workspace: "acme", Current: apikey.DigestOf(third), HasCurrent: true})
	if got := counts(); len(got) != 0 {
		t.Fatalf("after rotation without grace: %v", got)
	}
	// The workspace's series survives both rotations: 4 + 1, then one more.
	ix.Lookup(third, now)
	if w := ix.AllowedByWorkspace(); len(w) != 1 || w[0].Count != 6 || w[0].Workspace != "acme" {
		t.Fatalf("per workspace: %+v, want 6 for acme", w)
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	k := mustKey(t)
	ix := New()
	ix.Set(Keys{Namespace: "ns", Name: "s", Workspace: "acme", Current: apikey.DigestOf(k), HasCurrent: true})
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { ix.Lookup(k, now) }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}

func TestSyncRemovesOnlyTheUnlistedOfItsScope(t *testing.T) {
	a, b, c := mustKey(t), mustKey(t), mustKey(t)
	ix := New()
	ix.Set(Keys{Namespace: "one", Name: "gone", Workspace: "w1", Current: apikey.DigestOf(a), HasCurrent: true})
	ix.Set(Keys{Namespace: "two", Name: "other", Workspace: "w2", Current: apikey.DigestOf(b), HasCurrent: true})
	sync := ix.BeginSync()
	sync.Set(Keys{Namespace: "one", Name: "new", Workspace: "w3", Current: apikey.DigestOf(c), HasCurrent: true})
	sync.End("one", "workspace")
	now := time.Now()
	for key, want := range map[string]Result{a: Invalid, b: Allowed, c: Allowed} {
		if got, _ := ix.Lookup(key, now); got != want {
			t.Errorf("key %s: %v, want %v", apikey.ID(key), got, want)
		}
	}
	ix.BeginSync().End("", "workspace")
	if ix.Len() != 0 {
		t.Fatalf("Replace of all scopes left %d digests", ix.Len())
	}
}

// rotatedAcme is workspace acme's keys after a rotation from old to cur with
// a grace period until until.
func rotatedAcme(old, cur string, until time.Time) Keys {
	return Keys{Namespace: "ns", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(cur), HasCurrent: true,
		Previous: apikey.DigestOf(old), HasPrevious: true, PreviousValidUntil: until}
}

// After a rotation with a grace period the previous key's uses are kept
// apart from the new key's, so support can tell whether clients moved.
func TestPreviousKeyUseIsKeptApart(t *testing.T) {
	old, cur := mustKey(t), mustKey(t)
	ix := New()
	t0 := time.Unix(1_800_000_000, 0)
	ix.Set(Keys{Namespace: "ns", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(old), HasCurrent: true})
	ix.Lookup(old, t0)
	ix.Set(rotatedAcme(old, cur, t0.Add(time.Hour)))
	p := ix.Pending()
	if len(p) != 1 || !p[0].LastUsed.IsZero() || !p[0].PreviousLastUsed.Equal(t0) {
		t.Fatalf("the old key's use did not move with it: %+v", p)
	}
	p[0].Flushed()
	ix.Lookup(old, t0.Add(10*time.Second))
	ix.Lookup(cur, t0.Add(20*time.Second))
	p = ix.Pending()
	if len(p) != 1 || !p[0].LastUsed.Equal(t0.Add(20*time.Second)) || !p[0].PreviousLastUsed.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("pending = %+v", p)
	}
	p[0].Flushed()
	if again := ix.Pending(); len(again) != 0 {
		t.Fatalf("flushed uses still pending: %+v", again)
	}
}

// The old key's use written as lastUsedTime before a rotation is still
// written as previousKeyLastUsedTime after it: another status field, so
// what was flushed as the current key says nothing about it. (Carrying the
// flush mark over lost a use of the old key in the same second as its last
// flush as the current key: the audit said the previous key was never used.)
func TestPreviousKeyUseFlushedAsCurrentIsWrittenAgain(t *testing.T) {
	old, cur := mustKey(t), mustKey(t)
	ix := New()
	t0 := time.Unix(1_800_000_000, 0)
	ix.Set(Keys{Namespace: "ns", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(old), HasCurrent: true})
	ix.Lookup(old, t0)
	p := ix.Pending()
	if len(p) != 1 || !p[0].LastUsed.Equal(t0) {
		t.Fatalf("pending = %+v", p)
	}
	p[0].Flushed()
	ix.Set(rotatedAcme(old, cur, t0.Add(time.Hour)))
	ix.Lookup(old, t0.Add(500*time.Millisecond))
	p = ix.Pending()
	if len(p) != 1 || !p[0].LastUsed.IsZero() || !p[0].PreviousLastUsed.Equal(t0) {
		t.Fatalf("the old key's use in its last flushed second is not pending as the previous key's: %+v", p)
	}
	p[0].Flushed()
	if again := ix.Pending(); len(again) != 0 {
		t.Fatalf("flushed uses still pending: %+v", again)
	}
}

func TestRevokedKeysAreRefusedButReported(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	current, revoked, other := mustKey(t), mustKey(t), mustKey(t)
	ix := New()
	ix.Set(Keys{Namespace: "team-a", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(current), HasCurrent: true,
		Revoked: []apikey.Digest{apikey.DigestOf(other), apikey.DigestOf(revoked)}})

	got, who := ix.Lookup(revoked, now)
	if want := (Identity{Namespace: "team-a", Workspace: "acme", Name: "acme", KeyID: apikey.ID(revoked), Type: TypeWorkspace}); got != Revoked || who != want {
		t.Fatalf("Lookup(revoked) = %v %+v, want Revoked %+v", got, who, want)
	}
	if p := ix.Pending(); len(p) != 0 {
		t.Fatalf("a lookup alone is not a sighting yet: %+v", p)
	}
	// 100 attempts over two seconds, from two clients: one sighting pending,
	// the first of the latest second (attempt 50).
	for i := range 100 {
		at := now.Add(time.Duration(i) * 20 * time.Millisecond)
		if r, _ := ix.Lookup(revoked, at); r != Revoked {
			t.Fatalf("attempt %d: %v", i, r)
		}
		ix.SawRevoked(revoked, []string{"10.2.3.4", "10.9.9.9"}[i%2], at)
	}
	ix.SawRevoked(revoked, "10.0.0.1", now) // older: ignored
	p := ix.Pending()
	if len(p) != 1 || p[0].RevokedUse == nil || !p[0].LastUsed.IsZero() {
		t.Fatalf("pending %+v, want one revoked-key sighting and no use", p)
	}
	if s := *p[0].RevokedUse; !s.Time.Equal(now.Add(time.Second)) || s.KeyID != apikey.ID(revoked) || s.ClientAddress != "10.2.3.4" {
		t.Fatalf("sighting %+v, want the latest second's, from 10.2.3.4", s)
	}
	p[0].Flushed()
	if p := ix.Pending(); len(p) != 0 {
		t.Fatalf("flushed sighting pending again: %+v", p)
	}
	if c := ix.RevokedPresented(); len(c) != 1 || c[0].Count != 101 || c[0].Workspace != "acme" {
		t.Fatalf("RevokedPresented = %+v, want 101 for acme", c)
	}

	// The current key still works; a key revoked nowhere is merely invalid;
	// once the status forgets the revoked key, it is merely invalid too.
	if r, _ := ix.Lookup(current, now); r != Allowed {
		t.Fatalf("current key: %v", r)
	}
	if r, who := ix.Lookup(mustKey(t), now); r != Invalid || who != (Identity{}) {
		t.Fatalf("unknown key: %v %+v", r, who)
	}
	ix.Set(Keys{Namespace: "team-a", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(current), HasCurrent: true})
	if r, _ := ix.Lookup(revoked, now); r != Invalid {
		t.Fatalf("forgotten revoked key: %v", r)
	}
	if c := ix.RevokedPresented(); len(c) != 1 || c[0].Count != 101 {
		t.Fatalf("the counter survives an update of the key: %+v", c)
	}
	ix.Set(Keys{Namespace: "team-a", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(current), HasCurrent: true, Revoked: []apikey.Digest{apikey.DigestOf(revoked)}})
	ix.Delete("team-a", "workspace", "acme")
	if r, _ := ix.Lookup(revoked, now); r != Invalid {
		t.Fatalf("revoked key of a deleted WorkspaceAPIKey: %v", r)
	}
}

func TestLastUsedIsCoarsenedForKeysInConstantUse(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	key, next := mustKey(t), mustKey(t)
	ix := New()
	ix.Set(Keys{Namespace: "ns", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(key), HasCurrent: true})
	flush := func(at time.Time) []Usage {
		p := ix.PendingAt(at, time.Hour)
		for _, u := range p {
			u.Flushed()
		}
		return p
	}
	ix.Lookup(key, t0)
	if p := flush(t0.Add(time.Minute)); len(p) != 1 || !p[0].LastUsed.Equal(t0) {
		t.Fatalf("first use: %+v", p)
	}
	ix.Lookup(key, t0.Add(30*time.Minute))
	if p := flush(t0.Add(31 * time.Minute)); len(p) != 0 {
		t.Fatalf("a use 30 minutes after a recorded one is not written yet: %+v", p)
	}
	ix.Lookup(key, t0.Add(61*time.Minute))
	if p := flush(t0.Add(62 * time.Minute)); len(p) != 1 || !p[0].LastUsed.Equal(t0.Add(61*time.Minute)) {
		t.Fatalf("an hour after the recorded use, the latest use is written: %+v", p)
	}

	// Another replica recorded a use: the watch brings it, nothing to write.
	ix.Set(Keys{Namespace: "ns", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(key), HasCurrent: true, LastUsed: t0.Add(3 * time.Hour)})
	ix.Lookup(key, t0.Add(3*time.Hour+time.Minute))
	if p := flush(t0.Add(3*time.Hour + 2*time.Minute)); len(p) != 0 {
		t.Fatalf("another replica's recent record: %+v", p)
	}

	// After a rotation with grace, the new key's first use is written at
	// once, and the previous key's every flush.
	ix.Set(Keys{Namespace: "ns", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(next), HasCurrent: true,
		Previous: apikey.DigestOf(key), HasPrevious: true, PreviousValidUntil: t0.Add(5 * time.Hour)})
	ix.Lookup(next, t0.Add(3*time.Hour+3*time.Minute))
	ix.Lookup(key, t0.Add(3*time.Hour+3*time.Minute))
	p := flush(t0.Add(3*time.Hour + 4*time.Minute))
	if len(p) != 1 || p[0].LastUsed.IsZero() || p[0].PreviousLastUsed.IsZero() {
		t.Fatalf("after rotation: %+v", p)
	}
	ix.Lookup(key, t0.Add(3*time.Hour+5*time.Minute))
	if p := flush(t0.Add(3*time.Hour + 6*time.Minute)); len(p) != 1 || p[0].PreviousLastUsed.IsZero() {
		t.Fatalf("the previous key's uses are not coarsened: %+v", p)
	}
}

// BenchmarkLastUsedWritesAtScale simulates keys in constant use (each used
// every minute) for three hours of one-minute flushes, and reports the
// status writes a second one replica makes, scaled to 100,000 keys, with
// the shipped one-hour refresh and with the baseline (every flush).
func BenchmarkLastUsedWritesAtScale(b *testing.B) {
	const keys, flushes = 10_000, 180
	ids := make([]string, keys)
	for i := range ids {
		ids[i] = mustKey(b)
	}
	simulate := func(refresh time.Duration) float64 {
		ix := New()
		for i, k := range ids {
			ix.Set(Keys{Namespace: "ns", Name: fmt.Sprint("ws-", i), Workspace: fmt.Sprint("ws-", i), Current: apikey.DigestOf(k), HasCurrent: true})
		}
		t0 := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
		writes := 0
		for f := 1; f <= flushes; f++ {
			at := t0.Add(time.Duration(f) * time.Minute)
			for i, k := range ids {
				ix.Lookup(k, at.Add(-time.Duration(i%60)*time.Second))
			}
			for _, u := range ix.PendingAt(at, refresh) {
				u.Flushed()
				writes++
			}
		}
		return float64(writes) / (flushes * 60) * (100_000 / keys)
	}
	for b.Loop() {
		coarse, every := simulate(time.Hour), simulate(0)
		b.ReportMetric(coarse, "writes/s@100k")
		b.ReportMetric(every, "baseline-writes/s@100k")
		b.ReportMetric(coarse/every, "ratio")
	}
}

// TestKeyTypesShareOneIndex: a workspace key, a channel key and a WhatsApp
// key may have the same object name; each is its own entry, a full list of
// one type leaves the others alone, and counts per workspace add up.
func TestKeyTypesShareOneIndex(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	ws, ch, wa := mustKey(t), mustKey(t), mustKey(t)
	ix := New()
	ix.Set(Keys{Namespace: "ns", Name: "acme", Workspace: "acme", Scope: Scope{Type: "workspace"}, Current: apikey.DigestOf(ws), HasCurrent: true})
	ix.Set(Keys{Namespace: "ns", Name: "acme", Workspace: "acme", Scope: Scope{Type: "channel", ChannelType: "SMS"}, Current: apikey.DigestOf(ch), HasCurrent: true})
	ix.Set(Keys{Namespace: "ns", Name: "acme", Workspace: "acme", Scope: Scope{Type: "whatsapp"}, Current: apikey.DigestOf(wa), HasCurrent: true})
	for key, want := range map[string]Scope{
		ws: {Type: "workspace"},
		ch: {Type: "channel", ChannelType: "SMS"},
		wa: {Type: "whatsapp"},
	} {
		if got, who := ix.Lookup(key, now); got != Allowed || (Scope{Type: who.Type, ChannelType: who.ChannelType}) != want || who.Name != "acme" {
			t.Errorf("Lookup = %v %+v, want Allowed with %+v", got, who, want)
		}
	}
	if n := ix.AllowedByWorkspace(); len(n) != 1 || n[0].Count != 3 {
		t.Errorf("AllowedByWorkspace = %+v, want one workspace with 3", n)
	}
	ix.BeginSync().End("ns", "channel") // a channel list that found none
	if got, _ := ix.Lookup(ch, now); got != Invalid {
		t.Errorf("the channel key survived its type's empty list: %v", got)
	}
	for _, k := range []string{ws, wa} {
		if got, _ := ix.Lookup(k, now); got != Allowed {
			t.Errorf("a channel list removed a key of another type: %v", got)
		}
	}
	ix.Delete("ns", "whatsapp", "acme")
	if got, _ := ix.Lookup(wa, now); got != Invalid {
		t.Errorf("deleted WhatsApp key still admitted")
	}
	if got, _ := ix.Lookup(ws, now); got != Allowed {
		t.Errorf("deleting the WhatsApp key removed the workspace key")
	}
}

func TestWithdrawnDigestsAreRefusedWhateverAnEntryPublishes(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	current, previous, other := mustKey(t), mustKey(t), mustKey(t)
	ix := New()
	ix.Set(Keys{Namespace: "team-a", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(current), HasCurrent: true,
		Previous: apikey.DigestOf(previous), HasPrevious: true, PreviousValidUntil: now.Add(time.Hour)})
	ix.Set(Keys{Namespace: "team-b", Name: "other", Workspace: "other", Current: apikey.DigestOf(other), HasCurrent: true})

	lookups := func() []Result {
		var out []Result
		for _, k := range []string{current, previous, other} {
			r, _ := ix.Lookup(k, now)
			out = append(out, r)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		do   func()
		want []Result
	}{
		{name: "nothing withdrawn", do: func() {}, want: []Result{Allowed, Allowed, Allowed}},
		{name: "the previous key withdrawn in its grace period", do: func() { ix.SetWithdrawn("team-a", []apikey.Digest{apikey.DigestOf(previous)}) },
			want: []Result{Allowed, Revoked, Allowed}},
		{name: "the current key too, replacing team-a's list", do: func() {
			ix.SetWithdrawn("team-a", []apikey.Digest{apikey.DigestOf(current), apikey.DigestOf(previous)})
		}, want: []Result{Revoked, Revoked, Allowed}},
		{name: "another namespace listing a digest of team-a", do: func() { ix.SetWithdrawn("team-b", []apikey.Digest{apikey.DigestOf(current)}) },
			want: []Result{Revoked, Revoked, Allowed}},
		{name: "team-a's list dropped: team-b's still refuses its digest", do: func() { ix.SetWithdrawn("team-a", nil) },
			want: []Result{Revoked, Allowed, Allowed}},
		{name: "a relist that brings team-a's only", do: func() {
			s := ix.BeginSync()
			s.Set(Keys{Namespace: "team-a", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(current), HasCurrent: true,
				Previous: apikey.DigestOf(previous), HasPrevious: true, PreviousValidUntil: now.Add(time.Hour)})
			s.Set(Keys{Namespace: "team-b", Name: "other", Workspace: "other", Current: apikey.DigestOf(other), HasCurrent: true})
			s.SetWithdrawn("team-a", []apikey.Digest{apikey.DigestOf(previous)})
			s.EndWithdrawn("")
		}, want: []Result{Allowed, Revoked, Allowed}},
		{name: "a relist of team-b alone keeps team-a's", do: func() { ix.BeginSync().EndWithdrawn("team-b") },
			want: []Result{Allowed, Revoked, Allowed}},
	} {
		tc.do()
		if got := lookups(); !slices.Equal(got, tc.want) {
			t.Fatalf("%s: current, previous, other = %v, want %v", tc.name, got, tc.want)
		}
	}
	if r, who := ix.Lookup(previous, now); r != Revoked || who.Name != "acme" || who.KeyID != apikey.ID(previous) {
		t.Fatalf("a withdrawn key is reported as its object's: %v %+v", r, who)
	}
	if m, who := ix.Reported(apikey.DigestOf(previous)); m != MatchRevoked || who.Name != "acme" {
		t.Fatalf("a withdrawn key reported leaked: %v %+v, want MatchRevoked as acme's", m, who)
	}
	if m, _ := ix.Reported(apikey.DigestOf(current)); m != MatchCurrent {
		t.Fatalf("the current key reported leaked: %v, want MatchCurrent", m)
	}
	if !ix.SawRevoked(previous, "10.0.0.1", now) {
		t.Fatal("an attempt with a withdrawn key is not kept for status.lastRevokedKeyUse")
	}
	if n := testing.AllocsPerRun(1000, func() { ix.Lookup(current, now) }); n != 0 {
		t.Fatalf("Lookup allocates %.1f times with a withdrawal listed", n)
	}
}
