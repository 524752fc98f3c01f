package controllers

import (
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// ignoreUsageUpdates drops the updates of a key object that changed only
// what the auth proxies record (lastUsedTime, previousKeyLastUsedTime,
// lastRevokedKeyUse, ...): with many keys in use they are most updates, and
// nothing the key or Workspace reconcilers decide depends on them. A new
// lastLeakReport is the exception: the key reconciler rotates a leaked key.
var ignoreUsageUpdates = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		before, ok1 := e.ObjectOld.(octopodsv1alpha1.KeyObject)
		after, ok2 := e.ObjectNew.(octopodsv1alpha1.KeyObject)
		return !ok1 || !ok2 || !usageOnly(before, after) || newLeakReport(before, after)
	},
}

// newLeakReport reports whether after records a leak report before does not.
func newLeakReport(before, after octopodsv1alpha1.KeyObject) bool {
	b, a := before.KeyStatus().LastLeakReport, after.KeyStatus().LastLeakReport
	return a != nil && (b == nil || !equality.Semantic.DeepEqual(*a, *b))
}

// usageOnly reports whether after differs from before in usage fields only.
func usageOnly(before, after octopodsv1alpha1.KeyObject) bool {
	b, a := withoutUsage(before), withoutUsage(after)
	return equality.Semantic.DeepEqual(b, a)
}

func withoutUsage(k octopodsv1alpha1.KeyObject) octopodsv1alpha1.KeyObject {
	c := k.DeepCopyObject().(octopodsv1alpha1.KeyObject)
	c.SetResourceVersion("")
	c.SetManagedFields(nil)
	c.KeyStatus().ClearUsage()
	return c
}
