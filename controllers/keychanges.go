package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyplan"
	"github.com/octopods/octopods-operator/internal/keysecret"
)

// keyRequest is what a key change takes from its key object.
type keyRequest struct {
	now time.Time
	// prefix is the key kind's.
	prefix string
	// requestedBy is who asked for plan.Token (rotationRequester).
	requestedBy string
	// interval is spec.rotationInterval, named in a scheduled rotation's Event.
	interval time.Duration
}

// changeKeys makes the plan's key changes on secret and returns the Event
// that announces them ("" when none).
func changeKeys(secret *corev1.Secret, plan keyplan.Plan, req keyRequest) (reason, message string, err error) {
	oldID := secret.Annotations[octopodsv1alpha1.KeyIDAnnotation]
	if key := string(secret.Data[octopodsv1alpha1.SecretKeyAPIKey]); apikey.Validate(key) == nil {
		oldID = apikey.ID(key) // the annotation may have been edited
	}
	var newID string
	switch plan.Action {
	case keyplan.Rotate:
		token := plan.Token
		oldKey := string(secret.Data[octopodsv1alpha1.SecretKeyAPIKey])
		endedEarly := ""
		if earlier := secret.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation]; earlier != "" {
			endedEarly = fmt.Sprintf("; the earlier previous key %s stopped working before the end of its grace period", earlier)
		}
		keysecret.ClearPrevious(secret)
		if newID, err = keysecret.SetNewKey(secret, req.prefix, token, req.now); err != nil {
			return "", "", err
		}
		secret.Annotations[octopodsv1alpha1.RotatedAtAnnotation] = req.now.UTC().Format(time.RFC3339)
		by := req.requestedBy
		secret.Annotations[octopodsv1alpha1.RotatedByAnnotation] = by
		reason, message = EventKeyRotated, fmt.Sprintf("Rotated key %s to %s for token %q, requested by %s", oldID, newID, token, by)
		switch {
		case plan.Leaked:
			message = fmt.Sprintf("Rotated key %s to %s at once, with no grace period: it was reported found in public (token %q)", oldID, newID, token)
		case by == octopodsv1alpha1.OperatorName:
			message = fmt.Sprintf("Rotated key %s to %s on schedule (every %s; token %q)", oldID, newID, req.interval, token)
		}
		if plan.KeepPrevious {
			until := plan.PreviousValidUntil.UTC().Format(time.RFC3339)
			secret.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey] = []byte(oldKey)
			secret.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation] = oldID
			secret.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation] = until
			message += fmt.Sprintf("; %s keeps working until %s", oldID, until)
		}
		message += endedEarly
	case keyplan.Reissue:
		keysecret.ClearPrevious(secret)
		// A hand edit is not a rotation request: keep the handled token,
		// unless a new one is pending, which this one new key handles too.
		token := secret.Annotations[octopodsv1alpha1.RotationTokenAnnotation]
		if plan.HandlesToken {
			token = plan.Token
		}
		if newID, err = keysecret.SetNewKey(secret, req.prefix, token, req.now); err != nil {
			return "", "", err
		}
		by := octopodsv1alpha1.OperatorName
		if plan.HandlesToken {
			by = req.requestedBy
		}
		secret.Annotations[octopodsv1alpha1.RotatedByAnnotation] = by
		reason, message = EventKeyReissued, fmt.Sprintf("The key in Secret %q was edited by hand: issued new key %s", secret.Name, newID)
		if plan.HandlesToken {
			message += fmt.Sprintf(", which also handles rotation token %q", token)
		}
	case keyplan.Keep:
		reason, message = keepChanges(secret, plan, oldID)
	}
	return reason, message, nil
}

// keepChanges makes a Keep plan's changes (key ID repair, revoke-previous
// record, previous key removal) and returns the Event that announces them.
func keepChanges(secret *corev1.Secret, plan keyplan.Plan, keyID string) (reason, message string) {
	if plan.RepairKeyID {
		secret.Annotations[octopodsv1alpha1.KeyIDAnnotation] = keyID
		reason, message = EventKeyIDRepaired, fmt.Sprintf("The %s annotation of Secret %q was edited by hand: set back to %s; the key is unchanged", octopodsv1alpha1.KeyIDAnnotation, secret.Name, keyID)
	}
	if plan.RevokeToken != "" {
		secret.Annotations[octopodsv1alpha1.RevokePreviousTokenAnnotation] = plan.RevokeToken
	}
	if plan.DropPrevious {
		reason, message = EventPreviousKeyExpired, fmt.Sprintf("Previous key %s stopped working", secret.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation])
		if plan.RevokeToken != "" {
			reason, message = EventPreviousKeyRevoked, fmt.Sprintf("Previous key %s stopped working before the end of its grace period, for revoke-previous token %q", secret.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation], plan.RevokeToken)
		}
		if plan.Leaked {
			reason, message = EventPreviousKeyRevoked, fmt.Sprintf("Previous key %s stopped working before the end of its grace period: it was reported found in public", secret.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation])
		}
		if plan.PreviousUntrusted {
			reason, message = EventUntrustedKeyRemoved, fmt.Sprintf("Secret %q held a previous-api-key the operator never issued: removed, never admitted", secret.Name)
		}
		keysecret.ClearPrevious(secret)
	}
	return reason, message
}
