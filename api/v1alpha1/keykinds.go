package v1alpha1

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionReady is the one condition type on every kind: for a key, it is
// issued and in its Secret; for a Workspace, it has an issued key. People's
// tools read it too.
const ConditionReady = "Ready"

// KeyKind is what tells one kind of API key from another, as data: the
// lifecycle code (store, reconciler, proxy index) takes it as a parameter,
// never as a code path of its own.
type KeyKind struct {
	// Kind is the key object's kind, e.g. "WorkspaceAPIKey".
	Kind string
	// KeyType is the key's type as the proxy announces it
	// (X-Octopods-Key-Type).
	KeyType string
	// SecretType is the type of the Secret that holds the key.
	SecretType corev1.SecretType
	// SecretNameSuffix makes the default Secret name: <owner name><suffix>.
	SecretNameSuffix string
}

// WorkspaceKey is the kind of a workspace's key.
var WorkspaceKey = KeyKind{
	Kind:             "WorkspaceAPIKey",
	KeyType:          "workspace",
	SecretType:       SecretType,
	SecretNameSuffix: SecretNameSuffix,
}

// KeyKinds are every kind of API key.
var KeyKinds = []KeyKind{WorkspaceKey}

// KeySecretController is the one ownership predicate for key Secrets: the
// controller reference of secret when it is a key Secret written for a key
// object of the kind its Secret type belongs to, nil for any other Secret.
// A Secret it returns nil for is never written, revealed or deleted.
func KeySecretController(secret *corev1.Secret) *metav1.OwnerReference {
	ref := metav1.GetControllerOf(secret)
	if ref == nil || !strings.HasPrefix(ref.APIVersion, GroupVersion.Group+"/") {
		return nil
	}
	for _, k := range KeyKinds {
		if k.SecretType == secret.Type && k.Kind == ref.Kind {
			return ref
		}
	}
	return nil
}

// IsKeySecretOf reports whether secret is a key Secret written for the key
// object of that kind and name (of any incarnation).
func IsKeySecretOf(secret *corev1.Secret, kind KeyKind, name string) bool {
	ref := KeySecretController(secret)
	return ref != nil && ref.Kind == kind.Kind && ref.Name == name
}

// KeyName is the name of the key object of the owner (Workspace, Channel or
// WhatsAppBusinessAccount) named ownerName: the same name, so the API
// server's name uniqueness keeps one key per owner, and the admission rules
// hold it. Every step from an owner to its key, or back, goes through
// KeyName or OwnerName: the controllers' mapping and finalizers, the
// webhooks, the settings page and the plugin.
func KeyName(ownerName string) string { return ownerName }

// OwnerName is the name of the owner of the key object named keyName.
func OwnerName(keyName string) string { return keyName }
