package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ChannelType is the kind of messaging channel.
// +kubebuilder:validation:Enum=SMS;VBM;Telegram
type ChannelType string

// The channel types.
const (
	ChannelSMS      ChannelType = "SMS"
	ChannelVBM      ChannelType = "VBM"
	ChannelTelegram ChannelType = "Telegram"
)

// OwnerStatus is what a Channel or WhatsAppBusinessAccount shows of its key.
type OwnerStatus struct {
	// observedGeneration is the generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: none yet; the key's own status says whether it is issued.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ChannelSpec is one messaging channel of a workspace.
type ChannelSpec struct {
	// workspaceName is the Workspace the channel belongs to. Immutable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="workspaceName is immutable",reason=FieldValueForbidden
	WorkspaceName string `json:"workspaceName"`
	// type is SMS (a Twilio line), VBM (a Viber sender) or Telegram (a bot).
	// It decides which endpoints the channel's key may call. Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="type is immutable: it decides what the channel's key may call; create another Channel",reason=FieldValueForbidden
	Type ChannelType `json:"type"`
	// displayName is the name people see for this channel.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	DisplayName string `json:"displayName"`
}

// Channel is one messaging channel (an SMS line, a Viber sender, a Telegram
// bot) of a workspace. Its key is the ChannelAPIKey of the same name.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ch,categories=octopods
// +kubebuilder:printcolumn:name="Channel",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspaceName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Channel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ChannelSpec `json:"spec"`
	// +optional
	Status OwnerStatus `json:"status,omitempty"`
}

// KeyScope is what the key unlocks: a channel key unlocks the channel's own endpoints.
func (c *Channel) KeyScope() KeyScope {
	return KeyScope{Type: KeyTypeChannel, Workspace: c.Spec.WorkspaceName, Channel: c.Name, ChannelType: c.Spec.Type}
}

// ChannelList is a list of Channels.
// +kubebuilder:object:root=true
type ChannelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Channel `json:"items"`
}

// ChannelAPIKeySpec is "Create API Key" for one channel.
// +kubebuilder:validation:XValidation:rule="(has(self.secretName) ? self.secretName : self.channelName + '-channel-api-key') == (has(oldSelf.secretName) ? oldSelf.secretName : oldSelf.channelName + '-channel-api-key')",message="secretName is immutable: delete the ChannelAPIKey and create it again with the new spec.secretName",fieldPath=".secretName",reason=FieldValueForbidden
type ChannelAPIKeySpec struct {
	// channelName is the Channel this key belongs to; it must equal
	// metadata.name (one key per channel). Immutable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="channelName is immutable",reason=FieldValueForbidden
	ChannelName string `json:"channelName"`

	KeySettings `json:",inline"`
}

// ChannelAPIKey is the API key of one channel: it calls only that channel's
// endpoints. Its name must equal spec.channelName.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=chk,categories=octopods
// +kubebuilder:validation:XValidation:rule="self.spec.channelName == self.metadata.name",message="spec.channelName must equal metadata.name: a channel has exactly one key, the ChannelAPIKey named after it",fieldPath=".spec.channelName",reason=FieldValueInvalid
// +kubebuilder:printcolumn:name="Channel",type=string,JSONPath=`.spec.channelName`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.status.scope.channelType`
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.status.scope.workspace`
// +kubebuilder:printcolumn:name="Key ID",type=string,JSONPath=`.status.keyID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last Used",type=date,JSONPath=`.status.lastUsedTime`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ChannelAPIKey struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ChannelAPIKeySpec `json:"spec"`
	// +optional
	Status APIKeyStatus `json:"status,omitempty"`
}

// KeyKind is the key kind; with OwnerName, Settings and KeyStatus it
// makes a ChannelAPIKey a KeyObject.
func (k *ChannelAPIKey) KeyKind() KeyKind { return ChannelKey }

// OwnerName names the key's owner.
func (k *ChannelAPIKey) OwnerName() string { return k.Spec.ChannelName }

// SetOwnerName sets the name of the key's owner.
func (k *ChannelAPIKey) SetOwnerName(name string) { k.Spec.ChannelName = name }

// Settings are the spec fields every key kind shares.
func (k *ChannelAPIKey) Settings() *KeySettings { return &k.Spec.KeySettings }

// KeyStatus is the status every key kind shares.
func (k *ChannelAPIKey) KeyStatus() *APIKeyStatus { return &k.Status }

// ChannelAPIKeyList is a list of ChannelAPIKeys.
// +kubebuilder:object:root=true
type ChannelAPIKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChannelAPIKey `json:"items"`
}

// WhatsAppBusinessAccountSpec is one WhatsApp Business Account (WABA) of a
// workspace.
type WhatsAppBusinessAccountSpec struct {
	// workspaceName is the Workspace the account belongs to. Immutable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="workspaceName is immutable",reason=FieldValueForbidden
	WorkspaceName string `json:"workspaceName"`
	// displayName is the name people see for this account.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	DisplayName string `json:"displayName"`
	// phoneNumbers are the account's numbers, in E.164 form (+4915112345678).
	// One key covers all of them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:Pattern=`^\+[1-9][0-9]{6,14}$`
	PhoneNumbers []string `json:"phoneNumbers,omitempty"`
}

// WhatsAppBusinessAccount is one WhatsApp Business Account of a workspace.
// Its key is the WhatsAppAPIKey of the same name.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=waba,categories=octopods
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspaceName`
// +kubebuilder:printcolumn:name="Numbers",type=string,JSONPath=`.spec.phoneNumbers`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WhatsAppBusinessAccount struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec WhatsAppBusinessAccountSpec `json:"spec"`
	// +optional
	Status OwnerStatus `json:"status,omitempty"`
}

// KeyScope is what the key unlocks: a WhatsApp Business key unlocks the account's endpoints.
func (w *WhatsAppBusinessAccount) KeyScope() KeyScope {
	return KeyScope{Type: KeyTypeWhatsApp, Workspace: w.Spec.WorkspaceName, WhatsAppBusinessAccount: w.Name}
}

// WhatsAppBusinessAccountList is a list of WhatsAppBusinessAccounts.
// +kubebuilder:object:root=true
type WhatsAppBusinessAccountList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WhatsAppBusinessAccount `json:"items"`
}

// WhatsAppAPIKeySpec is "Create API Key" for one WhatsApp Business Account.
// +kubebuilder:validation:XValidation:rule="(has(self.secretName) ? self.secretName : self.whatsAppBusinessAccountName + '-whatsapp-api-key') == (has(oldSelf.secretName) ? oldSelf.secretName : oldSelf.whatsAppBusinessAccountName + '-whatsapp-api-key')",message="secretName is immutable: delete the WhatsAppAPIKey and create it again with the new spec.secretName",fieldPath=".secretName",reason=FieldValueForbidden
type WhatsAppAPIKeySpec struct {
	// whatsAppBusinessAccountName is the account this key belongs to; it
	// must equal metadata.name (one key per account). Immutable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="whatsAppBusinessAccountName is immutable",reason=FieldValueForbidden
	WhatsAppBusinessAccountName string `json:"whatsAppBusinessAccountName"`

	KeySettings `json:",inline"`
}

// WhatsAppAPIKey is the API key of one WhatsApp Business Account: it calls
// the /api/v1/whatsapp/ endpoints. Its name must equal
// spec.whatsAppBusinessAccountName.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wak,categories=octopods
// +kubebuilder:validation:XValidation:rule="self.spec.whatsAppBusinessAccountName == self.metadata.name",message="spec.whatsAppBusinessAccountName must equal metadata.name: an account has exactly one key, the WhatsAppAPIKey named after it",fieldPath=".spec.whatsAppBusinessAccountName",reason=FieldValueInvalid
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.spec.whatsAppBusinessAccountName`
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.status.scope.workspace`
// +kubebuilder:printcolumn:name="Key ID",type=string,JSONPath=`.status.keyID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last Used",type=date,JSONPath=`.status.lastUsedTime`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WhatsAppAPIKey struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec WhatsAppAPIKeySpec `json:"spec"`
	// +optional
	Status APIKeyStatus `json:"status,omitempty"`
}

// KeyKind is the key kind; with OwnerName, Settings and KeyStatus it
// makes a WhatsAppAPIKey a KeyObject.
func (k *WhatsAppAPIKey) KeyKind() KeyKind { return WhatsAppKey }

// OwnerName names the key's owner.
func (k *WhatsAppAPIKey) OwnerName() string { return k.Spec.WhatsAppBusinessAccountName }

// SetOwnerName sets the name of the key's owner.
func (k *WhatsAppAPIKey) SetOwnerName(name string) { k.Spec.WhatsAppBusinessAccountName = name }

// Settings are the spec fields every key kind shares.
func (k *WhatsAppAPIKey) Settings() *KeySettings { return &k.Spec.KeySettings }

// KeyStatus is the status every key kind shares.
func (k *WhatsAppAPIKey) KeyStatus() *APIKeyStatus { return &k.Status }

// WhatsAppAPIKeyList is a list of WhatsAppAPIKeys.
// +kubebuilder:object:root=true
type WhatsAppAPIKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WhatsAppAPIKey `json:"items"`
}
