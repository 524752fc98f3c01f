// Package intern makes the strings that every cached object repeats (its
// kind, its owner's kind, finalizers, label and annotation keys, condition
// types and reasons) share one copy, instead of one allocation per object
// as decoding gives. Values that are one object's own (names, UIDs,
// messages) are left alone: interning them would cost more than it saves.
package intern

import (
	"unique"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// String returns the canonical copy of s.
func String(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}

var yes, no = true, false

func sharedBool(b *bool) *bool {
	switch {
	case b == nil:
		return nil
	case *b:
		return &yes
	default:
		return &no
	}
}

// Meta interns obj's metadata: namespace, owner references' API versions,
// kinds and flags, finalizers, and label and annotation keys. The object
// must only be read afterwards: owner references' flags point to shared
// booleans (a cached object: readers get deep copies).
func Meta(obj metav1.Object) {
	obj.SetNamespace(String(obj.GetNamespace()))
	refs := obj.GetOwnerReferences()
	for i := range refs {
		r := &refs[i]
		r.APIVersion, r.Kind = String(r.APIVersion), String(r.Kind)
		r.Controller, r.BlockOwnerDeletion = sharedBool(r.Controller), sharedBool(r.BlockOwnerDeletion)
	}
	f := obj.GetFinalizers()
	for i := range f {
		f[i] = String(f[i])
	}
	obj.SetLabels(keys(obj.GetLabels()))
	obj.SetAnnotations(keys(obj.GetAnnotations()))
}

// keys rebuilds m with interned keys (a map's keys cannot be replaced in
// place).
func keys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[String(k)] = v
	}
	return out
}

// Conditions interns each condition's type, status and reason.
func Conditions(conditions []metav1.Condition) {
	for i := range conditions {
		c := &conditions[i]
		c.Type, c.Status, c.Reason = String(c.Type), metav1.ConditionStatus(String(string(c.Status))), String(c.Reason)
	}
}
