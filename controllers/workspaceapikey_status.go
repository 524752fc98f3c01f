package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
)

// keyObservation is what one reconcile of a WorkspaceAPIKey saw and did: the
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

// computeKeyStatus is the status of a key after a reconcile. Fields written
// by others (the proxy's lastUsedTime) are kept. observedGeneration moves
// only when the reconcile succeeded; published keys are only ever added by a
// successful reconcile, and always only keys the Secret holds.
func computeKeyStatus(key *octopodsv1alpha1.WorkspaceAPIKey, prev octopodsv1alpha1.WorkspaceAPIKeyStatus, obs keyObservation, succeeded bool) octopodsv1alpha1.WorkspaceAPIKeyStatus {
	if !obs.observed {
		// Failed before learning anything: a transient error must neither
		// wipe the status nor unpublish a working key.
		st := *prev.DeepCopy()
		if obs.readyStatus != "" {
			setReadyCondition(&st.Conditions, key.Generation, obs.readyStatus, obs.reason, obs.message)
		}
		return st
	}
	st := octopodsv1alpha1.WorkspaceAPIKeyStatus{
		LastRotationToken:  prev.LastRotationToken,
		LastUsedTime:       prev.LastUsedTime,
		ObservedGeneration: prev.ObservedGeneration,
		Conditions:         append([]metav1.Condition(nil), prev.Conditions...),
	}
	if succeeded {
		st.ObservedGeneration = key.Generation
	}
	if s := obs.secret; s != nil {
		a := s.Annotations
		st.SecretName = s.Name
		st.KeyID = a[octopodsv1alpha1.KeyIDAnnotation]
		st.LastRotationToken = a[octopodsv1alpha1.RotationTokenAnnotation]
		st.IssuedAt = parseTime(a[octopodsv1alpha1.IssuedAtAnnotation])
		st.RotatedAt = parseTime(a[octopodsv1alpha1.RotatedAtAnnotation])
		st.PreviousKeyID = a[octopodsv1alpha1.PreviousKeyIDAnnotation]
		st.PreviousValidUntil = parseTime(a[octopodsv1alpha1.PreviousValidUntilAnnotation])
	}
	st.PublishedKeys = publishedKeys(obs.secret, prev.PublishedKeys, st.RotatedAt)
	if !succeeded {
		st.PublishedKeys = intersectPublished(prev.PublishedKeys, st.PublishedKeys)
	}
	if len(st.PublishedKeys) == 0 {
		st.PublishedKeys = nil
	}

	status, reason, message := obs.readyStatus, obs.reason, obs.message
	switch {
	case status == "" && obs.secret != nil:
		status, reason, message = metav1.ConditionTrue, ReasonKeyIssued, fmt.Sprintf("Key %s is in Secret %q", st.KeyID, obs.secret.Name)
	case status == "":
		return st // failed before it knew anything: keep the condition
	}
	setReadyCondition(&st.Conditions, key.Generation, status, reason, message)
	return st
}

func setReadyCondition(conditions *[]metav1.Condition, generation int64, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type: ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

// publishedKeys are the keys of a managed Secret the proxy may admit: its
// current key when intact, and its previous key only if the operator
// published it before (as current, or as previous) — a previous key added
// by hand never is. A previous key's end is never later than it was
// published with, nor than rotatedAt + octopodsv1alpha1.MaxPreviousKeyLifetime.
func publishedKeys(secret *corev1.Secret, prev []octopodsv1alpha1.PublishedKey, rotatedAt *metav1.Time) []octopodsv1alpha1.PublishedKey {
	if secret == nil || !secret.DeletionTimestamp.IsZero() {
		return nil
	}
	var out []octopodsv1alpha1.PublishedKey
	current := string(secret.Data[octopodsv1alpha1.SecretKeyAPIKey])
	if apikey.Validate(current) == nil && apikey.ID(current) == secret.Annotations[octopodsv1alpha1.KeyIDAnnotation] {
		out = append(out, publishedKey(current, nil))
	}
	previous := string(secret.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey])
	until := parseTime(secret.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation])
	if apikey.Validate(previous) != nil || until == nil || rotatedAt == nil || len(out) == 0 {
		return out
	}
	digest := apikey.DigestOf(previous).String()
	for _, p := range prev {
		if p.Digest != digest {
			continue
		}
		if p.ValidUntil != nil && p.ValidUntil.Before(until) {
			until = p.ValidUntil
		}
		if limit := rotatedAt.Add(octopodsv1alpha1.MaxPreviousKeyLifetime); limit.Before(until.Time) {
			until = &metav1.Time{Time: limit}
		}
		return append(out, publishedKey(previous, until))
	}
	return out
}

func publishedKey(key string, validUntil *metav1.Time) octopodsv1alpha1.PublishedKey {
	d := apikey.DigestOf(key)
	return octopodsv1alpha1.PublishedKey{KeyID: d.ID(), Digest: d.String(), ValidUntil: validUntil}
}

// intersectPublished keeps the entries of prev whose digest is in next: what
// a failed reconcile may still publish (never anything new).
func intersectPublished(prev, next []octopodsv1alpha1.PublishedKey) []octopodsv1alpha1.PublishedKey {
	var out []octopodsv1alpha1.PublishedKey
	for _, p := range prev {
		if publishes(next, p.Digest) {
			out = append(out, p)
		}
	}
	return out
}

// publishes reports whether digest is among the published keys.
func publishes(published []octopodsv1alpha1.PublishedKey, digest string) bool {
	for _, p := range published {
		if p.Digest == digest {
			return true
		}
	}
	return false
}

// secretHolds reports whether the Secret (nil: none) holds the key of digest.
func secretHolds(secret *corev1.Secret, digest string) bool {
	if secret == nil {
		return false
	}
	for _, k := range []string{octopodsv1alpha1.SecretKeyAPIKey, octopodsv1alpha1.SecretKeyPreviousAPIKey} {
		if v, ok := secret.Data[k]; ok && apikey.DigestOf(string(v)).String() == digest {
			return true
		}
	}
	return false
}

func parseTime(s string) *metav1.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil
	}
	return &metav1.Time{Time: t}
}
