package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Provider is the customer-support platform a workspace lives in.
// +kubebuilder:validation:Enum=Intercom;HubSpot
type Provider string

// The providers a Workspace can connect.
const (
	ProviderIntercom Provider = "Intercom"
	ProviderHubSpot  Provider = "HubSpot"
)

// NoAPIKeySummary is what the API KEY column shows for a workspace without a key,
// as the Octopods "Workspace API Keys" settings table does.
const NoAPIKeySummary = "No API key generated"

// WorkspaceSpec describes an Intercom or HubSpot workspace connected to Octopods.
type WorkspaceSpec struct {
	// displayName is the name people see for this workspace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	DisplayName string `json:"displayName"`

	// provider is the platform the workspace lives in: Intercom or HubSpot.
	// +required
	Provider Provider `json:"provider"`
}

// WorkspaceStatus summarises the workspace's API key for `kubectl get workspaces`.
type WorkspaceStatus struct {
	// apiKey reads like the settings table: "<secret> (key <keyID>)", or
	// "No API key generated" while the workspace has no issued key. The API
	// server defaults it, so a Workspace shows it from its creation on,
	// before the operator writes any status.
	// +optional
	// +kubebuilder:default="No API key generated"
	APIKey string `json:"apiKey,omitempty"`

	// secretName is the Secret that holds the workspace's key, once issued.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// keyID is the public identifier of the workspace's current key, once issued.
	// It is safe to show and log; the key itself never appears in status.
	// +optional
	KeyID string `json:"keyID,omitempty"`

	// observedGeneration is the generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, and KeyIssued.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Workspace is an Intercom or HubSpot workspace connected to Octopods. Its API
// key is the WorkspaceAPIKey of the same name in the same namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ws,categories=octopods
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="a Workspace name is at most 63 characters: it is the value of the octopods.io/workspace label on its key Secret, and label values are at most 63 characters",reason=FieldValueInvalid
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`
// +kubebuilder:printcolumn:name="API Key",type=string,JSONPath=`.status.apiKey`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`,priority=1
// +kubebuilder:printcolumn:name="Key ID",type=string,JSONPath=`.status.keyID`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Workspace struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec WorkspaceSpec `json:"spec"`
	// +optional
	// +kubebuilder:default={apiKey:"No API key generated"}
	Status WorkspaceStatus `json:"status,omitempty"`
}

// WorkspaceList is a list of Workspaces.
// +kubebuilder:object:root=true
type WorkspaceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Workspace `json:"items"`
}

// KeyScope is what the key unlocks: a workspace key unlocks every channel of the workspace.
func (w *Workspace) KeyScope() KeyScope {
	return KeyScope{Type: KeyTypeWorkspace, Workspace: w.Name}
}
