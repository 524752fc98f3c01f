package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/keyplan"
	"github.com/octopods/octopods-operator/internal/keysecret"
	"github.com/octopods/octopods-operator/internal/keyslice"
	"github.com/octopods/octopods-operator/internal/keystore"
)

// conflictRecheckInterval is how often a key blocked by a foreign Secret looks
// again: the foreign Secret is invisible to our cache (wrong type or owner),
// so its removal produces no event we could wait for.
const conflictRecheckInterval = time.Minute

// KeyReconciler issues, rotates, re-issues and revokes the key of one owner
// (a Workspace, Channel or WhatsAppBusinessAccount) in its Secret, and
// publishes the digests of the keys the Secret holds for the auth proxy,
// with the scope its owner gives them. One reconciler serves the three key
// kinds, registered once per kind: what differs is data (kind). Its status
// is derived from the Secret, so a restart between the Secret write and the
// status write loses nothing.
type KeyReconciler struct {
	client.Client
	kind octopodsv1alpha1.KeyKind
	// APIReader reads from the API server, bypassing the cache: used to
	// confirm an absence before generating or revoking a key.
	APIReader client.Reader
	// store writes the key Secret; Client refuses to (keystore.Guard).
	store keystore.Store
	// slices are the KeyDigestSlices, withdrawn from before a Secret write.
	slices *SliceReconciler
	statusReporter
	now func() time.Time
	// staleTokens remembers, per key, the already-used rotation token last
	// reported as such (in memory: a restarted manager reports it once more).
	staleTokens sync.Map // types.UID → string
	// outdated remembers, per key object, the resourceVersions it had
	// before each of this manager's writes in its last reconcile: a
	// reconcile that reads one of them from the cache has not seen those
	// writes yet, and waits for their event instead of deciding again on a
	// status they replaced (a fresh read and a conflicting status write,
	// just when a new key is being published).
	outdated sync.Map // types.NamespacedName → []string
}

// +kubebuilder:rbac:groups=octopods.io,resources=workspaceapikeys;channelapikeys;whatsappapikeys,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=octopods.io,resources=workspaceapikeys/status;channelapikeys/status;whatsappapikeys/status,verbs=get;patch
// +kubebuilder:rbac:groups=octopods.io,resources=workspaceapikeys/finalizers;channelapikeys/finalizers;whatsappapikeys/finalizers,verbs=update
// +kubebuilder:rbac:groups=octopods.io,resources=workspaces;channels;whatsappbusinessaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile fetches → guards deletion → metadata → owner (and its
// Workspace) → Secret. The status is computed once, from what the
// reconcile observed, and written once, in the deferred function.
func (r *KeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	key := r.kind.NewKey()
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		if apierrors.IsNotFound(err) {
			r.outdated.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if outdated, ok := r.outdated.Load(req.NamespacedName); ok {
		if slices.Contains(outdated.([]string), key.GetResourceVersion()) {
			return ctrl.Result{}, nil // the event of our own last write brings us back
		}
		r.outdated.Delete(req.NamespacedName)
	}
	if key.GetDeletionTimestamp() != nil {
		return ctrl.Result{}, r.finalize(ctx, key)
	}

	run := r.newRun(key)
	defer func() {
		retErr = kerrors.NewAggregate([]error{retErr, run.writeStatus(ctx, retErr == nil)})
		run.flushEvents()
		if retErr != nil {
			result = ctrl.Result{}
		}
		if len(run.replaced) > 0 {
			r.outdated.Store(req.NamespacedName, run.replaced)
		}
	}()

	if invalid := key.Settings().InvalidFields(); len(invalid) > 0 {
		// No retry reads it better: the next spec change brings us back.
		msg := strings.Join(invalid, "; ") + "; nothing is issued, rotated or revoked for this key until it is fixed"
		run.obs.notReady(ReasonInvalidSpec, msg)
		return ctrl.Result{}, reconcile.TerminalError(errors.New(msg))
	}

	owner, gone, err := r.ownerOf(ctx, key)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("read %s %q: %w", r.kind.OwnerKind, key.OwnerName(), err)
	}
	if err := run.track(func() error { return r.ensureMetadata(ctx, key, owner) }); err != nil {
		return ctrl.Result{}, fmt.Errorf("add finalizer and owner reference: %w", err)
	}
	if gone != nil {
		return ctrl.Result{}, run.waitForOwner(ctx, gone)
	}
	run.scope = owner.KeyScope()
	run.scope.AllowedSourceRanges = key.Settings().AllowedSourceRanges
	run.scope.RateLimit = key.Settings().RateLimit
	return run.reconcileSecret(ctx)
}

// keyReconcile is one reconcile of one key: what it observed, for the status.
type keyReconcile struct {
	*KeyReconciler
	key octopodsv1alpha1.KeyObject
	// scope is what the owner gives the key (zero until the owner is read).
	scope octopodsv1alpha1.KeyScope
	// before is the status as last written (read, or patched by unpublish).
	before octopodsv1alpha1.APIKeyStatus
	// published are the keys the proxies may admit: before's, and those
	// the slices publish ahead of it (SliceReconciler.Ahead). Every
	// decision starts from them; before stays what the status patch is
	// computed against.
	published []octopodsv1alpha1.PublishedKey
	obs       keyObservation
	// replaced are the key object's resourceVersions before each of this
	// reconcile's writes to it (KeyReconciler.outdated).
	replaced []string
	// events wait for the end of the reconcile (flushEvents): an Event's
	// write would otherwise reach the API server beside the slice write
	// that admits or refuses the key, and delay it.
	events []pendingEvent
}

type pendingEvent struct{ reason, message string }

// newRun starts one reconcile of key, as cached.
func (r *KeyReconciler) newRun(key octopodsv1alpha1.KeyObject) *keyReconcile {
	run := &keyReconcile{KeyReconciler: r, key: key, before: *key.KeyStatus().DeepCopy()}
	ahead := r.slices.Ahead(key.GetNamespace(), keyslice.Ref{Kind: r.kind.Kind, Name: key.GetName()})
	run.published = keysecret.Union(run.before.PublishedKeys, ahead)
	return run
}

// event records an Event about the key, emitted by flushEvents.
func (k *keyReconcile) event(reason, message string) {
	k.events = append(k.events, pendingEvent{reason, message})
}

// flushEvents emits the reconcile's Events, in order.
func (k *keyReconcile) flushEvents() {
	for _, e := range k.events {
		k.statusReporter.event(k.key, e.reason, e.message)
	}
	k.events = nil
}

// track runs write, a write to the key object, and records the
// resourceVersion it replaced.
func (k *keyReconcile) track(write func() error) error {
	before := k.key.GetResourceVersion()
	err := write()
	if rv := k.key.GetResourceVersion(); err == nil && rv != before {
		k.replaced = append(k.replaced, before)
	}
	return err
}

// writeStatus computes the status from the observation and writes it if it
// changed, with an optimistic lock; a Ready=False change comes with its Event.
func (k *keyReconcile) writeStatus(ctx context.Context, succeeded bool) error {
	*k.key.KeyStatus() = computeKeyStatus(k.key, k.before, k.published, k.obs, k.scope, succeeded, k.now())
	if next := meta.FindStatusCondition(k.key.KeyStatus().Conditions, ConditionReady); next != nil && next.Status != metav1.ConditionTrue {
		if prev := meta.FindStatusCondition(k.before.Conditions, ConditionReady); prev == nil || prev.Reason != next.Reason || prev.Message != next.Message {
			k.event(next.Reason, next.Message)
		}
	}
	if succeeded && !keysecret.PublishesAll(k.before.PublishedKeys, k.key.KeyStatus().PublishedKeys) {
		// The Secret write this status follows succeeded: the slices may
		// admit the new key now, ahead of the status write.
		if err := k.slices.Publish(ctx, k.key); err != nil {
			log.FromContext(ctx).V(1).Info("the key is published by the next batched slice write", "error", err.Error())
		}
	}
	if err := k.track(func() error { return writeStatus(ctx, k.Client, k.key, keyStatus, k.before) }); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	// A key unpublished before a Secret write that then failed is
	// published again from a fresh read: the slices may hold it again.
	k.slices.Republished(k.key.GetNamespace(), k.key.KeyStatus().PublishedKeys)
	return nil
}

// Published and Unpublish make one reconcile the Publication its Secret
// writes go through (keystore.Store): the keys the proxies may admit (the
// status's, and those published ahead of it), and the status write that
// drops keys before the Secret loses them.
func (k *keyReconcile) Published() []octopodsv1alpha1.PublishedKey { return k.published }

// Unpublish writes status.publishedKeys down to kept, recording the keys
// dropped as revoked.
func (k *keyReconcile) Unpublish(ctx context.Context, kept []octopodsv1alpha1.PublishedKey) error {
	st := k.key.KeyStatus()
	*st = *k.before.DeepCopy()
	st.PublishedKeys = kept
	st.RevokedKeys = keysecret.Revoke(k.before.RevokedKeys, k.published, kept, k.before.LastUseOf, k.now())
	if err := k.track(func() error { return writeStatus(ctx, k.Client, k.key, keyStatus, k.before) }); err != nil {
		return fmt.Errorf("write status of %s %q: %w", k.kind.Kind, k.key.GetName(), err)
	}
	k.before = *st.DeepCopy()
	k.published = k.before.PublishedKeys
	return nil
}

// Unslice withdraws from the digest slices what the Secret will not hold.
func (k *keyReconcile) Unslice(ctx context.Context, held func(string) bool, gone []string) error {
	return k.slices.Withdraw(ctx, k.key.GetNamespace(), keyslice.Ref{Kind: k.kind.Kind, Name: k.key.GetName()}, held, gone)
}

// ownerOf returns the key's owner, and what is gone ("" when nothing is):
// the owner, or for a channel or WhatsApp key the owner's Workspace, absent
// (as the API server itself confirms: a stale cache must never revoke a
// live key) or being deleted. Either revokes the key.
func (r *KeyReconciler) ownerOf(ctx context.Context, key octopodsv1alpha1.KeyObject) (octopodsv1alpha1.KeyOwner, *ownerGone, error) {
	owner := r.kind.NewOwner()
	found, err := getConfirmed(ctx, r.Client, r.APIReader, types.NamespacedName{Namespace: key.GetNamespace(), Name: key.OwnerName()}, owner, false)
	what := fmt.Sprintf("%s %q", r.kind.OwnerKind, key.OwnerName())
	switch {
	case err != nil:
		return nil, nil, err
	case !found:
		return nil, &ownerGone{what: what}, nil
	case owner.GetDeletionTimestamp() != nil:
		return owner, &ownerGone{what: what, deleting: true}, nil
	case r.kind.Kind == octopodsv1alpha1.WorkspaceKey.Kind:
		return owner, nil, nil
	}
	workspace := owner.KeyScope().Workspace
	what = fmt.Sprintf("Workspace %q of %s", workspace, what)
	ws := &octopodsv1alpha1.Workspace{}
	found, err = getConfirmed(ctx, r.Client, r.APIReader, types.NamespacedName{Namespace: key.GetNamespace(), Name: workspace}, ws, false)
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("read Workspace %q: %w", workspace, err)
	case !found:
		return owner, &ownerGone{what: what}, nil
	case ws.DeletionTimestamp != nil:
		return owner, &ownerGone{what: what, deleting: true}, nil
	}
	return owner, nil, nil
}

// ownerGone is a key's owner, or its owner's Workspace, absent or being
// deleted.
type ownerGone struct {
	what     string // `Workspace "acme"`, `Channel "sms-1"`, ...
	deleting bool
}

// ensureMetadata adds the revoke finalizer and makes the owner the key's
// controller owner, in one optimistic-locked patch.
func (r *KeyReconciler) ensureMetadata(ctx context.Context, key octopodsv1alpha1.KeyObject, owner octopodsv1alpha1.KeyOwner) error {
	original := key.DeepCopyObject().(octopodsv1alpha1.KeyObject)
	controllerutil.AddFinalizer(key, RevokeFinalizer)
	if owner != nil && owner.GetDeletionTimestamp() == nil {
		// An owner deleted and re-created under the same name has a new
		// UID: drop the reference to the old one before claiming the new.
		refs := key.GetOwnerReferences()[:0:0]
		for _, ref := range key.GetOwnerReferences() {
			if ref.Kind == r.kind.OwnerKind && ref.APIVersion == octopodsv1alpha1.GroupVersion.String() && ref.UID != owner.GetUID() {
				continue
			}
			refs = append(refs, ref)
		}
		key.SetOwnerReferences(refs)
		// The webhook sets the reference at creation without
		// blockOwnerDeletion (see webhook.ownership): keep it as it is.
		if ref := metav1.GetControllerOf(key); ref == nil || ref.UID != owner.GetUID() {
			if err := controllerutil.SetControllerReference(owner, key, r.Scheme()); err != nil {
				return err
			}
		}
	}
	if equality.Semantic.DeepEqual(metaOf(original), metaOf(key)) {
		return nil
	}
	return patchMetadata(ctx, r.Client, key, original, keyStatus)
}

// metaOf is the object metadata an ensureMetadata patch may change.
func metaOf(o metav1.Object) any {
	return [2]any{o.GetFinalizers(), o.GetOwnerReferences()}
}

// waitForOwner revokes the key of a missing or deleting owner (gone says
// which) and waits for it to (re)appear; its watch brings us back.
func (k *keyReconcile) waitForOwner(ctx context.Context, gone *ownerGone) error {
	reason := ownerGoneReason(k.kind, gone.deleting)
	message := fmt.Sprintf("Waiting for %s: the key will be issued when it exists", gone.what)
	if gone.deleting {
		message = fmt.Sprintf("%s is being deleted: the key is revoked", gone.what)
	}
	k.obs.notReady(reason, message)
	k.obs.saw(nil)
	revoked, err := k.revoke(ctx)
	if err != nil {
		return err
	}
	if revoked != "" {
		k.event(EventKeyRevoked, fmt.Sprintf("Revoked key %s: %s", revoked, message))
	}
	return nil
}

// reconcileSecret creates the Secret if absent and otherwise keeps, rotates,
// re-issues or trims it as keyplan decides.
func (k *keyReconcile) reconcileSecret(ctx context.Context) (ctrl.Result, error) {
	if issued, err := k.issueIfNew(ctx); issued || err != nil {
		return ctrl.Result{}, err
	}
	secret, err := k.currentSecret(ctx, k.key, false)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("read Secret %q: %w", octopodsv1alpha1.EffectiveSecretName(k.key), err)
	}
	if secret == nil {
		k.obs.saw(nil)
		return ctrl.Result{}, k.issue(ctx)
	}
	if !octopodsv1alpha1.ManagesSecret(k.key, secret) {
		k.obs.saw(nil)
		k.obs.notReady(ReasonSecretConflict,
			conflictMessage(k.kind, secret))
		return ctrl.Result{RequeueAfter: conflictRecheckInterval}, nil
	}
	k.obs.saw(secret)

	plan := keyplan.Decide(keysecret.Observe(secret, k.published), desired(k.key), k.now())
	if plan.Action != keyplan.Keep || plan.DropPrevious || plan.RepairKeyID || plan.RevokeToken != "" || k.publishingChanges(secret) || keysecret.TemplateChanges(secret, k.key.Settings().SecretTemplate, k.scope.Workspace) {
		// Replacing a key is rare and irreversible, and publishing one makes
		// the proxy admit it: decide again on a fresh read, not on a cache
		// that may miss our own last write (and still hold a rotated key).
		// Every write starts from this fresh read, never from the trimmed
		// cached copy (TrimKeySecret).
		if secret, err = k.currentSecret(ctx, k.key, true); err != nil || secret == nil {
			return ctrl.Result{}, err
		}
		k.obs.saw(secret)
		plan = keyplan.Decide(keysecret.Observe(secret, k.published), desired(k.key), k.now())
	}
	if !secret.DeletionTimestamp.IsZero() {
		// Held by someone's finalizer: its keys are on their way out, so
		// none is published; its deletion brings us back to issue anew.
		k.obs.notReady(ReasonSecretDeleting, fmt.Sprintf("Secret %q is being deleted: its key is no longer admitted, a new one is issued when it is gone", secret.Name))
		return ctrl.Result{}, nil
	}
	log.FromContext(ctx).V(1).Info("key plan", "action", plan.Action.String(), "dropPrevious", plan.DropPrevious, "keyID", secret.Annotations[octopodsv1alpha1.KeyIDAnnotation])
	k.reportStaleToken(secret)
	if err := k.apply(ctx, secret, plan); err != nil {
		return ctrl.Result{}, err
	}
	wake := plan.RecheckAt
	if expire := keysecret.RevokedKeysExpire(k.before.RevokedKeys); !expire.IsZero() && (wake.IsZero() || expire.Before(wake)) {
		wake = expire
	}
	if wake.IsZero() {
		return ctrl.Result{}, nil
	}
	// Wake up when the previous key's grace period ends, to remove it, when
	// the next scheduled rotation is due, or when a revoked key is to be
	// forgotten: no polling.
	return ctrl.Result{RequeueAfter: max(wake.Sub(k.now()), time.Second)}, nil
}

// reportStaleToken records, once per token, that the rotate annotation
// holds a token already used for this key that is not the last one (a
// GitOps tool putting an older token back): nothing rotates, as the
// contract says, and the person can see why.
func (k *keyReconcile) reportStaleToken(secret *corev1.Secret) {
	token := k.key.GetAnnotations()[octopodsv1alpha1.RotateAnnotation]
	used, _ := keysecret.TokenUsed(secret, token)
	if !used || token == secret.Annotations[octopodsv1alpha1.RotationTokenAnnotation] {
		return
	}
	if last, _ := k.staleTokens.Swap(k.key.GetUID(), token); last == token {
		return
	}
	if len(token) > 128 { // the rotator policy bounds new tokens; not older ones
		token = token[:128] + "…"
	}
	k.event(EventRotationTokenAlreadyUsed, fmt.Sprintf("token %q was already used for this key (it is among the last %d tokens handled); nothing rotated; use a new token",
		token, keyplan.MaxRecentTokens))
}

// conflictMessage says whose the Secret in the way is, and what to do.
func conflictMessage(kind octopodsv1alpha1.KeyKind, secret *corev1.Secret) string {
	return fmt.Sprintf("Secret %q exists and %s: it is left untouched; delete that Secret, or delete this %s and create it again with another spec.secretName (checked again every minute)", secret.Name, keysecret.Owner(secret), kind.Kind)
}

// publishingChanges reports whether the Secret, as cached, would change the
// published keys.
func (k *keyReconcile) publishingChanges(secret *corev1.Secret) bool {
	next := keysecret.Published(secret, k.published, keysecret.ParseTime(secret.Annotations[octopodsv1alpha1.RotatedAtAnnotation]))
	return !equality.Semantic.DeepEqual(next, k.before.PublishedKeys) // nil and empty are equal
}

// currentSecret returns the key's Secret, or nil when the API server confirms
// there is none. The cache holds only key-type Secrets, so a cache miss is
// always checked against the API server (it may be a foreign Secret).
func (r *KeyReconciler) currentSecret(ctx context.Context, key octopodsv1alpha1.KeyObject, fresh bool) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	found, err := getConfirmed(ctx, r.Client, r.APIReader, types.NamespacedName{Namespace: key.GetNamespace(), Name: octopodsv1alpha1.EffectiveSecretName(key)}, secret, fresh)
	if !found {
		return nil, err
	}
	return secret, nil
}

// issueIfNew issues the key of a key object that publishes nothing, in its
// status or ahead of it in a slice (SliceReconciler.Ahead), and whose
// Secret the cache does not hold, without first reading the API server:
// the create itself asks it whether the name is free (AlreadyExists), one
// read fewer for a new key. Nothing published means nothing can be revoked
// by mistake if the cache missed a Secret. It reports whether it issued;
// a name taken leaves the decision to the fresh read that follows.
func (k *keyReconcile) issueIfNew(ctx context.Context) (bool, error) {
	if len(k.published) > 0 {
		return false, nil
	}
	name := types.NamespacedName{Namespace: k.key.GetNamespace(), Name: octopodsv1alpha1.EffectiveSecretName(k.key)}
	if err := k.Get(ctx, name, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		return false, nil // cached (or unreadable): decided as any other
	}
	k.obs.saw(nil)
	err := k.issue(ctx)
	if apierrors.IsAlreadyExists(err) {
		k.obs = keyObservation{}
		return false, nil
	}
	return true, err
}

// issue creates the Secret with a fresh key. Create fails if the name was
// taken meanwhile, so a key is never written over another.
func (k *keyReconcile) issue(ctx context.Context) error {
	key := k.key
	keyed := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.GetNamespace(), Name: octopodsv1alpha1.EffectiveSecretName(key)},
		Type:       k.kind.SecretType,
	}
	if err := controllerutil.SetControllerReference(key, keyed, k.Scheme()); err != nil {
		return err
	}
	keysecret.ApplyTemplate(keyed, nil, k.scope.Workspace) // the operator's own labels only
	// A rotate token present at creation is handled by this very key.
	keyID, err := keysecret.SetNewKey(keyed, k.kind.Prefix, key.GetAnnotations()[octopodsv1alpha1.RotateAnnotation], k.now())
	if err != nil {
		return err
	}
	create := func(ctx context.Context, s *corev1.Secret) error {
		if err := k.store.Create(ctx, k, s); err != nil {
			return err
		}
		k.obs.saw(s)
		return nil
	}
	if err := k.writeTemplated(ctx, nil, keyed, create); err != nil {
		return k.secretWriteFailed(keyed.Name, "create", err)
	}
	if key.KeyStatus().KeyID != "" {
		k.event(EventKeyReissued, fmt.Sprintf("Secret %q was deleted: issued new key %s to replace %s", keyed.Name, keyID, key.KeyStatus().KeyID))
	} else {
		k.event(ReasonKeyIssued, fmt.Sprintf("Issued key %s into Secret %q", keyID, keyed.Name))
	}
	return nil
}

// secretWriteFailed makes a failed Secret write visible as Ready=False (a
// conflict is only a stale read, retried at once, and says nothing).
func (k *keyReconcile) secretWriteFailed(name, verb string, err error) error {
	if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
		k.obs.notReady(ReasonSecretWriteFailed, fmt.Sprintf("Could not %s Secret %q: %v", verb, name, err))
	}
	return fmt.Errorf("%s Secret %q: %w", verb, name, err)
}

// apply carries out a plan on an existing Secret with one optimistic update,
// template included. Template metadata the API server refuses never blocks
// a key change: the key change is then written alone, and Ready=False says
// why.
func (k *keyReconcile) apply(ctx context.Context, current *corev1.Secret, plan keyplan.Plan) error {
	keyed := current.DeepCopy()
	req := keyRequest{now: k.now(), prefix: k.kind.Prefix, requestedBy: rotationRequester(k.key, plan.Token)}
	if k.key.Settings().RotationInterval != nil {
		req.interval = k.key.Settings().RotationInterval.Duration
	}
	reason, message, err := changeKeys(keyed, plan, req)
	if err != nil {
		return err
	}
	if err := k.writeTemplated(ctx, current, keyed, k.write); err != nil {
		if errors.Is(err, errNothingToWrite) {
			return nil
		}
		return k.secretWriteFailed(current.Name, "update", err)
	}
	if reason != "" {
		k.event(reason, message)
	}
	return nil
}

// errNothingToWrite: the Secret already is what the plan and template ask.
var errNothingToWrite = errors.New("nothing to write")

// writeTemplated writes keyed (the key changes, on current, or a new Secret
// when current is nil) with spec.secretTemplate applied. Invalid template
// metadata is input no retry fixes (an edit of the template brings a new
// reconcile), and it never blocks a key change: keyed is then written
// alone, and Ready=False says why.
func (k *keyReconcile) writeTemplated(ctx context.Context, current, keyed *corev1.Secret, write func(context.Context, *corev1.Secret) error) error {
	templated := keyed.DeepCopy()
	keysecret.ApplyTemplate(templated, k.key.Settings().SecretTemplate, k.scope.Workspace)
	if current != nil && equality.Semantic.DeepEqual(current, templated) {
		return errNothingToWrite
	}
	err := write(ctx, templated)
	if !apierrors.IsInvalid(err) || equality.Semantic.DeepEqual(templated.ObjectMeta, keyed.ObjectMeta) {
		return err
	}
	refused := err
	if current == nil || !equality.Semantic.DeepEqual(current, keyed) {
		if err := write(ctx, keyed); err != nil {
			return err
		}
	}
	k.obs.notReady(ReasonSecretWriteFailed, fmt.Sprintf(
		"spec.secretTemplate could not be applied to Secret %q (%v): fix spec.secretTemplate; the key itself is issued and kept current", keyed.Name, refused))
	return nil
}

// write updates the Secret through the store. Update carries the
// resourceVersion we read: a concurrent change makes it fail with a
// conflict and we decide again, never on stale data.
func (k *keyReconcile) write(ctx context.Context, secret *corev1.Secret) error {
	if err := k.store.Update(ctx, k, secret); err != nil {
		return err
	}
	k.obs.saw(secret)
	return nil
}

// finalize revokes the key of a key object being deleted, then lets it go.
func (r *KeyReconciler) finalize(ctx context.Context, key octopodsv1alpha1.KeyObject) error {
	if !controllerutil.ContainsFinalizer(key, RevokeFinalizer) {
		return nil
	}
	run := r.newRun(key)
	defer run.flushEvents()
	revoked, err := run.revoke(ctx)
	if err != nil {
		return err
	}
	if revoked != "" {
		run.event(EventKeyRevoked, fmt.Sprintf("Revoked key %s: the %s is being deleted", revoked, r.kind.Kind))
	}
	original := key.DeepCopyObject().(octopodsv1alpha1.KeyObject)
	controllerutil.RemoveFinalizer(key, RevokeFinalizer)
	return client.IgnoreNotFound(patchMetadata(ctx, r.Client, key, original, keyStatus))
}

// revoke unpublishes every key, then deletes the key's Secret if this
// key object controls it, and returns the revoked key ID ("" when there
// was nothing to revoke).
func (k *keyReconcile) revoke(ctx context.Context) (string, error) {
	// Unpublish first, whatever the Secret holds: the key is refused
	// without waiting for the read.
	if err := k.store.Delete(ctx, k, nil); err != nil {
		return "", err
	}
	secret, err := k.currentSecret(ctx, k.key, true)
	if err != nil || secret == nil || !octopodsv1alpha1.ManagesSecret(k.key, secret) {
		return "", err // nothing of ours holds a key
	}
	if err := k.store.Delete(ctx, k, secret); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	log.FromContext(ctx).Info("revoked key", "secret", secret.Name, "keyID", secret.Annotations[octopodsv1alpha1.KeyIDAnnotation])
	return secret.Annotations[octopodsv1alpha1.KeyIDAnnotation], nil
}

// SetupWithManager watches the kind's keys, their Secrets and their
// owners, and for channel and WhatsApp keys the owners' Workspaces.
func (r *KeyReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(r.kind.NewKey(), builder.WithPredicates(ignoreUsageUpdates)).
		Owns(&corev1.Secret{}).
		Watches(r.kind.NewOwner(), handler.EnqueueRequestsFromMapFunc(keyOfOwner))
	if r.kind.Kind != octopodsv1alpha1.WorkspaceKey.Kind {
		b = b.Watches(&octopodsv1alpha1.Workspace{}, handler.EnqueueRequestsFromMapFunc(r.keysOfWorkspace))
	}
	return b.WithOptions(opts).Named(strings.ToLower(r.kind.Kind)).Complete(r)
}

// keysOfWorkspace maps a Workspace to the keys of the kind's owners in it.
func (r *KeyReconciler) keysOfWorkspace(ctx context.Context, ws client.Object) []reconcile.Request {
	var reqs []reconcile.Request
	list := r.kind.NewOwnerList()
	// Read only: no copy of every owner in the namespace at each event.
	if err := r.List(ctx, list, client.InNamespace(ws.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "list owners of a Workspace's keys", "kind", r.kind.OwnerKind)
		return nil
	}
	items, _ := meta.ExtractList(list) // a typed list: cannot fail
	for _, item := range items {
		if o, ok := item.(octopodsv1alpha1.KeyOwner); ok && o.KeyScope().Workspace == ws.GetName() {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: octopodsv1alpha1.KeyName(o.GetName())}})
		}
	}
	return reqs
}

func keyStatus(k octopodsv1alpha1.KeyObject) *octopodsv1alpha1.APIKeyStatus {
	return k.KeyStatus()
}

// rotationRequester is who a rotation for token is attributed to: the
// operator for a scheduled one, else the person the webhook stamped (or
// "unknown" where no webhook runs).
func rotationRequester(key octopodsv1alpha1.KeyObject, token string) string {
	if report := key.KeyStatus().LastLeakReport; report != nil && token == octopodsv1alpha1.LeakToken(report) {
		return octopodsv1alpha1.LeakReporter
	}
	if token != key.GetAnnotations()[octopodsv1alpha1.RotateAnnotation] && strings.HasPrefix(token, keyplan.ScheduledTokenPrefix) {
		return octopodsv1alpha1.OperatorName
	}
	if by := key.GetAnnotations()[octopodsv1alpha1.RotateRequestedByAnnotation]; by != "" {
		return by
	}
	return "unknown"
}

func desired(key octopodsv1alpha1.KeyObject) keyplan.Desired {
	settings := key.Settings()
	d := keyplan.Desired{RotateToken: key.GetAnnotations()[octopodsv1alpha1.RotateAnnotation]}
	if settings.RotationGracePeriod != nil {
		d.GracePeriod = settings.RotationGracePeriod.Duration
	}
	if settings.RotationInterval != nil {
		d.RotationInterval = settings.RotationInterval.Duration
	}
	d.RevokePreviousToken = key.GetAnnotations()[octopodsv1alpha1.RevokePreviousAnnotation]
	if report := key.KeyStatus().LastLeakReport; report != nil && settings.LeakResponse != octopodsv1alpha1.LeakResponseReport {
		d.LeakedKeyID, d.LeakToken = report.KeyID, octopodsv1alpha1.LeakToken(report)
	}
	return d
}

// ownerGoneReason is the Ready=False reason for a key whose owner is gone
// or going: a workspace key keeps its Workspace reasons.
func ownerGoneReason(kind octopodsv1alpha1.KeyKind, deleting bool) string {
	switch {
	case kind.Kind == octopodsv1alpha1.WorkspaceKey.Kind && deleting:
		return ReasonWorkspaceDeleting
	case kind.Kind == octopodsv1alpha1.WorkspaceKey.Kind:
		return ReasonWorkspaceNotFound
	case deleting:
		return ReasonOwnerDeleting
	}
	return ReasonOwnerNotFound
}
