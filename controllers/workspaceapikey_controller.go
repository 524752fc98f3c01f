package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyplan"
)

// RevokeFinalizer makes deletion of a WorkspaceAPIKey or Workspace revoke the
// key (delete its Secret) even where no garbage collector runs.
const RevokeFinalizer = "octopods.io/revoke-key"

// conflictRecheckInterval is how often a key blocked by a foreign Secret looks
// again: the foreign Secret is invisible to our cache (wrong type or owner),
// so its removal produces no event we could wait for.
const conflictRecheckInterval = time.Minute

// WorkspaceAPIKeyReconciler issues, rotates, re-issues and revokes the key of
// one workspace in its Secret. Its status is a projection of the Secret, so a
// restart between the Secret write and the status write loses nothing.
type WorkspaceAPIKeyReconciler struct {
	client.Client
	// APIReader reads from the API server, bypassing the cache: used to
	// confirm an absence before generating or revoking a key.
	APIReader client.Reader
	statusReporter
	now func() time.Time

	// afterSecretWrite, when set (tests only), runs after a Secret write and
	// before the status write, to simulate a crash between the two.
	afterSecretWrite func(ctx context.Context, secret *corev1.Secret)
}

// +kubebuilder:rbac:groups=octopods.io,resources=workspaceapikeys,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=octopods.io,resources=workspaceapikeys/status,verbs=get;patch
// +kubebuilder:rbac:groups=octopods.io,resources=workspaceapikeys/finalizers,verbs=update
// +kubebuilder:rbac:groups=octopods.io,resources=workspaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile: fetch → guard deletion → metadata → workspace → Secret, with one
// deferred status write.
func (r *WorkspaceAPIKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	key := &octopodsv1alpha1.WorkspaceAPIKey{}
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !key.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, key)
	}

	before := key.Status.DeepCopy()
	defer func() {
		if err := writeStatus(ctx, r.Client, key, keyStatus, *before); err != nil && retErr == nil {
			result, retErr = ctrl.Result{}, err
		}
	}()
	key.Status.ObservedGeneration = key.Generation

	ws, err := r.workspaceOf(ctx, key)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.ensureMetadata(ctx, key, ws); err != nil {
		return ctrl.Result{}, err
	}
	if ws == nil || !ws.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.waitForWorkspace(ctx, key, ws)
	}
	return r.reconcileSecret(ctx, key)
}

// workspaceOf returns the key's Workspace, or nil once the API server itself
// confirms it is absent: a stale cache must never revoke a live key.
func (r *WorkspaceAPIKeyReconciler) workspaceOf(ctx context.Context, key *octopodsv1alpha1.WorkspaceAPIKey) (*octopodsv1alpha1.Workspace, error) {
	ws := &octopodsv1alpha1.Workspace{}
	found, err := r.getConfirmed(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.Spec.WorkspaceName}, ws, false)
	if !found {
		return nil, err
	}
	return ws, nil
}

// getConfirmed reads obj from the cache, or from the API server when fresh is
// set or the cache misses: an absence is only believed from the API server.
func (r *WorkspaceAPIKeyReconciler) getConfirmed(ctx context.Context, name types.NamespacedName, obj client.Object, fresh bool) (bool, error) {
	var err error
	if !fresh {
		err = r.Get(ctx, name, obj)
	}
	if fresh || apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, name, obj)
	}
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// ensureMetadata adds the revoke finalizer and makes the Workspace the key's
// controller owner, in one optimistic-locked patch.
func (r *WorkspaceAPIKeyReconciler) ensureMetadata(ctx context.Context, key *octopodsv1alpha1.WorkspaceAPIKey, ws *octopodsv1alpha1.Workspace) error {
	original := key.DeepCopy()
	controllerutil.AddFinalizer(key, RevokeFinalizer)
	if ws != nil && ws.DeletionTimestamp.IsZero() {
		// A Workspace deleted and re-created under the same name has a new
		// UID: drop the reference to the old one before claiming the new.
		refs := key.OwnerReferences[:0:0]
		for _, ref := range key.OwnerReferences {
			if ref.Kind == "Workspace" && ref.APIVersion == octopodsv1alpha1.GroupVersion.String() && ref.UID != ws.UID {
				continue
			}
			refs = append(refs, ref)
		}
		key.OwnerReferences = refs
		if err := controllerutil.SetControllerReference(ws, key, r.Scheme()); err != nil {
			return err
		}
	}
	if equality.Semantic.DeepEqual(original.ObjectMeta, key.ObjectMeta) {
		return nil
	}
	return patchMetadata(ctx, r.Client, key, original, keyStatus)
}

// waitForWorkspace revokes any key of a missing or deleting Workspace and
// waits for the Workspace to (re)appear; its watch brings us back.
func (r *WorkspaceAPIKeyReconciler) waitForWorkspace(ctx context.Context, key *octopodsv1alpha1.WorkspaceAPIKey, ws *octopodsv1alpha1.Workspace) error {
	revoked, err := r.revoke(ctx, key)
	if err != nil {
		return err
	}
	reason, message := ReasonWorkspaceNotFound,
		fmt.Sprintf("Waiting for Workspace %q: the key will be issued when it exists", key.Spec.WorkspaceName)
	if ws != nil {
		reason, message = ReasonWorkspaceDeleting, fmt.Sprintf("Workspace %q is being deleted: the key is revoked", key.Spec.WorkspaceName)
	}
	if revoked != "" {
		r.event(key, EventKeyRevoked, fmt.Sprintf("Revoked key %s: %s", revoked, message))
	}
	key.Status = octopodsv1alpha1.WorkspaceAPIKeyStatus{
		LastUsedTime:       key.Status.LastUsedTime,
		LastRotationToken:  key.Status.LastRotationToken,
		ObservedGeneration: key.Generation,
		Conditions:         key.Status.Conditions,
	}
	r.report(key, &key.Status.Conditions, metav1.ConditionFalse, reason, message)
	return nil
}

// reconcileSecret creates the Secret if absent and otherwise keeps, rotates,
// re-issues or trims it as keyplan decides.
func (r *WorkspaceAPIKeyReconciler) reconcileSecret(ctx context.Context, key *octopodsv1alpha1.WorkspaceAPIKey) (ctrl.Result, error) {
	secret, err := r.currentSecret(ctx, key, false)
	if err != nil {
		return ctrl.Result{}, err
	}
	if secret == nil {
		return ctrl.Result{}, r.issue(ctx, key)
	}
	if !key.ManagesSecret(secret) {
		r.report(key, &key.Status.Conditions, metav1.ConditionFalse, ReasonSecretConflict,
			fmt.Sprintf("Secret %q exists and is not managed by this WorkspaceAPIKey: it is left untouched; delete it or set spec.secretName", secret.Name))
		key.Status.SecretName, key.Status.KeyID = "", ""
		return ctrl.Result{RequeueAfter: conflictRecheckInterval}, nil
	}

	plan := keyplan.Decide(observe(secret), desired(key), r.now())
	if plan.Action != keyplan.Keep {
		// Replacing a key is rare and irreversible: decide again on a fresh
		// read, not on a cache that may miss our own last write.
		if secret, err = r.currentSecret(ctx, key, true); err != nil || secret == nil {
			return ctrl.Result{}, err
		}
		plan = keyplan.Decide(observe(secret), desired(key), r.now())
	}
	if err := r.apply(ctx, key, secret, plan); err != nil {
		return ctrl.Result{}, err
	}
	r.project(key, secret)
	if plan.RecheckAt.IsZero() {
		return ctrl.Result{}, nil
	}
	// Wake up when the previous key's grace period ends, to remove it.
	return ctrl.Result{RequeueAfter: max(plan.RecheckAt.Sub(r.now()), time.Second)}, nil
}

// currentSecret returns the key's Secret, or nil when the API server confirms
// there is none. The cache holds only key-type Secrets, so a cache miss is
// always checked against the API server (it may be a foreign Secret).
func (r *WorkspaceAPIKeyReconciler) currentSecret(ctx context.Context, key *octopodsv1alpha1.WorkspaceAPIKey, fresh bool) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	found, err := r.getConfirmed(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.EffectiveSecretName()}, secret, fresh)
	if !found {
		return nil, err
	}
	return secret, nil
}

// issue creates the Secret with a fresh key. Create fails if the name was
// taken meanwhile, so a key is never written over another.
func (r *WorkspaceAPIKeyReconciler) issue(ctx context.Context, key *octopodsv1alpha1.WorkspaceAPIKey) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.EffectiveSecretName()},
		Type:       octopodsv1alpha1.SecretType,
	}
	if err := controllerutil.SetControllerReference(key, secret, r.Scheme()); err != nil {
		return err
	}
	applyTemplate(secret, key)
	// A rotate token present at creation is handled by this very key.
	keyID, err := setNewKey(secret, key.Annotations[octopodsv1alpha1.RotateAnnotation], r.now())
	if err != nil {
		return err
	}
	if err := r.Create(ctx, secret); err != nil {
		return err
	}
	r.afterWrite(ctx, secret)
	if key.Status.KeyID != "" {
		r.event(key, EventKeyReissued, fmt.Sprintf("Secret %q was deleted: issued new key %s to replace %s", secret.Name, keyID, key.Status.KeyID))
	} else {
		r.event(key, ReasonKeyIssued, fmt.Sprintf("Issued key %s into Secret %q", keyID, secret.Name))
	}
	r.project(key, secret)
	return nil
}

// apply carries out a plan on an existing Secret with one optimistic update.
func (r *WorkspaceAPIKeyReconciler) apply(ctx context.Context, key *octopodsv1alpha1.WorkspaceAPIKey, secret *corev1.Secret, plan keyplan.Plan) error {
	original := secret.DeepCopy()
	oldID := secret.Annotations[octopodsv1alpha1.KeyIDAnnotation]
	applyTemplate(secret, key)

	var newID, message, reason string
	var err error
	switch plan.Action {
	case keyplan.Rotate:
		token := key.Annotations[octopodsv1alpha1.RotateAnnotation]
		oldKey := string(secret.Data[octopodsv1alpha1.SecretKeyAPIKey])
		clearPrevious(secret)
		if newID, err = setNewKey(secret, token, r.now()); err != nil {
			return err
		}
		secret.Annotations[octopodsv1alpha1.RotatedAtAnnotation] = r.now().UTC().Format(time.RFC3339)
		reason, message = EventKeyRotated, fmt.Sprintf("Rotated key %s to %s for token %q", oldID, newID, token)
		if plan.KeepPrevious {
			secret.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey] = []byte(oldKey)
			secret.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation] = oldID
			secret.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation] = plan.PreviousValidUntil.UTC().Format(time.RFC3339)
			message += fmt.Sprintf("; %s keeps working until %s", oldID, plan.PreviousValidUntil.UTC().Format(time.RFC3339))
		}
	case keyplan.Reissue:
		clearPrevious(secret)
		// Keep the handled token: a hand edit is not a rotation request.
		if newID, err = setNewKey(secret, secret.Annotations[octopodsv1alpha1.RotationTokenAnnotation], r.now()); err != nil {
			return err
		}
		reason, message = EventKeyReissued, fmt.Sprintf("The key in Secret %q was edited by hand: issued new key %s", secret.Name, newID)
	case keyplan.Keep:
		if plan.DropPrevious {
			reason, message = EventPreviousKeyExpired, fmt.Sprintf("Previous key %s stopped working", secret.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation])
			clearPrevious(secret)
		}
	}
	if equality.Semantic.DeepEqual(original, secret) {
		return nil
	}
	// Update carries the resourceVersion we read: a concurrent change makes
	// it fail with a conflict and we decide again, never on stale data.
	if err := r.Update(ctx, secret); err != nil {
		return err
	}
	r.afterWrite(ctx, secret)
	if reason != "" {
		r.event(key, reason, message)
	}
	return nil
}

func (r *WorkspaceAPIKeyReconciler) afterWrite(ctx context.Context, secret *corev1.Secret) {
	if r.afterSecretWrite != nil {
		r.afterSecretWrite(ctx, secret)
	}
}

// project derives the key's status from its Secret.
func (r *WorkspaceAPIKeyReconciler) project(key *octopodsv1alpha1.WorkspaceAPIKey, secret *corev1.Secret) {
	a := secret.Annotations
	st := &key.Status
	st.SecretName = secret.Name
	st.KeyID = a[octopodsv1alpha1.KeyIDAnnotation]
	st.LastRotationToken = a[octopodsv1alpha1.RotationTokenAnnotation]
	st.IssuedAt = parseTime(a[octopodsv1alpha1.IssuedAtAnnotation])
	st.RotatedAt = parseTime(a[octopodsv1alpha1.RotatedAtAnnotation])
	st.PreviousKeyID = a[octopodsv1alpha1.PreviousKeyIDAnnotation]
	st.PreviousValidUntil = parseTime(a[octopodsv1alpha1.PreviousValidUntilAnnotation])
	setReady(key, &st.Conditions, metav1.ConditionTrue, ReasonKeyIssued,
		fmt.Sprintf("Key %s is in Secret %q", st.KeyID, secret.Name))
}

// finalize revokes the key of a WorkspaceAPIKey being deleted, then lets it go.
func (r *WorkspaceAPIKeyReconciler) finalize(ctx context.Context, key *octopodsv1alpha1.WorkspaceAPIKey) error {
	if !controllerutil.ContainsFinalizer(key, RevokeFinalizer) {
		return nil
	}
	revoked, err := r.revoke(ctx, key)
	if err != nil {
		return err
	}
	if revoked != "" {
		r.event(key, EventKeyRevoked, fmt.Sprintf("Revoked key %s: the WorkspaceAPIKey is being deleted", revoked))
	}
	original := key.DeepCopy()
	controllerutil.RemoveFinalizer(key, RevokeFinalizer)
	return client.IgnoreNotFound(patchMetadata(ctx, r.Client, key, original, keyStatus))
}

// revoke deletes the key's Secret if this WorkspaceAPIKey controls it and
// returns the revoked key ID ("" when there was nothing to revoke).
func (r *WorkspaceAPIKeyReconciler) revoke(ctx context.Context, key *octopodsv1alpha1.WorkspaceAPIKey) (string, error) {
	secret, err := r.currentSecret(ctx, key, true)
	if err != nil || secret == nil || !key.ManagesSecret(secret) {
		return "", err
	}
	uid := secret.UID
	if err := r.Delete(ctx, secret, client.Preconditions{UID: &uid}); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	log.FromContext(ctx).Info("revoked key", "secret", secret.Name, "keyID", secret.Annotations[octopodsv1alpha1.KeyIDAnnotation])
	return secret.Annotations[octopodsv1alpha1.KeyIDAnnotation], nil
}

// SetupWithManager watches keys, their Secrets and their Workspaces.
func (r *WorkspaceAPIKeyReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&octopodsv1alpha1.WorkspaceAPIKey{}).
		Owns(&corev1.Secret{}).
		Watches(&octopodsv1alpha1.Workspace{}, handler.EnqueueRequestsFromMapFunc(sameName)).
		WithOptions(opts).
		Named("workspaceapikey").
		Complete(r)
}

// sameName maps a Workspace to its key and back: they share a name.
func sameName(_ context.Context, obj client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(obj)}}
}

func keyStatus(k *octopodsv1alpha1.WorkspaceAPIKey) *octopodsv1alpha1.WorkspaceAPIKeyStatus {
	return &k.Status
}

func observe(secret *corev1.Secret) keyplan.Observed {
	a := secret.Annotations
	return keyplan.Observed{
		Key:                string(secret.Data[octopodsv1alpha1.SecretKeyAPIKey]),
		KeyID:              a[octopodsv1alpha1.KeyIDAnnotation],
		HandledToken:       a[octopodsv1alpha1.RotationTokenAnnotation],
		PreviousKey:        string(secret.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey]),
		PreviousValidUntil: a[octopodsv1alpha1.PreviousValidUntilAnnotation],
	}
}

func desired(key *octopodsv1alpha1.WorkspaceAPIKey) keyplan.Desired {
	d := keyplan.Desired{RotateToken: key.Annotations[octopodsv1alpha1.RotateAnnotation]}
	if key.Spec.RotationGracePeriod != nil {
		d.GracePeriod = key.Spec.RotationGracePeriod.Duration
	}
	return d
}

// setNewKey writes a fresh key with its ID, the rotation token it handles and
// its issue time: all in the object that is written in one request.
func setNewKey(secret *corev1.Secret, token string, now time.Time) (string, error) {
	k, err := apikey.Generate()
	if err != nil {
		return "", err
	}
	if secret.Data == nil {
		secret.Data = map[string][]byte{}
	}
	id := apikey.ID(k)
	secret.Data[octopodsv1alpha1.SecretKeyAPIKey] = []byte(k)
	secret.Annotations[octopodsv1alpha1.KeyIDAnnotation] = id
	secret.Annotations[octopodsv1alpha1.IssuedAtAnnotation] = now.UTC().Format(time.RFC3339)
	if token != "" {
		secret.Annotations[octopodsv1alpha1.RotationTokenAnnotation] = token
	}
	return id, nil
}

func clearPrevious(secret *corev1.Secret) {
	delete(secret.Data, octopodsv1alpha1.SecretKeyPreviousAPIKey)
	delete(secret.Annotations, octopodsv1alpha1.PreviousKeyIDAnnotation)
	delete(secret.Annotations, octopodsv1alpha1.PreviousValidUntilAnnotation)
}

func parseTime(s string) *metav1.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil
	}
	return &metav1.Time{Time: t}
}
