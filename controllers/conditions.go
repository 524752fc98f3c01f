package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// ConditionReady is the one condition type on both kinds: for a
// WorkspaceAPIKey, its key is issued and in its Secret; for a Workspace, it
// has an issued key.
const ConditionReady = "Ready"

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
	// ReasonSecretConflict (Ready=False): a Secret with the target name exists
	// and is not managed by this WorkspaceAPIKey; it is never taken over.
	ReasonSecretConflict = "SecretConflict"
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
	// EventKeyRevoked: the Secret was deleted because its WorkspaceAPIKey or
	// Workspace went away.
	EventKeyRevoked = "KeyRevoked"
)

// warningReasons are the reasons whose Events are of type Warning.
var warningReasons = map[string]bool{
	EventKeyReissued:     true,
	ReasonSecretConflict: true,
}

// statusReporter sets a condition and emits its Event together, so the two
// never disagree.
type statusReporter struct {
	events recorder.EventRecorder
}

func eventType(reason string) string {
	if warningReasons[reason] {
		return "Warning"
	}
	return "Normal"
}

// setReady sets the Ready condition. Messages never contain key material.
func setReady(obj client.Object, conditions *[]metav1.Condition, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type:               ConditionReady,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: obj.GetGeneration(),
	})
}

// report sets the Ready condition and, when what it says changes, emits the
// Event of the same reason, so the two never disagree. Successful issuance is
// reported by the write that issued the key instead: a reconcile on a cache
// that has not seen our last status write would announce it twice.
func (s statusReporter) report(obj client.Object, conditions *[]metav1.Condition, status metav1.ConditionStatus, reason, message string) {
	var prev metav1.Condition // a copy: SetStatusCondition edits in place
	if found := meta.FindStatusCondition(*conditions, ConditionReady); found != nil {
		prev = *found
	}
	setReady(obj, conditions, status, reason, message)
	if prev.Status != status || prev.Reason != reason || prev.Message != message {
		s.event(obj, reason, message)
	}
}

// event emits an Event for an action that does not change a condition.
func (s statusReporter) event(obj runtime.Object, reason, message string) {
	s.events.Eventf(obj, nil, eventType(reason), reason, reason, "%s", message)
}
