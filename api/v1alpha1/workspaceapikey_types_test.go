package v1alpha1

import (
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestSecretOwnership(t *testing.T) {
	key := &WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: "uid-1"}}
	yes := true
	owned := func(apiVersion, kind, name string, uid types.UID, controller *bool, typ corev1.SecretType) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: controller}}},
			Type:       typ,
		}
	}
	gv := GroupVersion.String()
	cases := []struct {
		name          string
		secret        *corev1.Secret
		keySecretOf   bool
		managesSecret bool
	}{
		{"ours", owned(gv, "WorkspaceAPIKey", "acme", "uid-1", &yes, SecretType), true, true},
		{"an earlier key of the same name", owned(gv, "WorkspaceAPIKey", "acme", "uid-0", &yes, SecretType), true, false},
		{"another workspace's key", owned(gv, "WorkspaceAPIKey", "globex", "uid-2", &yes, SecretType), false, false},
		{"opaque with our owner", owned(gv, "WorkspaceAPIKey", "acme", "uid-1", &yes, corev1.SecretTypeOpaque), false, false},
		{"owner is not the controller", owned(gv, "WorkspaceAPIKey", "acme", "uid-1", nil, SecretType), false, false},
		{"same kind in another group", owned("example.com/v1", "WorkspaceAPIKey", "acme", "uid-1", &yes, SecretType), false, false},
		{"no owner", &corev1.Secret{Type: SecretType}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsKeySecretOf(tc.secret, WorkspaceKey, "acme"); got != tc.keySecretOf {
				t.Errorf("IsKeySecretOf = %v, want %v", got, tc.keySecretOf)
			}
			if got := key.ManagesSecret(tc.secret); got != tc.managesSecret {
				t.Errorf("ManagesSecret = %v, want %v", got, tc.managesSecret)
			}
		})
	}
}

func TestEffectiveSecretName(t *testing.T) {
	k := &WorkspaceAPIKey{Spec: WorkspaceAPIKeySpec{WorkspaceName: "acme"}}
	if got := k.EffectiveSecretName(); got != "acme-api-key" {
		t.Fatalf("default = %q", got)
	}
	k.Spec.SecretName = "custom"
	if got := k.EffectiveSecretName(); got != "custom" {
		t.Fatalf("explicit = %q", got)
	}
}

// Every status field says who writes it: a new field without an owner
// would be neither guarded by the admission policy nor ignored as usage.
func TestEveryStatusFieldHasAnOwner(t *testing.T) {
	for _, f := range StatusFields(APIKeyStatus{}) {
		if f.Owner != StatusOwnerOperator && f.Owner != StatusOwnerUsage {
			t.Errorf("status.%s has no `octopods:\"operator\"` or `octopods:\"usage\"` tag", f.JSON)
		}
	}
	if got := StatusFieldsOwnedBy(APIKeyStatus{}, StatusOwnerUsage); !slices.Equal(got, []string{"lastUsedTime", "previousKeyLastUsedTime", "lastRevokedKeyUse", "lastDisallowedSourceUse", "lastRateLimited", "lastLeakReport"}) {
		t.Errorf("usage fields %v: the contract names lastUsedTime, previousKeyLastUsedTime, lastRevokedKeyUse and lastLeakReport, and lastDisallowedSourceUse records the source ranges' refusals", got)
	}
}

func TestClearUsageKeepsWhatTheOperatorOwns(t *testing.T) {
	now := metav1.Now()
	s := APIKeyStatus{KeyID: "0123456789ab", LastUsedTime: &now, PreviousKeyLastUsedTime: &now,
		LastRevokedKeyUse: &KeyUse{Time: now}, ObservedGeneration: 3}
	s.ClearUsage()
	if !reflect.DeepEqual(s, APIKeyStatus{KeyID: "0123456789ab", ObservedGeneration: 3}) {
		t.Errorf("after ClearUsage: %+v", s)
	}
}

func TestCopyUsageCopiesOnlyUsage(t *testing.T) {
	now := metav1.Now()
	from := APIKeyStatus{KeyID: "0123456789ab", LastUsedTime: &now, PreviousKeyLastUsedTime: &now, LastRevokedKeyUse: &KeyUse{Time: now}}
	var s APIKeyStatus
	s.CopyUsage(&from)
	if !reflect.DeepEqual(s, APIKeyStatus{LastUsedTime: &now, PreviousKeyLastUsedTime: &now, LastRevokedKeyUse: &KeyUse{Time: now}}) {
		t.Errorf("after CopyUsage: %+v", s)
	}
}
