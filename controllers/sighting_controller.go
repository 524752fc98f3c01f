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

// SightingReconciler follows what the auth proxies record of a key's use
// and leaks, and turns each new record into a Warning event:
//   - status.lastRevokedKeyUse → RevokedKeyPresented (at most one a minute);
//   - status.lastDisallowedSourceUse → KeyUsedFromDisallowedSource (at most
//     one a minute);
//   - status.lastLeakReport → KeyLeaked, each report, saying what
//     spec.leakResponse does (the key reconciler does it).
//
// It also removes a usage time set in the future (Warning
// FutureUsageTimeRemoved): usage times never move backwards, so a forged
// lastUsedTime of 2099 would otherwise refuse every real use after it, and
// silence the events for good. It writes nothing else.
type SightingReconciler struct {
	client.Client
	kind octopodsv1alpha1.KeyKind
	statusReporter
	now func() time.Time

	mu sync.Mutex
	// reported is per key (by UID, so a re-created key starts afresh) and
	// per record: the last one reported and when. In memory only: a
	// restarted manager reports a key's latest records once more.
	reported map[types.UID]map[string]reportedSighting
}

type reportedSighting struct {
	sighting time.Time
	at       time.Time
}

// sightingRecord is one kind of record the proxies write, and its event.
type sightingRecord struct {
	field  string
	reason string
	// every is the least time between two events (0: one per record).
	every time.Duration
	// at is the record's time (zero: none): all the watch predicates need.
	at func(st *octopodsv1alpha1.APIKeyStatus) time.Time
	// message is the event's, for a record that is there.
	message func(st *octopodsv1alpha1.APIKeyStatus, settings *octopodsv1alpha1.KeySettings) string
}

// useTime is the time of a KeyUse record (zero: none).
func useTime(use *octopodsv1alpha1.KeyUse) time.Time {
	if use == nil {
		return time.Time{}
	}
	return use.Time.Time
}

var sightingRecords = []sightingRecord{
	{"lastRevokedKeyUse", EventRevokedKeyPresented, sightingEventInterval,
		func(st *octopodsv1alpha1.APIKeyStatus) time.Time { return useTime(st.LastRevokedKeyUse) },
		func(st *octopodsv1alpha1.APIKeyStatus, _ *octopodsv1alpha1.KeySettings) string {
			use := st.LastRevokedKeyUse
			return fmt.Sprintf("revoked key %s was presented from %s at %s: whoever holds it still tries to use it; the request was refused",
				use.KeyID, fromAddress(use), use.Time.UTC().Format(time.RFC3339))
		}},
	{"lastDisallowedSourceUse", EventKeyUsedFromDisallowedSource, sightingEventInterval,
		func(st *octopodsv1alpha1.APIKeyStatus) time.Time { return useTime(st.LastDisallowedSourceUse) },
		func(st *octopodsv1alpha1.APIKeyStatus, _ *octopodsv1alpha1.KeySettings) string {
			use := st.LastDisallowedSourceUse
			return fmt.Sprintf("key %s was presented from %s at %s, outside spec.allowedSourceRanges: refused (403 source_not_allowed); if that address is not yours, the key has leaked: rotate it",
				use.KeyID, fromAddress(use), use.Time.UTC().Format(time.RFC3339))
		}},
	{"lastRateLimited", EventRateLimited, sightingEventInterval,
		func(st *octopodsv1alpha1.APIKeyStatus) time.Time { return useTime(st.LastRateLimited) },
		func(st *octopodsv1alpha1.APIKeyStatus, settings *octopodsv1alpha1.KeySettings) string {
			use := st.LastRateLimited
			limit := "its spec.rateLimit"
			if r := settings.RateLimit; r != nil {
				limit = fmt.Sprintf("spec.rateLimit (%d requests a second, burst %d)", r.RequestsPerSecond, r.EffectiveBurst())
			}
			return fmt.Sprintf("requests with key %s from %s were refused over %s at %s (429): an integration may be looping",
				use.KeyID, fromAddress(use), limit, use.Time.UTC().Format(time.RFC3339))
		}},
	{"lastLeakReport", EventKeyLeaked, 0,
		func(st *octopodsv1alpha1.APIKeyStatus) time.Time {
			if st.LastLeakReport == nil {
				return time.Time{}
			}
			return st.LastLeakReport.Time.Time
		},
		func(st *octopodsv1alpha1.APIKeyStatus, settings *octopodsv1alpha1.KeySettings) string {
			report := st.LastLeakReport
			return fmt.Sprintf("key %s was reported found in public by %s at %s (%s): %s",
				report.KeyID, report.Source, report.URL, report.Time.UTC().Format(time.RFC3339), leakOutcome(st, settings, report))
		}},
}

// leakOutcome says what the report does to the key.
func leakOutcome(st *octopodsv1alpha1.APIKeyStatus, settings *octopodsv1alpha1.KeySettings, report *octopodsv1alpha1.LeakReport) string {
	live := report.KeyID == st.KeyID || report.KeyID == st.PreviousKeyID
	switch {
	case st.LastRotationToken == octopodsv1alpha1.LeakToken(report):
		return fmt.Sprintf("it was rotated at once (token %q); give the new key to the integration from its Secret", octopodsv1alpha1.LeakToken(report))
	case !live:
		return "it no longer works (revoked earlier): nothing rotated; find who still holds it with kubectl octopods audit"
	case settings.LeakResponse == octopodsv1alpha1.LeakResponseReport:
		return "spec.leakResponse is Report: it still works until you rotate it (kubectl octopods rotate)"
	}
	return fmt.Sprintf("it is being rotated at once (token %q, spec.leakResponse Rotate)", octopodsv1alpha1.LeakToken(report))
}

func fromAddress(use *octopodsv1alpha1.KeyUse) string {
	if use.ClientAddress == "" {
		return "an unknown address"
	}
	return use.ClientAddress
}

// Reconcile reports each record of the key unless it was reported, or a
// report of its kind was made less than its interval ago; it then comes
// back.
func (r *SightingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := r.kind.NewKey()
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := r.now()
	if err := r.removeFutureUsage(ctx, key, now); err != nil {
		return ctrl.Result{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	reported := r.reported[key.GetUID()]
	if reported == nil {
		reported = map[string]reportedSighting{}
		r.reported[key.GetUID()] = reported
	}
	var wait time.Duration
	for _, rec := range sightingRecords {
		at := rec.at(key.KeyStatus())
		last := reported[rec.field]
		if at.IsZero() || !at.After(last.sighting) {
			continue
		}
		if w := last.at.Add(rec.every).Sub(now); w > 0 {
			wait = max(wait, w)
			continue
		}
		r.event(key, rec.reason, rec.message(key.KeyStatus(), key.Settings()))
		reported[rec.field] = reportedSighting{sighting: at, at: now}
	}
	return ctrl.Result{RequeueAfter: wait}, nil
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
	for name, u := range map[string]*octopodsv1alpha1.KeyUse{"lastRevokedKeyUse": s.LastRevokedKeyUse, "lastDisallowedSourceUse": s.LastDisallowedSourceUse, "lastRateLimited": s.LastRateLimited} {
		if u != nil && u.Time.After(limit) {
			fields = append(fields, name)
		}
	}
	if l := s.LastLeakReport; l != nil && l.Time.After(limit) {
		fields = append(fields, "lastLeakReport")
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
		case "lastDisallowedSourceUse":
			st.LastDisallowedSourceUse = nil
		case "lastRateLimited":
			st.LastRateLimited = nil
		case "lastLeakReport":
			st.LastLeakReport = nil
		}
	}
	if err := r.Status().Patch(ctx, key, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("remove usage times set in the future (%s): %w", strings.Join(fields, ", "), err)
	}
	r.event(key, EventFutureUsageTimeRemoved, fmt.Sprintf("removed status %s: set later than %s, beyond what any auth proxy's clock allows; whoever may patch this key's status wrote it (see the API server's audit log); the next real use is recorded again",
		strings.Join(fields, ", "), now.Add(futureUsageTolerance).UTC().Format(time.RFC3339)))
	return nil
}

// newerRecord reports whether after holds a record later than before's
// (before nil: any record).
func newerRecord(before, after octopodsv1alpha1.KeyObject) bool {
	for _, rec := range sightingRecords {
		at := rec.at(after.KeyStatus())
		if at.IsZero() {
			continue
		}
		if before == nil {
			return true
		}
		if at.After(rec.at(before.KeyStatus())) {
			return true
		}
	}
	return false
}

// forget drops what was reported of a deleted key.
func (r *SightingReconciler) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.reported, uid)
}

// SetupWithManager watches keys whose records changed.
func (r *SightingReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	r.reported = map[types.UID]map[string]reportedSighting{}
	sightings := predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool {
			k := e.Object.(octopodsv1alpha1.KeyObject)
			return newerRecord(nil, k) || len(futureUsage(k.KeyStatus(), r.now())) > 0
		},
		UpdateFunc: func(e event.UpdateEvent) bool {
			k := e.ObjectNew.(octopodsv1alpha1.KeyObject)
			return newerRecord(e.ObjectOld.(octopodsv1alpha1.KeyObject), k) || len(futureUsage(k.KeyStatus(), r.now())) > 0
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
