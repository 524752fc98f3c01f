package intern

import (
	"strings"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fresh returns s in an allocation of its own, as a decoder gives it.
func fresh(s string) string { return strings.Clone(s) }

func same(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

func object() *metav1.ObjectMeta {
	t := true
	return &metav1.ObjectMeta{
		Namespace:       fresh("ns"),
		Name:            fresh("acme"),
		Finalizers:      []string{fresh("octopods.io/revoke-key")},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: fresh("octopods.io/v1alpha1"), Kind: fresh("Workspace"), Name: fresh("acme"), Controller: &t}},
		Labels:          map[string]string{fresh("octopods.io/workspace"): fresh("acme")},
		Annotations:     map[string]string{fresh("octopods.io/key-id"): fresh("0123456789ab")},
	}
}

func TestMetaSharesWhatObjectsRepeat(t *testing.T) {
	a, b := object(), object()
	Meta(a)
	Meta(b)
	for name, pair := range map[string][2]string{
		"namespace":         {a.Namespace, b.Namespace},
		"owner API version": {a.OwnerReferences[0].APIVersion, b.OwnerReferences[0].APIVersion},
		"owner kind":        {a.OwnerReferences[0].Kind, b.OwnerReferences[0].Kind},
		"finalizer":         {a.Finalizers[0], b.Finalizers[0]},
		"label key":         {firstKey(a.Labels), firstKey(b.Labels)},
		"annotation key":    {firstKey(a.Annotations), firstKey(b.Annotations)},
	} {
		if !same(pair[0], pair[1]) {
			t.Errorf("%s: two copies after interning", name)
		}
	}
	if a.OwnerReferences[0].Controller != b.OwnerReferences[0].Controller || !*a.OwnerReferences[0].Controller {
		t.Error("owner reference flags: not one shared true")
	}
	// An object's own values keep their own copies, and every value is kept.
	if same(a.Name, b.Name) || same(a.Labels["octopods.io/workspace"], b.Labels["octopods.io/workspace"]) {
		t.Error("a name or a label value was interned")
	}
	if a.Labels["octopods.io/workspace"] != "acme" || a.Annotations["octopods.io/key-id"] != "0123456789ab" || a.OwnerReferences[0].Name != "acme" {
		t.Errorf("values changed: %v %v", a.Labels, a.Annotations)
	}
}

func firstKey(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}

func TestConditions(t *testing.T) {
	c := func() []metav1.Condition {
		return []metav1.Condition{{Type: fresh("Ready"), Status: metav1.ConditionStatus(fresh("True")), Reason: fresh("KeyIssued"), Message: fresh("Key 0123 is in Secret")}}
	}
	a, b := c(), c()
	Conditions(a)
	Conditions(b)
	if !same(a[0].Type, b[0].Type) || !same(string(a[0].Status), string(b[0].Status)) || !same(a[0].Reason, b[0].Reason) {
		t.Error("type, status or reason not shared")
	}
	if same(a[0].Message, b[0].Message) || a[0].Message != "Key 0123 is in Secret" {
		t.Error("the message was interned or changed")
	}
}
