package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// WorkspaceReconciler keeps a Workspace's status summary of its key (the
// settings table) and revokes the key when the Workspace is deleted. It reads
// the key's status; it never touches Secrets.
type WorkspaceReconciler struct {
	client.Client
	// APIReader confirms an absence before the finalizer lets a Workspace go.
	APIReader client.Reader
	now       func() time.Time
}

// +kubebuilder:rbac:groups=octopods.io,resources=workspaces,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=octopods.io,resources=workspaces/status,verbs=get;patch
// +kubebuilder:rbac:groups=octopods.io,resources=workspaces/finalizers,verbs=update
// +kubebuilder:rbac:groups=octopods.io,resources=workspaceapikeys,verbs=get;list;watch;delete

// Reconcile fetches → guards deletion → adds the finalizer → summarises,
// with one deferred status write.
func (r *WorkspaceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	ws := &octopodsv1alpha1.Workspace{}
	if err := r.Get(ctx, req.NamespacedName, ws); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ws.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, ws)
	}

	before := ws.Status.DeepCopy()
	defer func() {
		if err := writeStatus(ctx, r.Client, ws, workspaceStatus, *before); err != nil {
			err = fmt.Errorf("write Workspace status: %w", err)
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
		if retErr != nil {
			result = ctrl.Result{}
		}
	}()

	if !controllerutil.ContainsFinalizer(ws, RevokeFinalizer) {
		original := ws.DeepCopy()
		controllerutil.AddFinalizer(ws, RevokeFinalizer)
		if err := patchMetadata(ctx, r.Client, ws, original, workspaceStatus); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}

	key, err := r.keyOf(ctx, ws)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("read WorkspaceAPIKey %q: %w", ws.Name, err)
	}
	if wait := r.settling(ws, key); wait > 0 {
		// Keep the status as it was (nothing written) and come back.
		ws.Status = *before.DeepCopy()
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	r.summarize(ws, key)
	ws.Status.ObservedGeneration = ws.Generation // only once every step succeeded
	return ctrl.Result{}, nil
}

// workspaceSettleTime coalesces the status of a Workspace applied with its
// key: while both are new and the key is being issued, the Workspace gets
// no passing "no key" or "not issued yet" status, only the final one, one
// status write instead of two or three for every key issued.
const workspaceSettleTime = 5 * time.Second

// settling returns how long to wait before summarizing a Workspace created
// less than workspaceSettleTime ago whose key is absent or not issued yet
// and has not failed either (0: summarize now).
func (r *WorkspaceReconciler) settling(ws *octopodsv1alpha1.Workspace, key *octopodsv1alpha1.WorkspaceAPIKey) time.Duration {
	now := time.Now
	if r.now != nil {
		now = r.now
	}
	wait := ws.CreationTimestamp.Add(workspaceSettleTime).Sub(now())
	if wait <= 0 || len(ws.Status.Conditions) > 0 {
		return 0
	}
	if ready := keyReady(key); key != nil && ready != nil && (ready.Status == metav1.ConditionTrue || ready.Reason != "") {
		return 0 // issued, or failed with a reason to show
	}
	return wait
}

func (r *WorkspaceReconciler) keyOf(ctx context.Context, ws *octopodsv1alpha1.Workspace) (*octopodsv1alpha1.WorkspaceAPIKey, error) {
	key := &octopodsv1alpha1.WorkspaceAPIKey{}
	err := r.Get(ctx, types.NamespacedName{Namespace: ws.Namespace, Name: octopodsv1alpha1.KeyName(ws.Name)}, key)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return key, err
}

// summarize fills the settings-table columns from the key's status.
func (r *WorkspaceReconciler) summarize(ws *octopodsv1alpha1.Workspace, key *octopodsv1alpha1.WorkspaceAPIKey) {
	st := &ws.Status
	st.APIKey, st.SecretName, st.KeyID = octopodsv1alpha1.NoAPIKeySummary, "", ""
	switch ready := keyReady(key); {
	case key == nil:
		setReady(ws, &st.Conditions, metav1.ConditionFalse, ReasonNoAPIKey,
			fmt.Sprintf("No API key generated: create WorkspaceAPIKey %q to generate one", ws.Name))
	case ready == nil || ready.Status != metav1.ConditionTrue || key.Status.KeyID == "":
		message := "The key is not issued yet"
		if ready != nil {
			message = ready.Message
		}
		setReady(ws, &st.Conditions, metav1.ConditionFalse, ReasonKeyNotReady, message)
	default:
		st.APIKey = fmt.Sprintf("%s (key %s)", key.Status.SecretName, key.Status.KeyID)
		st.SecretName, st.KeyID = key.Status.SecretName, key.Status.KeyID
		setReady(ws, &st.Conditions, metav1.ConditionTrue, ReasonKeyIssued,
			fmt.Sprintf("Key %s is in Secret %q", key.Status.KeyID, key.Status.SecretName))
	}
}

func keyReady(key *octopodsv1alpha1.WorkspaceAPIKey) *metav1.Condition {
	if key == nil || !key.DeletionTimestamp.IsZero() {
		return nil
	}
	return meta.FindStatusCondition(key.Status.Conditions, ConditionReady)
}

// finalize deletes the Workspace's key (whose own finalizer revokes the
// Secret) and releases the Workspace once the key is gone.
func (r *WorkspaceReconciler) finalize(ctx context.Context, ws *octopodsv1alpha1.Workspace) error {
	if !controllerutil.ContainsFinalizer(ws, RevokeFinalizer) {
		return nil
	}
	// A key missing from the cache may be one it has not seen yet: only the
	// API server's word lets the Workspace, and so the revocation, go.
	key := &octopodsv1alpha1.WorkspaceAPIKey{}
	found, err := getConfirmed(ctx, r.Client, r.APIReader, client.ObjectKeyFromObject(ws), key, false)
	if err != nil {
		return fmt.Errorf("read the key of Workspace %q: %w", ws.Name, err)
	}
	if found {
		if key.DeletionTimestamp.IsZero() {
			if err := r.Delete(ctx, key); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
		// The key's deletion is watched: we come back when it is gone.
		return nil
	}
	original := ws.DeepCopy()
	controllerutil.RemoveFinalizer(ws, RevokeFinalizer)
	return client.IgnoreNotFound(patchMetadata(ctx, r.Client, ws, original, workspaceStatus))
}

func workspaceStatus(ws *octopodsv1alpha1.Workspace) *octopodsv1alpha1.WorkspaceStatus {
	return &ws.Status
}

// SetupWithManager watches Workspaces and the keys named after them.
func (r *WorkspaceReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&octopodsv1alpha1.Workspace{}).
		Watches(&octopodsv1alpha1.WorkspaceAPIKey{}, summaryOfKey{handler.EnqueueRequestsFromMapFunc(ownerOfKey)}, builder.WithPredicates(ignoreUsageUpdates)).
		WithOptions(opts).
		Named("workspace").
		Complete(r)
}

// revocationSettleTime is how long a Workspace's summary waits once its key
// is being deleted. The key's finalizer revokes it and lets it go, tens of
// milliseconds later: the summary then goes straight to "no key" when it
// is gone (one status write, not a passing "not issued" and then "no
// key"), and its write stays off the way of the slice write that refuses
// the key. A person reading the table sees it at most this late.
const revocationSettleTime = 500 * time.Millisecond

// summaryOfKey queues a key's Workspace as its map function says, except
// when the key starts being deleted: revocationSettleTime later.
type summaryOfKey struct {
	handler.EventHandler
}

func (h summaryOfKey) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero() {
		for _, req := range ownerOfKey(ctx, e.ObjectNew) {
			q.AddAfter(req, revocationSettleTime)
		}
		return
	}
	h.EventHandler.Update(ctx, e, q)
}

// WorkspaceStatusFor is the status the Workspace reconciler writes for ws and
// its key (nil: none), for benchmarks like IssuedStatus.
func WorkspaceStatusFor(ws *octopodsv1alpha1.Workspace, key *octopodsv1alpha1.WorkspaceAPIKey) octopodsv1alpha1.WorkspaceStatus {
	ws = ws.DeepCopy()
	ws.Status.ObservedGeneration = ws.Generation
	(&WorkspaceReconciler{}).summarize(ws, key)
	return ws.Status
}
