package keyslice

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// published is what the proxy's index gets of k through a slice: the
// manager's Entry, then the proxy's Keys.
func published(k octopodsv1alpha1.KeyObject, now time.Time) keyindex.Keys {
	e, ok := Entry(k)
	if !ok {
		return keyindex.Keys{}
	}
	return Keys(k.GetNamespace(), &e, now)
}

// The translation, both ways, that the proxy's list of key objects used to
// do in one step (TestPublishedKeys before slices).
func TestEntryThenKeys(t *testing.T) {
	now := time.Now()
	cur, prev := testutil.NewKey(t), testutil.NewKey(t)
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
			got := published(k, now)
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

func TestEntryThenKeysRevoked(t *testing.T) {
	now := time.Now()
	recent, old := testutil.NewKey(t), testutil.NewKey(t)
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
	if got := published(k, now).Revoked; len(got) != 1 || got[0] != apikey.DigestOf(recent) {
		t.Fatalf("revoked %v: want only the recent, well-formed one", got)
	}
	k.DeletionTimestamp = &metav1.Time{Time: now}
	if got := published(k, now).Revoked; len(got) != 0 {
		t.Fatalf("a key being deleted forgets its revoked keys: %v", got)
	}
}
