package controllers

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keysecret"
)

func TestTrimKeySecret(t *testing.T) {
	pad := []byte(string(make([]byte, 1000)))
	owned := func() *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "acme-api-key", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{octopodsv1alpha1.KeyIDAnnotation: "id"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "octopods.io/v1alpha1", Kind: "WorkspaceAPIKey", Name: "acme", UID: "u", Controller: ptr.To(true)}},
				ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "x"}}},
			Type: octopodsv1alpha1.SecretType,
			Data: map[string][]byte{octopodsv1alpha1.SecretKeyAPIKey: []byte("k"), octopodsv1alpha1.SecretKeyPreviousAPIKey: []byte("p"), "padding": pad},
		}
	}
	got, _ := TrimKeySecret(owned())
	s := got.(*corev1.Secret)
	if len(s.Data) != 3 || !keysecret.Sealed(s) || s.Labels["a"] != "b" || s.Annotations[octopodsv1alpha1.KeyIDAnnotation] != "id" || s.ManagedFields != nil {
		t.Fatalf("owned Secret trimmed to %+v", s)
	}
	// The cache holds fingerprints, never a key: sealed values decide as
	// the keys do, and no byte of the key is kept.
	key, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	real := owned()
	real.Data[octopodsv1alpha1.SecretKeyAPIKey] = []byte(key)
	got, _ = TrimKeySecret(real)
	sealed := got.(*corev1.Secret)
	if v := sealed.Data[octopodsv1alpha1.SecretKeyAPIKey]; bytes.Contains(v, []byte(key[4:12])) || !keysecret.Sealed(sealed) {
		t.Fatalf("the cached api-key value %q holds (part of) the key", v)
	}
	if !keysecret.Holds(sealed, apikey.DigestOf(key).String()) || keysecret.Observe(sealed, nil).Current != apikey.FingerprintOf(key) {
		t.Fatal("a sealed value does not read as the key it stands for")
	}
	// client-go may transform an object twice: the second pass changes nothing.
	again, _ := TrimKeySecret(sealed.DeepCopy())
	if keysecret.Observe(again.(*corev1.Secret), nil).Current != apikey.FingerprintOf(key) {
		t.Fatal("a Secret trimmed twice no longer reads as its key")
	}
	// A hand-edited key of any size is kept as a bounded stand-in.
	huge := owned()
	huge.Data[octopodsv1alpha1.SecretKeyAPIKey] = make([]byte, 1<<20)
	got, _ = TrimKeySecret(huge)
	if v := got.(*corev1.Secret).Data[octopodsv1alpha1.SecretKeyAPIKey]; len(v) > 64 {
		t.Fatalf("the cache keeps a %d-byte api-key value", len(v))
	}
	foreign := owned()
	foreign.OwnerReferences = nil
	got, _ = TrimKeySecret(foreign)
	s = got.(*corev1.Secret)
	if s.Data != nil || s.Labels != nil || s.Annotations != nil || s.Name != "acme-api-key" {
		t.Fatalf("foreign Secret kept %+v", s)
	}
	if other, _ := TrimKeySecret("not a Secret"); other != "not a Secret" {
		t.Fatal("other objects must pass unchanged")
	}
}

func TestTrimCached(t *testing.T) {
	key := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Name: "acme",
		Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"spec":{}}`, octopodsv1alpha1.RotateAnnotation: "t1"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	got, _ := TrimCached(key)
	k := got.(*octopodsv1alpha1.WorkspaceAPIKey)
	if k.ManagedFields != nil || len(k.Annotations) != 1 || k.Annotations[octopodsv1alpha1.RotateAnnotation] != "t1" {
		t.Fatalf("trimmed to managedFields %v, annotations %v; want none, and the rotate annotation only", k.ManagedFields, k.Annotations)
	}
	if _, err := TrimCached(&octopodsv1alpha1.Workspace{}); err != nil {
		t.Fatal("an object without annotations must pass")
	}
}
