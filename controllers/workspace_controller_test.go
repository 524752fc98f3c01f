package controllers

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// The Workspace finalizer must not believe a cache that has not seen the
// key yet: releasing the Workspace then would leave the key alive.
func TestWorkspaceFinalizerConfirmsAbsenceWithTheAPIServer(t *testing.T) {
	s := runtime.NewScheme()
	utilruntime.Must(octopodsv1alpha1.AddToScheme(s))
	now := metav1.Now()
	ws := &octopodsv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme",
		Finalizers: []string{RevokeFinalizer}, DeletionTimestamp: &now}}
	key := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme"},
		Spec: octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: "acme"}}
	cache := fake.NewClientBuilder().WithScheme(s).WithObjects(ws.DeepCopy()).Build()    // has not seen the key
	api := fake.NewClientBuilder().WithScheme(s).WithObjects(ws.DeepCopy(), key).Build() // has it
	r := &WorkspaceReconciler{Client: cache, APIReader: api}

	got := &octopodsv1alpha1.Workspace{}
	if err := cache.Get(context.Background(), client.ObjectKeyFromObject(ws), got); err != nil {
		t.Fatal(err)
	}
	if err := r.finalize(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	if err := cache.Get(context.Background(), client.ObjectKeyFromObject(ws), got); err != nil {
		t.Fatalf("the Workspace was released while its key exists: %v", err)
	}
	if len(got.Finalizers) != 1 {
		t.Fatalf("finalizers %v", got.Finalizers)
	}
}
