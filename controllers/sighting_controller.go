package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// futureUsageTolerance is how far ahead of the manager's clock a usage time
// may be before it is taken for a forgery and removed: the proxies' clocks
// may run a little ahead, never by minutes.
const futureUsageTolerance = 5 * time.Minute

// SightingReconciler follows what the auth proxies record of a key's use. It
// turns each new status.lastRevokedKeyUse into a Warning event
// RevokedKeyPresented, and removes a usage time set in the future (Warning
// FutureUsageTimeRemoved): usage times never move backwards, so a forged
// lastUsedTime of 2099 would otherwise refuse every real use after it, and
// silence RevokedKeyPresented for good. It writes nothing else.
type SightingReconciler struct {
	client.Client
	kind octopodsv1alpha1.KeyKind
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
	key := r.kind.NewKey()
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := r.now()
	if err := r.removeFutureUsage(ctx, key, now); err != nil {
		return ctrl.Result{}, err
	}
	use := key.KeyStatus().LastRevokedKeyUse
	if use == nil {
		return ctrl.Result{}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	last := r.reported[key.GetUID()]
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
	r.reported[key.GetUID()] = reportedSighting{sighting: use.Time.Time, at: now}
	return ctrl.Result{}, nil
}

// futureUsage names the usage fields of s set later than now allows.
func futureUsage(s *octopodsv1alpha1.APIKeyStatus, now time.Time) []string {
	limit := now.Add(futureUsageTolerance)
	var fields []string
	for name, t := range map[string]*metav1.Time{"lastUsedTime": s.LastUsedTime, "previousKeyLastUsedTime": s.PreviousKeyLastUsedTime} {
		if t != nil && t.After(limit) {
			fields = append(fields, name)
		}
	}
	if u := s.LastRevokedKeyUse; u != nil && u.Time.After(limit) {
		fields = append(fields, "lastRevokedKeyUse")
	}
	slices.Sort(fields)
	return fields
}

// removeFutureUsage removes the usage times set in the future, with an
// optimistic lock, and says so in a Warning event. The next real use sets
// them again.
func (r *SightingReconciler) removeFutureUsage(ctx context.Context, key octopodsv1alpha1.KeyObject, now time.Time) error {
	fields := futureUsage(key.KeyStatus(), now)
	if len(fields) == 0 {
		return nil
	}
	original := key.DeepCopyObject().(octopodsv1alpha1.KeyObject)
	st := key.KeyStatus()
	for _, f := range fields {
		switch f {
		case "lastUsedTime":
			st.LastUsedTime = nil
		case "previousKeyLastUsedTime":
			st.PreviousKeyLastUsedTime = nil
		case "lastRevokedKeyUse":
			st.LastRevokedKeyUse = nil
		}
	}
	if err := r.Status().Patch(ctx, key, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("remove usage times set in the future (%s): %w", strings.Join(fields, ", "), err)
	}
	r.event(key, EventFutureUsageTimeRemoved, fmt.Sprintf("removed status %s: set later than %s, beyond what any auth proxy's clock allows; whoever may patch this key's status wrote it (see the API server's audit log); the next real use is recorded again",
		strings.Join(fields, ", "), now.Add(futureUsageTolerance).UTC().Format(time.RFC3339)))
	return nil
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
			s := e.Object.(octopodsv1alpha1.KeyObject).KeyStatus()
			return s.LastRevokedKeyUse != nil || len(futureUsage(s, r.now())) > 0
		},
		UpdateFunc: func(e event.UpdateEvent) bool {
			before := e.ObjectOld.(octopodsv1alpha1.KeyObject).KeyStatus().LastRevokedKeyUse
			s := e.ObjectNew.(octopodsv1alpha1.KeyObject).KeyStatus()
			after := s.LastRevokedKeyUse
			return after != nil && (before == nil || after.Time.After(before.Time.Time)) || len(futureUsage(s, r.now())) > 0
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			r.forget(e.Object.GetUID())
			return false
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(r.kind.NewKey(), builder.WithPredicates(sightings)).
		WithOptions(opts).
		Named(strings.ToLower(r.kind.Kind) + "-sighting").
		Complete(r)
}
