package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyplan"
	"github.com/octopods/octopods-operator/internal/testutil"
)

func TestChangeKeys(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	current, previous := testutil.NewKey(t), testutil.NewKey(t)
	secret := func(withPrevious bool) *corev1.Secret {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "acme-api-key", Annotations: map[string]string{
				octopodsv1alpha1.KeyIDAnnotation:         apikey.ID(current),
				octopodsv1alpha1.RotationTokenAnnotation: "t0",
			}},
			Data: map[string][]byte{octopodsv1alpha1.SecretKeyAPIKey: []byte(current)},
		}
		if withPrevious {
			s.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey] = []byte(previous)
			s.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation] = apikey.ID(previous)
			s.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation] = now.Add(time.Hour).Format(time.RFC3339)
		}
		return s
	}
	until := now.Add(30 * time.Minute)
	tests := []struct {
		name         string
		secret       *corev1.Secret
		plan         keyplan.Plan
		by           string
		wantReason   string
		wantMessage  []string
		wantNewKey   bool
		wantPrevious string // the previous key afterwards ("": none)
		wantToken    string
		wantBy       string
	}{
		{name: "rotation, no grace", secret: secret(false), plan: keyplan.Plan{Action: keyplan.Rotate, Token: "t1"}, by: "alice",
			wantReason: EventKeyRotated, wantMessage: []string{apikey.ID(current), `token "t1"`, "requested by alice"},
			wantNewKey: true, wantToken: "t1", wantBy: "alice"},
		{name: "rotation with grace", secret: secret(false), plan: keyplan.Plan{Action: keyplan.Rotate, Token: "t1", KeepPrevious: true, PreviousValidUntil: until}, by: "alice",
			wantReason: EventKeyRotated, wantMessage: []string{"keeps working until " + until.Format(time.RFC3339)},
			wantNewKey: true, wantPrevious: current, wantToken: "t1", wantBy: "alice"},
		{name: "rotation cuts an earlier grace period short", secret: secret(true), plan: keyplan.Plan{Action: keyplan.Rotate, Token: "t1"}, by: "alice",
			wantReason: EventKeyRotated, wantMessage: []string{"earlier previous key " + apikey.ID(previous) + " stopped working"},
			wantNewKey: true, wantToken: "t1", wantBy: "alice"},
		{name: "scheduled rotation", secret: secret(false), plan: keyplan.Plan{Action: keyplan.Rotate, Token: "scheduled-x"}, by: octopodsv1alpha1.OperatorName,
			wantReason: EventKeyRotated, wantMessage: []string{"on schedule (every 720h0m0s"},
			wantNewKey: true, wantToken: "scheduled-x", wantBy: octopodsv1alpha1.OperatorName},
		{name: "hand edit re-issued", secret: secret(true), plan: keyplan.Plan{Action: keyplan.Reissue}, by: "alice",
			wantReason: EventKeyReissued, wantMessage: []string{"edited by hand"},
			wantNewKey: true, wantToken: "t0", wantBy: octopodsv1alpha1.OperatorName},
		{name: "hand edit and a new token: one new key", secret: secret(false), plan: keyplan.Plan{Action: keyplan.Reissue, HandlesToken: true, Token: "t1"}, by: "alice",
			wantReason: EventKeyReissued, wantMessage: []string{`also handles rotation token "t1"`},
			wantNewKey: true, wantToken: "t1", wantBy: "alice"},
		{name: "keep", secret: secret(true), plan: keyplan.Plan{Action: keyplan.Keep},
			wantPrevious: previous, wantToken: "t0"},
		{name: "key ID repaired", secret: secret(false), plan: keyplan.Plan{Action: keyplan.Keep, RepairKeyID: true},
			wantReason: EventKeyIDRepaired, wantMessage: []string{"set back to " + apikey.ID(current)}, wantToken: "t0"},
		{name: "grace period over", secret: secret(true), plan: keyplan.Plan{Action: keyplan.Keep, DropPrevious: true},
			wantReason: EventPreviousKeyExpired, wantMessage: []string{apikey.ID(previous)}, wantToken: "t0"},
		{name: "grace period cut short", secret: secret(true), plan: keyplan.Plan{Action: keyplan.Keep, DropPrevious: true, RevokeToken: "r1"},
			wantReason: EventPreviousKeyRevoked, wantMessage: []string{`revoke-previous token "r1"`}, wantToken: "t0"},
		{name: "previous key added by hand", secret: secret(true), plan: keyplan.Plan{Action: keyplan.Keep, DropPrevious: true, PreviousUntrusted: true},
			wantReason: EventUntrustedKeyRemoved, wantMessage: []string{"never issued"}, wantToken: "t0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.secret
			reason, message, err := changeKeys(s, tc.plan, keyRequest{now: now, prefix: apikey.Prefix, requestedBy: tc.by, interval: 720 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if reason != tc.wantReason {
				t.Errorf("reason = %q, want %q", reason, tc.wantReason)
			}
			for _, m := range tc.wantMessage {
				if !strings.Contains(message, m) {
					t.Errorf("message %q does not say %q", message, m)
				}
			}
			key := string(s.Data[octopodsv1alpha1.SecretKeyAPIKey])
			if (key != current) != tc.wantNewKey || apikey.Validate(key) != nil || apikey.ID(key) != s.Annotations[octopodsv1alpha1.KeyIDAnnotation] {
				t.Errorf("api-key changed = %v (want %v), or its key-id annotation does not match", key != current, tc.wantNewKey)
			}
			if got := string(s.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey]); got != tc.wantPrevious {
				t.Errorf("previous-api-key = %q, want %q", got, tc.wantPrevious)
			}
			if (s.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation] != "") != (tc.wantPrevious != "") {
				t.Errorf("previous-key-id = %q with previous key %q", s.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation], tc.wantPrevious)
			}
			if got := s.Annotations[octopodsv1alpha1.RotationTokenAnnotation]; got != tc.wantToken {
				t.Errorf("rotation-token = %q, want %q", got, tc.wantToken)
			}
			if got := s.Annotations[octopodsv1alpha1.RotatedByAnnotation]; got != tc.wantBy {
				t.Errorf("rotated-by = %q, want %q", got, tc.wantBy)
			}
			if tc.plan.RevokeToken != "" && s.Annotations[octopodsv1alpha1.RevokePreviousTokenAnnotation] != tc.plan.RevokeToken {
				t.Errorf("revoke-previous token not recorded")
			}
		})
	}
}
