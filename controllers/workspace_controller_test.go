package controllers

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

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

// recordingQueue records how requests are queued.
type recordingQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	now, after []reconcile.Request
	delays     []time.Duration
}

func (q *recordingQueue) Add(r reconcile.Request) { q.now = append(q.now, r) }
func (q *recordingQueue) AddAfter(r reconcile.Request, d time.Duration) {
	q.after, q.delays = append(q.after, r), append(q.delays, d)
}

// A key that starts being deleted queues its Workspace revocationSettleTime
// later; every other change of it at once.
func TestSummaryOfKeyWaitsForARevocation(t *testing.T) {
	deleting := metav1.Now()
	key := func(deletion *metav1.Time, ready bool) *octopodsv1alpha1.WorkspaceAPIKey {
		k := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acme", DeletionTimestamp: deletion}}
		if ready {
			k.Status.KeyID = "k1"
		}
		return k
	}
	workspace := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "acme"}}
	for _, tc := range []struct {
		name     string
		old, new *octopodsv1alpha1.WorkspaceAPIKey
		later    bool
	}{
		{"issued", key(nil, false), key(nil, true), false},
		{"deletion begins", key(nil, true), key(&deleting, true), true},
		{"a change while being deleted", key(&deleting, true), key(&deleting, false), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &recordingQueue{}
			summaryOfKey{handler.EnqueueRequestsFromMapFunc(ownerOfKey)}.Update(context.Background(), event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}, q)
			switch {
			case tc.later && (len(q.now) != 0 || !slices.Equal(q.after, []reconcile.Request{workspace}) || q.delays[0] != revocationSettleTime):
				t.Fatalf("queued at once %v, later %v after %v; want %v after %v only", q.now, q.after, q.delays, workspace, revocationSettleTime)
			case !tc.later && (len(q.after) != 0 || !slices.Equal(q.now, []reconcile.Request{workspace})):
				t.Fatalf("queued at once %v, later %v; want %v at once only", q.now, q.after, workspace)
			}
		})
	}
}
