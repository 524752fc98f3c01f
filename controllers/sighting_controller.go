package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// sightingEventInterval: at most one RevokedKeyPresented event a minute per
// key, however many replicas report however many attempts.
const sightingEventInterval = time.Minute

// SightingReconciler turns each new status.lastRevokedKeyUse, which the auth
// proxies write, into a Warning event RevokedKeyPresented on the key. It
// writes nothing else: the sighting is the proxy's, the event the person's.
type SightingReconciler struct {
	client.Client
	statusReporter
	now func() time.Time

	mu sync.Mutex
	// reported is per key (by UID, so a re-created key starts afresh): the
	// last sighting reported and when. In memory only: a restarted manager
	// reports a key's latest sighting once more.
	reported map[types.UID]reportedSighting
}

type reportedSighting struct {
	sighting time.Time
	at       time.Time
}

// Reconcile reports the key's latest sighting unless it was reported, or a
// report was made less than sightingEventInterval ago; it then comes back.
func (r *SightingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := &octopodsv1alpha1.WorkspaceAPIKey{}
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	use := key.Status.LastRevokedKeyUse
	if use == nil {
		return ctrl.Result{}, nil
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	last := r.reported[key.UID]
	if !use.Time.After(last.sighting) {
		return ctrl.Result{}, nil
	}
	if wait := last.at.Add(sightingEventInterval).Sub(now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	from := use.ClientAddress
	if from == "" {
		from = "an unknown address"
	}
	r.event(key, EventRevokedKeyPresented, fmt.Sprintf("revoked key %s was presented from %s at %s: whoever holds it still tries to use it; the request was refused",
		use.KeyID, from, use.Time.UTC().Format(time.RFC3339)))
	r.reported[key.UID] = reportedSighting{sighting: use.Time.Time, at: now}
	return ctrl.Result{}, nil
}

// forget drops what was reported of a deleted key.
func (r *SightingReconciler) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.reported, uid)
}

// SetupWithManager watches keys whose lastRevokedKeyUse changed.
func (r *SightingReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	r.reported = map[types.UID]reportedSighting{}
	sightings := predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool {
			return e.Object.(*octopodsv1alpha1.WorkspaceAPIKey).Status.LastRevokedKeyUse != nil
		},
		UpdateFunc: func(e event.UpdateEvent) bool {
			before := e.ObjectOld.(*octopodsv1alpha1.WorkspaceAPIKey).Status.LastRevokedKeyUse
			after := e.ObjectNew.(*octopodsv1alpha1.WorkspaceAPIKey).Status.LastRevokedKeyUse
			return after != nil && (before == nil || after.Time.After(before.Time.Time))
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			r.forget(e.Object.GetUID())
			return false
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&octopodsv1alpha1.WorkspaceAPIKey{}, builder.WithPredicates(sightings)).
		WithOptions(opts).
		Named("revokedkeysighting").
		Complete(r)
}
