package keysecret

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
)

func TestSetNewKeyRemembersTokens(t *testing.T) {
	s := &corev1.Secret{}
	now := time.Now()
	for _, token := range []string{"", "T1", "T2", "T2", "T3"} {
		id, err := SetNewKey(s, token, now)
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
