package controllers

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keysecret"
)

func mustGenerate(t *testing.T) string {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestComputeKeyStatus(t *testing.T) {
	cur, prev, old := mustGenerate(t), mustGenerate(t), mustGenerate(t)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
	secret := func(withPrevious bool, until time.Time) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "acme-api-key", Annotations: map[string]string{
			octopodsv1alpha1.KeyIDAnnotation: apikey.ID(cur), octopodsv1alpha1.IssuedAtAnnotation: rfc(now),
			octopodsv1alpha1.RotatedAtAnnotation: rfc(now), octopodsv1alpha1.RotationTokenAnnotation: "T2"}},
			Data: map[string][]byte{octopodsv1alpha1.SecretKeyAPIKey: []byte(cur)}}
		if withPrevious {
			s.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey] = []byte(prev)
			s.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation] = apikey.ID(prev)
			s.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation] = rfc(until)
		}
		return s
	}
	lastUsed := metav1.NewTime(now.Add(-time.Minute))
	issued := metav1.NewTime(now.Add(-time.Hour))
	prevStatus := octopodsv1alpha1.APIKeyStatus{
		SecretName: "acme-api-key", KeyID: apikey.ID(old), IssuedAt: &issued, LastRotationToken: "T1",
		PreviousKeyID: "stale", LastUsedTime: &lastUsed, ObservedGeneration: 1,
		LastRevokedKeyUse: &octopodsv1alpha1.KeyUse{Time: lastUsed, KeyID: "979690f7253f", ClientAddress: "10.2.3.4"},
		PublishedKeys:     []octopodsv1alpha1.PublishedKey{keysecret.PublishedKey(old, nil)},
		Conditions:        []metav1.Condition{{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonKeyIssued, ObservedGeneration: 1}},
	}
	key := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Name: "acme", Generation: 2}}
	withPrevPublished := prevStatus
	withPrevPublished.PublishedKeys = []octopodsv1alpha1.PublishedKey{keysecret.PublishedKey(prev, nil)}

	cases := []struct {
		name      string
		prev      octopodsv1alpha1.APIKeyStatus
		obs       keyObservation
		succeeded bool
		check     func(t *testing.T, st octopodsv1alpha1.APIKeyStatus)
	}{
		{"failed before observing anything: everything kept, generation not stamped", prevStatus, keyObservation{}, false,
			func(t *testing.T, st octopodsv1alpha1.APIKeyStatus) {
				if st.ObservedGeneration != 1 || st.KeyID != apikey.ID(old) || len(st.PublishedKeys) != 1 {
					t.Fatalf("%+v", st)
				}
			}},
		{"issued: everything from the Secret, current key published, generation stamped", prevStatus, keyObservation{observed: true, secret: secret(false, time.Time{})}, true,
			func(t *testing.T, st octopodsv1alpha1.APIKeyStatus) {
				if st.ObservedGeneration != 2 || st.KeyID != apikey.ID(cur) || st.LastRotationToken != "T2" || st.PreviousKeyID != "" || st.LastUsedTime != &lastUsed {
					t.Fatalf("%+v", st)
				}
				if len(st.PublishedKeys) != 1 || st.PublishedKeys[0] != keysecret.PublishedKey(cur, nil) {
					t.Fatalf("published %+v", st.PublishedKeys)
				}
				if len(st.RevokedKeys) != 1 || st.RevokedKeys[0].KeyID != apikey.ID(old) || !st.RevokedKeys[0].RevokedAt.Time.Equal(now) {
					t.Fatalf("the replaced key is not recorded as revoked now: %+v", st.RevokedKeys)
				}
				if c := meta.FindStatusCondition(st.Conditions, ConditionReady); c.Status != metav1.ConditionTrue || c.ObservedGeneration != 2 {
					t.Fatalf("%+v", c)
				}
			}},
		{"a failed write never publishes the new key, and does not stamp the generation", prevStatus, keyObservation{observed: true, secret: secret(false, time.Time{})}, false,
			func(t *testing.T, st octopodsv1alpha1.APIKeyStatus) {
				if st.ObservedGeneration != 1 || len(st.PublishedKeys) != 0 {
					t.Fatalf("%+v", st)
				}
			}},
		{"conflict: no key fields of a key that no longer exists, usage and token kept", prevStatus,
			keyObservation{observed: true, readyStatus: metav1.ConditionFalse, reason: ReasonSecretConflict, message: "m"}, true,
			func(t *testing.T, st octopodsv1alpha1.APIKeyStatus) {
				if st.SecretName != "" || st.KeyID != "" || st.IssuedAt != nil || st.PreviousKeyID != "" || st.PublishedKeys != nil {
					t.Fatalf("%+v", st)
				}
				if st.LastUsedTime != &lastUsed || st.LastRevokedKeyUse != prevStatus.LastRevokedKeyUse || st.LastRotationToken != "T1" || meta.FindStatusCondition(st.Conditions, ConditionReady).Reason != ReasonSecretConflict {
					t.Fatalf("%+v", st)
				}
			}},
		{"previous key published as current before: published with its validUntil", withPrevPublished,
			keyObservation{observed: true, secret: secret(true, now.Add(time.Hour))}, true,
			func(t *testing.T, st octopodsv1alpha1.APIKeyStatus) {
				if len(st.PublishedKeys) != 2 || !st.PublishedKeys[1].ValidUntil.Time.Equal(now.Add(time.Hour)) {
					t.Fatalf("published %+v", st.PublishedKeys)
				}
			}},
		{"previous key valid until 2099: capped at rotatedAt + 24h", withPrevPublished,
			keyObservation{observed: true, secret: secret(true, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))}, true,
			func(t *testing.T, st octopodsv1alpha1.APIKeyStatus) {
				if len(st.PublishedKeys) != 2 || !st.PublishedKeys[1].ValidUntil.Time.Equal(now.Add(24*time.Hour)) {
					t.Fatalf("published %+v", st.PublishedKeys)
				}
			}},
		{"previous key never published: never published", prevStatus,
			keyObservation{observed: true, secret: secret(true, now.Add(time.Hour))}, true,
			func(t *testing.T, st octopodsv1alpha1.APIKeyStatus) {
				if len(st.PublishedKeys) != 1 {
					t.Fatalf("published %+v", st.PublishedKeys)
				}
			}},
		{"Secret being deleted: nothing published", prevStatus,
			keyObservation{observed: true, secret: func() *corev1.Secret {
				s := secret(false, time.Time{})
				s.DeletionTimestamp = &metav1.Time{Time: now}
				return s
			}(), readyStatus: metav1.ConditionFalse, reason: ReasonSecretDeleting}, true,
			func(t *testing.T, st octopodsv1alpha1.APIKeyStatus) {
				if st.PublishedKeys != nil {
					t.Fatalf("published %+v", st.PublishedKeys)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, computeKeyStatus(key, tc.prev, tc.prev.PublishedKeys, tc.obs, octopodsv1alpha1.KeyScope{Type: octopodsv1alpha1.KeyTypeWorkspace, Workspace: "acme"}, tc.succeeded, now))
		})
	}
}

// TestComputeKeyStatusAhead: keys the slices published ahead of a status
// write that failed count as published.
func TestComputeKeyStatusAhead(t *testing.T) {
	cur, prev, old := mustGenerate(t), mustGenerate(t), mustGenerate(t)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
	// The Secret after a rotation with grace: cur, and prev until an hour on.
	rotated := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "acme-api-key", Annotations: map[string]string{
		octopodsv1alpha1.KeyIDAnnotation: apikey.ID(cur), octopodsv1alpha1.RotatedAtAnnotation: rfc(now),
		octopodsv1alpha1.PreviousKeyIDAnnotation: apikey.ID(prev), octopodsv1alpha1.PreviousValidUntilAnnotation: rfc(now.Add(time.Hour))}},
		Data: map[string][]byte{octopodsv1alpha1.SecretKeyAPIKey: []byte(cur), octopodsv1alpha1.SecretKeyPreviousAPIKey: []byte(prev)}}
	// The Secret after a rotation without grace: cur only.
	replaced := rotated.DeepCopy()
	delete(replaced.Data, octopodsv1alpha1.SecretKeyPreviousAPIKey)
	delete(replaced.Annotations, octopodsv1alpha1.PreviousKeyIDAnnotation)
	delete(replaced.Annotations, octopodsv1alpha1.PreviousValidUntilAnnotation)
	oldRevoked := octopodsv1alpha1.RevokedKey{KeyID: apikey.ID(old), Digest: keysecret.PublishedKey(old, nil).Digest, RevokedAt: metav1.NewTime(now.Add(-time.Minute))}
	// The status the slices ran ahead of: old unpublished, nothing else.
	unpublished := octopodsv1alpha1.APIKeyStatus{RevokedKeys: []octopodsv1alpha1.RevokedKey{oldRevoked}}
	key := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Name: "acme", Generation: 1}}
	ids := func(keys []octopodsv1alpha1.PublishedKey) (out []string) {
		for _, k := range keys {
			out = append(out, k.KeyID)
		}
		return out
	}
	revokedIDs := func(keys []octopodsv1alpha1.RevokedKey) (out []string) {
		for _, k := range keys {
			out = append(out, k.KeyID)
		}
		return out
	}
	cases := []struct {
		name        string
		ahead       []octopodsv1alpha1.PublishedKey
		secret      *corev1.Secret
		succeeded   bool
		wantIDs     []string
		wantRevoked []string
	}{
		{"rotated with grace: the key published ahead is kept as the previous key", []octopodsv1alpha1.PublishedKey{keysecret.PublishedKey(prev, nil)},
			rotated, true, []string{apikey.ID(cur), apikey.ID(prev)}, []string{apikey.ID(old)}},
		{"rotated with grace, nothing ahead: the previous key was never published, so it is not now", nil,
			rotated, true, []string{apikey.ID(cur)}, []string{apikey.ID(old)}},
		{"rotated without grace: the key published ahead is recorded as revoked", []octopodsv1alpha1.PublishedKey{keysecret.PublishedKey(prev, nil)},
			replaced, true, []string{apikey.ID(cur)}, []string{apikey.ID(prev), apikey.ID(old)}},
		{"a failed reconcile keeps what was published ahead and the Secret holds, and adds nothing", []octopodsv1alpha1.PublishedKey{keysecret.PublishedKey(prev, nil)},
			rotated, false, []string{apikey.ID(prev)}, []string{apikey.ID(old)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			published := keysecret.Union(unpublished.PublishedKeys, tc.ahead)
			st := computeKeyStatus(key, unpublished, published, keyObservation{observed: true, secret: tc.secret}, octopodsv1alpha1.KeyScope{}, tc.succeeded, now)
			if got := ids(st.PublishedKeys); !slices.Equal(got, tc.wantIDs) {
				t.Errorf("published %v, want %v", got, tc.wantIDs)
			}
			if got := revokedIDs(st.RevokedKeys); !slices.Equal(got, tc.wantRevoked) {
				t.Errorf("revoked %v, want %v", got, tc.wantRevoked)
			}
		})
	}
}
