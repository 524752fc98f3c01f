package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/keyplan"
	"github.com/octopods/octopods-operator/internal/keysecret"
)

// keyObservation is what one reconcile of a key object saw and did: the
// only input of its status, which computeKeyStatus derives in one place.
type keyObservation struct {
	// observed: the reconcile learnt what the Secret holds (secret, or that
	// there is none to publish). Until then the status is kept as it was.
	observed bool
	// secret is the key's own Secret as the API server last confirmed it
	// (after this reconcile's write, if any); nil when the key has none.
	secret *corev1.Secret
	// Ready condition. Zero means the key is issued (Ready=True, KeyIssued).
	readyStatus     metav1.ConditionStatus
	reason, message string
}

// notReady records why the key is not issued.
func (o *keyObservation) notReady(reason, message string) {
	o.readyStatus, o.reason, o.message = metav1.ConditionFalse, reason, message
}

// saw records the Secret the key holds (nil: none, or none of its own).
func (o *keyObservation) saw(secret *corev1.Secret) {
	o.observed, o.secret = true, secret
}

// computeKeyStatus is the status of a key after a reconcile at now. Fields
// written by others (the proxy's lastUsedTime) are kept. observedGeneration
// moves only when the reconcile succeeded. published are the keys the
// proxies may admit before the reconcile: prev's, and those the slices
// publish ahead of it (written after a Secret write that succeeded, whose
// status write failed). Only a successful reconcile publishes a key beyond
// them, and only keys the Secret holds are published; a key no longer
// published is recorded in revokedKeys.
// scope is what the owner gives the key, published with its keys.
func computeKeyStatus(key octopodsv1alpha1.KeyObject, prev octopodsv1alpha1.APIKeyStatus, published []octopodsv1alpha1.PublishedKey, obs keyObservation, scope octopodsv1alpha1.KeyScope, succeeded bool, now time.Time) octopodsv1alpha1.APIKeyStatus {
	if !obs.observed {
		// Failed before learning anything: a transient error must neither
		// wipe the status nor unpublish a working key.
		st := *prev.DeepCopy()
		if obs.readyStatus != "" {
			setReadyCondition(&st.Conditions, key.GetGeneration(), obs.readyStatus, obs.reason, obs.message)
		}
		return st
	}
	st := octopodsv1alpha1.APIKeyStatus{
		LastRotationToken:  prev.LastRotationToken,
		ObservedGeneration: prev.ObservedGeneration,
		Conditions:         append([]metav1.Condition(nil), prev.Conditions...),
	}
	st.CopyUsage(&prev) // the proxies': kept as they wrote them
	if succeeded {
		st.ObservedGeneration = key.GetGeneration()
	}
	if s := obs.secret; s != nil {
		a := s.Annotations
		st.SecretName = s.Name
		st.KeyID = a[octopodsv1alpha1.KeyIDAnnotation]
		st.LastRotationToken = a[octopodsv1alpha1.RotationTokenAnnotation]
		st.IssuedAt = keysecret.ParseTime(a[octopodsv1alpha1.IssuedAtAnnotation])
		st.RotatedAt = keysecret.ParseTime(a[octopodsv1alpha1.RotatedAtAnnotation])
		st.PreviousKeyID = a[octopodsv1alpha1.PreviousKeyIDAnnotation]
		st.PreviousValidUntil = keysecret.ParseTime(a[octopodsv1alpha1.PreviousValidUntilAnnotation])
		st.LastRotatedBy = a[octopodsv1alpha1.RotatedByAnnotation]
		if interval := key.Settings().RotationInterval; interval != nil && st.IssuedAt != nil {
			st.NextRotationAt = &metav1.Time{Time: keyplan.NextRotation(st.IssuedAt.Time, interval.Duration)}
		}
	}
	st.PublishedKeys = keysecret.Published(obs.secret, published, st.RotatedAt)
	if !succeeded {
		st.PublishedKeys = keysecret.Intersect(published, st.PublishedKeys)
	}
	if len(st.PublishedKeys) == 0 {
		st.PublishedKeys = nil
	}
	if st.PublishedKeys != nil && scope.Type != "" {
		st.Scope = &scope
	}
	st.RevokedKeys = keysecret.Revoke(prev.RevokedKeys, published, st.PublishedKeys, prev.LastUseOf, now)

	status, reason, message := obs.readyStatus, obs.reason, obs.message
	switch {
	case status == "" && obs.secret != nil:
		status, reason, message = metav1.ConditionTrue, ReasonKeyIssued, fmt.Sprintf("Key %s is in Secret %q", st.KeyID, obs.secret.Name)
	case status == "":
		return st // failed before it knew anything: keep the condition
	}
	setReadyCondition(&st.Conditions, key.GetGeneration(), status, reason, message)
	return st
}

func setReadyCondition(conditions *[]metav1.Condition, generation int64, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type: ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

// IssuedStatus is the status the key reconciler writes for key once secret
// holds its issued key: for benchmarks that create many keys shaped exactly
// as the operator would have written them.
func IssuedStatus(key *octopodsv1alpha1.WorkspaceAPIKey, secret *corev1.Secret, now time.Time) octopodsv1alpha1.APIKeyStatus {
	var obs keyObservation
	obs.saw(secret)
	scope := octopodsv1alpha1.KeyScope{Type: octopodsv1alpha1.KeyTypeWorkspace, Workspace: key.Spec.WorkspaceName}
	return computeKeyStatus(key, octopodsv1alpha1.APIKeyStatus{}, nil, obs, scope, true, now)
}
