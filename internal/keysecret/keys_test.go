package keysecret

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
)

func TestSetNewKeyRemembersTokens(t *testing.T) {
	s := &corev1.Secret{}
	now := time.Now()
	for _, token := range []string{"", "T1", "T2", "T2", "T3"} {
		id, err := SetNewKey(s, apikey.Prefix, token, now)
		if err != nil || id != apikey.ID(string(s.Data[octopodsv1alpha1.SecretKeyAPIKey])) || s.Annotations[octopodsv1alpha1.KeyIDAnnotation] != id {
			t.Fatalf("token %q: id %s, %v", token, id, err)
		}
	}
	var history []string
	if err := json.Unmarshal([]byte(s.Annotations[octopodsv1alpha1.RotationTokenHistoryAnnotation]), &history); err != nil {
		t.Fatal(err)
	}
	if s.Annotations[octopodsv1alpha1.RotationTokenAnnotation] != "T3" || len(history) != 3 || history[0] != "T1" || history[2] != "T3" {
		t.Fatalf("token %q, history %v", s.Annotations[octopodsv1alpha1.RotationTokenAnnotation], history)
	}
}

func TestObserveAndHolds(t *testing.T) {
	cur, prev, other := mustKey(t), mustKey(t), mustKey(t)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{octopodsv1alpha1.KeyIDAnnotation: apikey.ID(cur), octopodsv1alpha1.RotationTokenAnnotation: "T2",
			octopodsv1alpha1.RotationTokenHistoryAnnotation: `["T1","T2"]`}},
		Data: map[string][]byte{octopodsv1alpha1.SecretKeyAPIKey: []byte(cur), octopodsv1alpha1.SecretKeyPreviousAPIKey: []byte(prev)},
	}
	published := []octopodsv1alpha1.PublishedKey{PublishedKey(cur, nil)}
	o := Observe(s, published)
	if !o.Intact() || !o.KeyPublished || o.PreviousPublished || !o.Handled("T1") || o.Handled("T3") {
		t.Fatalf("%+v", o)
	}
	for key, want := range map[string]bool{cur: true, prev: true, other: false} {
		if Holds(s, apikey.DigestOf(key).String()) != want {
			t.Errorf("Holds(%s) != %v", apikey.ID(key), want)
		}
	}
	if Holds(nil, apikey.DigestOf(cur).String()) {
		t.Error("no Secret holds a key")
	}
}

func TestOwner(t *testing.T) {
	owned := &corev1.Secret{Type: octopodsv1alpha1.SecretType, ObjectMeta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{
		{APIVersion: "octopods.io/v1alpha1", Kind: "WorkspaceAPIKey", Name: "globex", UID: "u", Controller: ptr.To(true)}}}}
	if got := Owner(owned); got != `belongs to WorkspaceAPIKey "globex"` {
		t.Fatal(got)
	}
	if got := Owner(&corev1.Secret{}); got != "is not managed by octopods-operator" {
		t.Fatal(got)
	}
}

func mustKey(t *testing.T) string {
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRevoke(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	keys := make([]string, 8)
	for i := range keys {
		keys[i] = mustKey(t)
	}
	pub := func(n int) octopodsv1alpha1.PublishedKey {
		d := apikey.DigestOf(keys[n])
		return octopodsv1alpha1.PublishedKey{KeyID: d.ID(), Digest: d.String()}
	}
	rev := func(n int, at time.Time) octopodsv1alpha1.RevokedKey {
		p := pub(n)
		return octopodsv1alpha1.RevokedKey{KeyID: p.KeyID, Digest: p.Digest, RevokedAt: metav1.Time{Time: at}}
	}
	list := func(p ...octopodsv1alpha1.PublishedKey) []octopodsv1alpha1.PublishedKey { return p }
	revs := func(r ...octopodsv1alpha1.RevokedKey) []octopodsv1alpha1.RevokedKey { return r }
	day := 24 * time.Hour
	for _, tc := range []struct {
		name          string
		revoked       []octopodsv1alpha1.RevokedKey
		before, after []octopodsv1alpha1.PublishedKey
		want          []octopodsv1alpha1.RevokedKey
	}{
		{name: "nothing unpublished", before: list(pub(1)), after: list(pub(1))},
		{name: "rotated with grace: both still published", before: list(pub(1)), after: list(pub(2), pub(1))},
		{name: "grace-0 rotation revokes the old key", before: list(pub(1)), after: list(pub(2)), want: revs(rev(1, now))},
		{name: "grace over revokes the previous key", before: list(pub(2), pub(1)), after: list(pub(2)), want: revs(rev(1, now))},
		{name: "a revocation keeps its first time", revoked: revs(rev(1, now.Add(-time.Hour))), before: list(pub(1)), after: nil, want: revs(rev(1, now.Add(-time.Hour)))},
		{name: "newest first", revoked: revs(rev(1, now.Add(-day))), before: list(pub(2)), after: list(pub(3)), want: revs(rev(2, now), rev(1, now.Add(-day)))},
		{name: "published again: no longer revoked", revoked: revs(rev(1, now.Add(-time.Minute))), after: list(pub(1))},
		{
			name: "at most five", revoked: revs(rev(1, now.Add(-1*day)), rev(2, now.Add(-2*day)), rev(3, now.Add(-3*day)), rev(4, now.Add(-4*day)), rev(5, now.Add(-5*day))),
			before: list(pub(6)), after: list(pub(7)),
			want: revs(rev(6, now), rev(1, now.Add(-1*day)), rev(2, now.Add(-2*day)), rev(3, now.Add(-3*day)), rev(4, now.Add(-4*day))),
		},
		{name: "dropped after 30 days", revoked: revs(rev(1, now.Add(-29*day)), rev(2, now.Add(-30*day))), want: revs(rev(1, now.Add(-29*day)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Revoke(tc.revoked, tc.before, tc.after, func(string) *metav1.Time { return nil }, now)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d revoked keys %v, want %v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i].Digest != tc.want[i].Digest || got[i].KeyID != tc.want[i].KeyID || !got[i].RevokedAt.Equal(&tc.want[i].RevokedAt) {
					t.Errorf("[%d] = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
	// A revoked key keeps the last admitted use recorded for it then, and
	// an older revocation keeps its own.
	used := metav1.NewTime(now.Add(-3 * time.Minute))
	lastUse := func(keyID string) *metav1.Time {
		if keyID == pub(1).KeyID {
			return &used
		}
		return nil
	}
	got := Revoke(revs(rev(5, now.Add(-day))), list(pub(1)), list(pub(2)), lastUse, now)
	if len(got) != 2 || got[0].LastUsedTime == nil || !got[0].LastUsedTime.Equal(&used) || got[1].LastUsedTime != nil {
		t.Errorf("last uses of the revoked keys: %+v", got)
	}
	if exp := RevokedKeysExpire(revs(rev(1, now), rev(2, now.Add(-day)))); !exp.Equal(now.Add(29 * day)) {
		t.Errorf("RevokedKeysExpire = %v, want the older entry's 30th day %v", exp, now.Add(29*day))
	}
}

func keys(digests ...string) []octopodsv1alpha1.PublishedKey {
	var out []octopodsv1alpha1.PublishedKey
	for _, d := range digests {
		out = append(out, octopodsv1alpha1.PublishedKey{Digest: d})
	}
	return out
}

func TestPublishesAll(t *testing.T) {
	for _, tc := range []struct {
		published, others []octopodsv1alpha1.PublishedKey
		want              bool
	}{
		{published: nil, others: nil, want: true},
		{published: keys("a"), others: nil, want: true},
		{published: nil, others: keys("a"), want: false},
		{published: keys("a", "b"), others: keys("b"), want: true},
		{published: keys("a"), others: keys("a", "b"), want: false},
	} {
		if got := PublishesAll(tc.published, tc.others); got != tc.want {
			t.Errorf("PublishesAll(%v, %v) = %t, want %t", tc.published, tc.others, got, tc.want)
		}
	}
}

func TestUnion(t *testing.T) {
	until := metav1.NewTime(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		published, others, want []octopodsv1alpha1.PublishedKey
	}{
		{published: nil, others: nil, want: nil},
		{published: keys("a"), others: nil, want: keys("a")},
		{published: nil, others: keys("a"), want: keys("a")},
		{published: keys("a"), others: keys("b", "a"), want: keys("a", "b")},
		// The status's entry wins: its validUntil is what was written.
		{published: []octopodsv1alpha1.PublishedKey{{Digest: "a", ValidUntil: &until}}, others: keys("a"),
			want: []octopodsv1alpha1.PublishedKey{{Digest: "a", ValidUntil: &until}}},
	} {
		got := Union(tc.published, tc.others)
		if !equality.Semantic.DeepEqual(got, tc.want) {
			t.Errorf("Union(%v, %v) = %v, want %v", tc.published, tc.others, got, tc.want)
		}
	}
	published := keys("a", "c")[:1]
	Union(published, keys("b"))
	if published[:2][1].Digest != "c" {
		t.Error("Union wrote into the spare capacity of its first argument")
	}
}
