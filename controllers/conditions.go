package controllers

import (
	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// ConditionReady is the one condition type (see the api's).
const ConditionReady = octopodsv1alpha1.ConditionReady

// Condition reasons. Each also names the Event emitted when it is set.
const (
	// ReasonKeyIssued (Ready=True): the key is in its Secret.
	ReasonKeyIssued = "KeyIssued"
	// ReasonWorkspaceNotFound (Ready=False): the Workspace does not exist
	// (yet); the key is issued as soon as it does.
	ReasonWorkspaceNotFound = "WorkspaceNotFound"
	// ReasonWorkspaceDeleting (Ready=False): the Workspace is being deleted,
	// so its key is revoked.
	ReasonWorkspaceDeleting = "WorkspaceDeleting"
	// ReasonOwnerNotFound (Ready=False): a channel or WhatsApp key's owner
	// (Channel, WhatsAppBusinessAccount) or its Workspace does not exist;
	// the key is issued as soon as both do.
	ReasonOwnerNotFound = "OwnerNotFound"
	// ReasonOwnerDeleting (Ready=False): that owner or its Workspace is being
	// deleted, so the key is revoked.
	ReasonOwnerDeleting = "OwnerDeleting"
	// ReasonSecretConflict (Ready=False): a Secret with the target name exists
	// and is not managed by this WorkspaceAPIKey; it is never taken over.
	ReasonSecretConflict = "SecretConflict"
	// ReasonSecretDeleting (Ready=False): the key's Secret is being deleted
	// (held by someone's finalizer); none of its keys is admitted meanwhile.
	ReasonSecretDeleting = "SecretDeleting"
	// ReasonSecretWriteFailed (Ready=False): the API server refused writing
	// the key's Secret; the message names the field.
	ReasonSecretWriteFailed = "SecretWriteFailed"
	// ReasonInvalidSpec (Ready=False): a spec field holds what the operator
	// cannot read (stored before the schema refused it, or written behind
	// the API server's back); the message names the field. Nothing is
	// issued, rotated or revoked for the key until it is fixed.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonNoAPIKey (Workspace Ready=False): no WorkspaceAPIKey exists.
	ReasonNoAPIKey = "NoAPIKey"
	// ReasonKeyNotReady (Workspace Ready=False): the WorkspaceAPIKey exists
	// but its key is not issued.
	ReasonKeyNotReady = "KeyNotReady"
)

// Event reasons for actions, beyond the condition reasons above.
const (
	// EventKeyRotated: a new rotation token replaced the key.
	EventKeyRotated = "KeyRotated"
	// EventKeyReissued (Warning): the Secret was deleted or its key edited by
	// hand, so a fresh key was issued.
	EventKeyReissued = "KeyReissued"
	// EventPreviousKeyExpired: the grace period of a replaced key ended.
	EventPreviousKeyExpired = "PreviousKeyExpired"
	// EventPreviousKeyRevoked: octopods.io/revoke-previous ended a grace
	// period early.
	EventPreviousKeyRevoked = "PreviousKeyRevoked"
	// EventUntrustedKeyRemoved (Warning): a previous-api-key added to the
	// Secret by hand was removed; it was never admitted.
	EventUntrustedKeyRemoved = "UntrustedKeyRemoved"
	// EventKeyIDRepaired: the key-id annotation was edited by hand and set
	// back; the key itself is unchanged.
	EventKeyIDRepaired = "KeyIDRepaired"
	// EventKeyRevoked: the Secret was deleted because its WorkspaceAPIKey or
	// Workspace went away.
	EventKeyRevoked = "KeyRevoked"
	// EventRevokedKeyPresented (Warning): an auth proxy refused one of the
	// key's revoked keys (status.lastRevokedKeyUse); at most one a minute.
	EventRevokedKeyPresented = "RevokedKeyPresented"
	// EventRotationTokenAlreadyUsed: the rotate annotation holds a token
	// already used for this key (not the last one); nothing rotated.
	EventRotationTokenAlreadyUsed = "RotationTokenAlreadyUsed"
	// EventKeyLeaked (Warning): one of the key's keys was reported found in
	// public (status.lastLeakReport); the message names where and what
	// spec.leakResponse did. One per report.
	EventKeyLeaked = "KeyLeaked"
	// EventKeyUsedFromDisallowedSource (Warning): an auth proxy refused a
	// valid key from outside spec.allowedSourceRanges
	// (status.lastDisallowedSourceUse); at most one a minute.
	EventKeyUsedFromDisallowedSource = "KeyUsedFromDisallowedSource"
	// EventRateLimited (Warning): an auth proxy refused requests over
	// spec.rateLimit (status.lastRateLimited); at most one a minute.
	EventRateLimited = "RateLimited"
	// EventFutureUsageTimeRemoved (Warning): a usage time later than any
	// proxy's clock allows was removed; it would have frozen the record.
	EventFutureUsageTimeRemoved = "FutureUsageTimeRemoved"
)

// warningReasons are the reasons whose Events are of type Warning.
var warningReasons = map[string]bool{
	EventKeyReissued:                 true,
	EventUntrustedKeyRemoved:         true,
	EventRevokedKeyPresented:         true,
	EventFutureUsageTimeRemoved:      true,
	EventKeyLeaked:                   true,
	EventKeyUsedFromDisallowedSource: true,
	ReasonSecretConflict:             true,
	ReasonSecretWriteFailed:          true,
	ReasonSecretDeleting:             true,
	ReasonInvalidSpec:                true,
}

// statusReporter emits the Events that go with condition changes and actions.
type statusReporter struct {
	events recorder.EventRecorder
}

func eventType(reason string) string {
	if warningReasons[reason] {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}

// setReady sets the Ready condition. Messages never contain key material.
func setReady(obj client.Object, conditions *[]metav1.Condition, status metav1.ConditionStatus, reason, message string) {
	setReadyCondition(conditions, obj.GetGeneration(), status, reason, message)
}

// event emits an Event for an action that does not change a condition.
func (s statusReporter) event(obj runtime.Object, reason, message string) {
	keyEvents.WithLabelValues(reason).Inc()
	s.events.Eventf(obj, nil, eventType(reason), reason, reason, "%s", message)
}
