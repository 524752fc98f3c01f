package v1alpha1

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names on the WorkspaceAPIKey and its Secret that users and integrations rely on.
const (
	// RotateAnnotation on a WorkspaceAPIKey asks for a rotation. Each distinct
	// new value rotates the key exactly once.
	RotateAnnotation = "octopods.io/rotate"

	// RevokePreviousAnnotation on a WorkspaceAPIKey ends a running grace
	// period at once: the previous key is unpublished and removed. Each
	// distinct new value acts once.
	RevokePreviousAnnotation = "octopods.io/revoke-previous"
	// RevokePreviousTokenAnnotation, on the Secret, is the last
	// revoke-previous token handled.
	RevokePreviousTokenAnnotation = "octopods.io/revoke-previous-token"

	// CreatedByAnnotation is who created the WorkspaceAPIKey, stamped by
	// the mutating webhook over anything a client sent.
	CreatedByAnnotation = "octopods.io/created-by"
	// RotateRequestedByAnnotation is who last changed octopods.io/rotate,
	// stamped by the mutating webhook over anything a client sent.
	RotateRequestedByAnnotation = "octopods.io/rotate-requested-by"
	// RotatedByAnnotation, on the Secret, is who asked for the rotation
	// that produced its key ("octopods-operator" for a scheduled rotation
	// or a re-issue), written in the same update as the key.
	RotatedByAnnotation = "octopods.io/rotated-by"
	// OperatorName is who a rotation or re-issue the operator decided on
	// is attributed to.
	OperatorName = "octopods-operator"

	// SecretType is the type of every key Secret; the auth proxy watches only it.
	SecretType = "octopods.io/workspace-api-key"
	// SecretKeyAPIKey holds the current key.
	SecretKeyAPIKey = "api-key"
	// SecretKeyPreviousAPIKey holds the key replaced by the last rotation while
	// its grace period lasts.
	SecretKeyPreviousAPIKey = "previous-api-key"

	// WorkspaceLabel names the workspace a key Secret belongs to.
	WorkspaceLabel = "octopods.io/workspace"
	// ManagedByLabel and ManagedByValue mark Secrets this operator manages.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "octopods-operator"

	// KeyIDAnnotation is the public ID of the key in api-key.
	KeyIDAnnotation = "octopods.io/key-id"
	// RotationTokenAnnotation is the last rotation token handled, written in
	// the same update as the key it produced.
	RotationTokenAnnotation = "octopods.io/rotation-token"
	// RotationTokenHistoryAnnotation (a JSON array) is the last 16 rotation
	// tokens handled, so a token re-applied later (a GitOps tool reverting a
	// manual change) rotates nothing.
	RotationTokenHistoryAnnotation = "octopods.io/rotation-token-history"
	// PreviousValidUntilAnnotation (RFC 3339) is when previous-api-key stops working.
	PreviousValidUntilAnnotation = "octopods.io/previous-valid-until"
	// PreviousKeyIDAnnotation is the public ID of the key in previous-api-key.
	PreviousKeyIDAnnotation = "octopods.io/previous-key-id"
	// IssuedAtAnnotation (RFC 3339) is when the key in api-key was generated.
	IssuedAtAnnotation = "octopods.io/issued-at"
	// RotatedAtAnnotation (RFC 3339) is when a rotation token last replaced the key.
	RotatedAtAnnotation = "octopods.io/rotated-at"
	// SecretTemplateAnnotation records which labels and annotations came
	// from spec.secretTemplate, so that a key removed from the template is
	// removed from the Secret too, and nothing else is.
	SecretTemplateAnnotation = "octopods.io/secret-template"

	// MaxPreviousKeyLifetime: a previous key never outlives the rotation
	// that replaced it (status.rotatedAt) by more than this, whatever its
	// Secret or status says. The operator and the proxy both apply it.
	MaxPreviousKeyLifetime = 24 * time.Hour

	// MaxRevokedKeys and RevokedKeyRetention bound status.revokedKeys: the
	// last 5 revoked keys, each for 30 days. The proxy applies the retention
	// too, so an entry past it is never reported, whenever the operator
	// trims it.
	MaxRevokedKeys      = 5
	RevokedKeyRetention = 30 * 24 * time.Hour

	// RevokeFinalizer makes deletion of a WorkspaceAPIKey or Workspace revoke
	// the key (delete its Secret) even where no garbage collector runs. The
	// webhooks add it at creation, so issuing a key costs no metadata write.
	RevokeFinalizer = "octopods.io/revoke-key"

	// SecretNameSuffix makes the default Secret name: <workspaceName>-api-key.
	SecretNameSuffix = "-api-key"
)

// WorkspaceAPIKeySpec is "Create API Key" for one workspace.
// The effective Secret name (secretName, or its default) cannot change.
// +kubebuilder:validation:XValidation:rule="(has(self.secretName) ? self.secretName : self.workspaceName + '-api-key') == (has(oldSelf.secretName) ? oldSelf.secretName : oldSelf.workspaceName + '-api-key')",message="secretName is immutable: delete the WorkspaceAPIKey and create it again with the new spec.secretName",fieldPath=".secretName",reason=FieldValueForbidden
type WorkspaceAPIKeySpec struct {
	// workspaceName is the Workspace this key belongs to. It must equal
	// metadata.name, so the API server's name uniqueness allows one key per
	// workspace. Immutable.
	// At most 63 characters: it is a label value on the key Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="size(self) <= 63",message="spec.workspaceName (the Workspace's name) is at most 63 characters: it is the value of the octopods.io/workspace label on the key Secret",reason=FieldValueInvalid
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="workspaceName is immutable",reason=FieldValueForbidden
	WorkspaceName string `json:"workspaceName"`

	KeySettings `json:",inline"`
}

// SecretTemplate is metadata copied onto the key Secret. Keys this operator
// sets itself (octopods.io/*, app.kubernetes.io/managed-by) always win.
type SecretTemplate struct {
	// labels copied onto the Secret. Keys are label keys ([prefix/]name);
	// values at most 63 characters of letters, digits, "-", "_" and "." (a
	// value the API server refuses shows as Ready=False, SecretWriteFailed,
	// and never stops a rotation). octopods.io/ keys and
	// app.kubernetes.io/managed-by are the operator's.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",messageExpression="'label key ' + self.filter(k, !(size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$')))[0] + ' is not a valid label key: use [prefix/]name, name at most 63 letters, digits, -, _ or ., starting and ending with a letter or digit (for example team or example.com/team)'",reason=FieldValueInvalid
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('octopods.io/') && k != 'app.kubernetes.io/managed-by')",messageExpression="'label ' + self.filter(k, k.startsWith('octopods.io/') || k == 'app.kubernetes.io/managed-by')[0] + ' is set by the operator itself: remove it from spec.secretTemplate.labels'",reason=FieldValueForbidden
	Labels map[string]string `json:"labels,omitempty"`
	// annotations copied onto the Secret. Keys are annotation keys
	// ([prefix/]name); octopods.io/ keys are the operator's.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",messageExpression="'annotation key ' + self.filter(k, !(size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$')))[0] + ' is not a valid annotation key: use [prefix/]name, name at most 63 letters, digits, -, _ or . (for example reloader.stakater.com/match)'",reason=FieldValueInvalid
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('octopods.io/'))",messageExpression="'annotation ' + self.filter(k, k.startsWith('octopods.io/'))[0] + ' is set by the operator itself: remove it from spec.secretTemplate.annotations'",reason=FieldValueForbidden
	Annotations map[string]string `json:"annotations,omitempty"`
}

// APIKeyStatus describes the issued key by its public ID only.
// Each field says who writes it, in its octopods tag (StatusFields): the
// manager ("operator") or the auth proxies ("usage"). The admission policy
// that keeps publishing the manager's alone is generated from those tags.
// lastUsedTime only moves forward: each auth proxy replica writes the uses it
// saw, and the API server keeps the latest whatever the order of the writes.
// A usage time may be removed (only the manager may, by the admission
// policy): it removes one set in the future, which would freeze the record.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.lastUsedTime) || !has(self.lastUsedTime) || self.lastUsedTime >= oldSelf.lastUsedTime",message="lastUsedTime never moves backwards"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.previousKeyLastUsedTime) || !has(self.previousKeyLastUsedTime) || self.previousKeyLastUsedTime >= oldSelf.previousKeyLastUsedTime",message="previousKeyLastUsedTime never moves backwards"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.lastRevokedKeyUse) || !has(self.lastRevokedKeyUse) || self.lastRevokedKeyUse.time >= oldSelf.lastRevokedKeyUse.time",message="lastRevokedKeyUse never moves backwards"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.lastDisallowedSourceUse) || !has(self.lastDisallowedSourceUse) || self.lastDisallowedSourceUse.time >= oldSelf.lastDisallowedSourceUse.time",message="lastDisallowedSourceUse never moves backwards"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.lastRateLimited) || !has(self.lastRateLimited) || self.lastRateLimited.time >= oldSelf.lastRateLimited.time",message="lastRateLimited never moves backwards"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.lastLeakReport) || !has(self.lastLeakReport) || self.lastLeakReport.time >= oldSelf.lastLeakReport.time",message="lastLeakReport never moves backwards"
type APIKeyStatus struct {
	// secretName is the Secret that holds the key.
	// +optional
	SecretName string `json:"secretName,omitempty" octopods:"operator"`

	// keyID is the public identifier of the current key (the first 12 hex
	// digits of its SHA-256). Safe to show and log.
	// +optional
	KeyID string `json:"keyID,omitempty" octopods:"operator"`

	// issuedAt is when the current key was generated.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty" octopods:"operator"`

	// rotatedAt is when the key was last rotated by a rotation token.
	// +optional
	RotatedAt *metav1.Time `json:"rotatedAt,omitempty" octopods:"operator"`

	// lastRotationToken is the last octopods.io/rotate value handled.
	// +optional
	LastRotationToken string `json:"lastRotationToken,omitempty" octopods:"operator"`

	// previousKeyID is the public ID of the replaced key while its grace
	// period lasts.
	// +optional
	PreviousKeyID string `json:"previousKeyID,omitempty" octopods:"operator"`

	// previousValidUntil is when the replaced key stops working.
	// +optional
	PreviousValidUntil *metav1.Time `json:"previousValidUntil,omitempty" octopods:"operator"`

	// lastRotatedBy is who asked for the last rotation: the username the
	// webhook stamped in octopods.io/rotate-requested-by, or
	// "octopods-operator" for a scheduled rotation or a re-issue.
	// +optional
	LastRotatedBy string `json:"lastRotatedBy,omitempty" octopods:"operator"`

	// nextRotationAt is when spec.rotationInterval rotates the key next.
	// +optional
	NextRotationAt *metav1.Time `json:"nextRotationAt,omitempty" octopods:"operator"`

	// publishedKeys are the digests of the keys the auth proxy may admit:
	// the current key, and the previous key (with validUntil) during a grace
	// period. The proxy believes nothing else, and never reads a Secret. The
	// operator keeps them a subset of the keys the Secret holds at every
	// instant: a key is unpublished before it leaves the Secret, and
	// published after it enters. Only the operator may write this field (an
	// admission policy).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=2
	PublishedKeys []PublishedKey `json:"publishedKeys,omitempty" octopods:"operator"`

	// lastUsedTime is when the auth proxy last admitted a request with the
	// current key, written in batches and coarsened for keys in constant
	// use: the first use after an hour without a recorded one is written
	// within the flush interval (a minute); while the key stays in use it is
	// written again only once the recorded time is an hour old
	// (--last-used-refresh-interval), so it may be up to that much behind.
	// It never moves backwards. After a rotation the new key's first use is
	// written at once.
	// +optional
	LastUsedTime *metav1.Time `json:"lastUsedTime,omitempty" octopods:"usage"`

	// previousKeyLastUsedTime is when the auth proxy last admitted a request
	// with the previous key (during a grace period), written like
	// lastUsedTime: after a rotation, it tells whether clients moved.
	// +optional
	PreviousKeyLastUsedTime *metav1.Time `json:"previousKeyLastUsedTime,omitempty" octopods:"usage"`

	// revokedKeys are the last keys of this WorkspaceAPIKey that stopped
	// working (rotated away, grace period over or cut short, re-issued after
	// a hand edit), newest first: at most 5, each kept 30 days. The auth
	// proxy still refuses them like any unknown key, but reports each
	// attempt (lastRevokedKeyUse), so support learns who still holds a
	// leaked key. Only the operator may write this field.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=5
	RevokedKeys []RevokedKey `json:"revokedKeys,omitempty" octopods:"operator"`

	// lastRevokedKeyUse is the latest attempt with one of revokedKeys that an
	// auth proxy saw, written in batches like lastUsedTime (so within about a
	// minute) and never moving backwards. Each new one becomes a Warning
	// event RevokedKeyPresented (at most one a minute).
	// +optional
	LastRevokedKeyUse *KeyUse `json:"lastRevokedKeyUse,omitempty" octopods:"usage"`

	// lastDisallowedSourceUse is the latest attempt with a valid key of
	// this object from an address outside spec.allowedSourceRanges (refused
	// with 403 source_not_allowed): evidence that someone else holds the
	// key. Written like lastRevokedKeyUse; each new one becomes a Warning
	// event KeyUsedFromDisallowedSource (at most one a minute).
	// +optional
	LastDisallowedSourceUse *KeyUse `json:"lastDisallowedSourceUse,omitempty" octopods:"usage"`

	// lastRateLimited is the latest request refused over spec.rateLimit
	// (429), written like lastRevokedKeyUse. Each new one becomes a Warning
	// event RateLimited (at most one a minute), so support sees which
	// integration is looping.
	// +optional
	LastRateLimited *KeyUse `json:"lastRateLimited,omitempty" octopods:"usage"`

	// lastLeakReport is the latest report that one of this object's keys
	// was found in public (GitHub secret scanning), recorded by the auth
	// proxy that received it. The operator then acts on spec.leakResponse.
	// +optional
	LastLeakReport *LeakReport `json:"lastLeakReport,omitempty" octopods:"usage"`

	// scope is what the published keys unlock, read from the key's owner
	// when they were published: the auth proxy's identity headers and scope
	// rules use it. Only the operator may write this field.
	// +optional
	Scope *KeyScope `json:"scope,omitempty" octopods:"operator"`

	// observedGeneration is the generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty" octopods:"operator"`

	// conditions: Ready says whether the key is issued and in its Secret.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" octopods:"operator"`
}

// PublishedKey is one key the auth proxy may admit, by its digest only.
type PublishedKey struct {
	// keyID is the key's public ID.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{12}$`
	KeyID string `json:"keyID"`
	// digest is "sha256:" and the 64 hex digits of the key's SHA-256.
	// +required
	// +kubebuilder:validation:Pattern=`^sha256:[0-9a-f]{64}$`
	Digest string `json:"digest"`
	// validUntil is set on the previous key only: when it stops working. The
	// proxy also caps it at status.rotatedAt + 24h.
	// +optional
	ValidUntil *metav1.Time `json:"validUntil,omitempty"`
}

// RevokedKey is a key that no longer works, by its digest only.
type RevokedKey struct {
	// keyID is the key's public ID.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{12}$`
	KeyID string `json:"keyID"`
	// digest is "sha256:" and the 64 hex digits of the key's SHA-256.
	// +required
	// +kubebuilder:validation:Pattern=`^sha256:[0-9a-f]{64}$`
	Digest string `json:"digest"`
	// revokedAt is when the key stopped working.
	// +required
	RevokedAt metav1.Time `json:"revokedAt"`
	// lastUsedTime is the key's last admitted use as recorded when it was
	// revoked (lastUsedTime or previousKeyLastUsedTime then): up to the
	// refresh interval behind for a key that was in constant use.
	// +optional
	LastUsedTime *metav1.Time `json:"lastUsedTime,omitempty"`
}

// LastUseOf is the recorded last admitted use of the published key keyID:
// the current key's lastUsedTime (unless it is older than the key, so the
// replaced key's), or the previous key's previousKeyLastUsedTime; nil when
// none is recorded.
func (s *APIKeyStatus) LastUseOf(keyID string) *metav1.Time {
	switch keyID {
	case "":
		return nil
	case s.KeyID:
		if s.LastUsedTime == nil || (s.IssuedAt != nil && s.LastUsedTime.Before(s.IssuedAt)) {
			return nil
		}
		return s.LastUsedTime
	case s.PreviousKeyID:
		return s.PreviousKeyLastUsedTime
	}
	return nil
}

// KeyUse is one refused attempt with a key: a revoked key, a valid key
// presented from outside its spec.allowedSourceRanges, or over its
// spec.rateLimit.
type KeyUse struct {
	// time is when the attempt was made (whole seconds).
	// +required
	Time metav1.Time `json:"time"`
	// keyID is the presented key's public ID.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{12}$`
	KeyID string `json:"keyID"`
	// clientAddress is where the attempt came from: the peer's address, or
	// the client named by X-Forwarded-For when the peer is one of the auth
	// proxy's --trusted-proxy-cidrs.
	// It is an IP address: a caller cannot put text of its choosing here.
	// +optional
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="clientAddress must be an IP address"
	ClientAddress string `json:"clientAddress,omitempty"`
}

// LeakReport is one report that a key was found in public.
type LeakReport struct {
	// time is when the report was received (whole seconds).
	// +required
	Time metav1.Time `json:"time"`
	// keyID is the reported key's public ID.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{12}$`
	KeyID string `json:"keyID"`
	// source is who reported it, and where it was found, as
	// "github:<where>" (for example github:content or github:commit).
	// +required
	// +kubebuilder:validation:MaxLength=128
	Source string `json:"source"`
	// url is where the key was found, as the reporter gave it.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url,omitempty"`
}

// WorkspaceAPIKey is the API key of one workspace: creating it is clicking
// "Create API Key". Its name must equal spec.workspaceName.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wsk;apikey,categories=octopods
// +kubebuilder:validation:XValidation:rule="self.spec.workspaceName == self.metadata.name",message="spec.workspaceName must equal metadata.name: a workspace has exactly one key, the WorkspaceAPIKey named after it",fieldPath=".spec.workspaceName",reason=FieldValueInvalid
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspaceName`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`
// +kubebuilder:printcolumn:name="Key ID",type=string,JSONPath=`.status.keyID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Last Used",type=date,JSONPath=`.status.lastUsedTime`
// +kubebuilder:printcolumn:name="Previous Key Used",type=date,JSONPath=`.status.previousKeyLastUsedTime`,priority=1
// +kubebuilder:printcolumn:name="Rotated By",type=string,JSONPath=`.status.lastRotatedBy`,priority=1
// +kubebuilder:printcolumn:name="Next Rotation",type=date,JSONPath=`.status.nextRotationAt`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkspaceAPIKey struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec WorkspaceAPIKeySpec `json:"spec"`
	// +optional
	Status APIKeyStatus `json:"status,omitempty"`
}

// KeyKind is the key kind; with OwnerName, Settings and KeyStatus it
// makes a WorkspaceAPIKey a KeyObject.
func (k *WorkspaceAPIKey) KeyKind() KeyKind { return WorkspaceKey }

// OwnerName names the key's owner.
func (k *WorkspaceAPIKey) OwnerName() string { return k.Spec.WorkspaceName }

// SetOwnerName sets the name of the key's owner.
func (k *WorkspaceAPIKey) SetOwnerName(name string) { k.Spec.WorkspaceName = name }

// Settings are the spec fields every key kind shares.
func (k *WorkspaceAPIKey) Settings() *KeySettings { return &k.Spec.KeySettings }

// KeyStatus is the status every key kind shares.
func (k *WorkspaceAPIKey) KeyStatus() *APIKeyStatus { return &k.Status }

// EffectiveSecretName is spec.secretName, or its default.
func (k *WorkspaceAPIKey) EffectiveSecretName() string { return EffectiveSecretName(k) }

// ManagesSecret reports whether secret is this key's own Secret.
func (k *WorkspaceAPIKey) ManagesSecret(secret *corev1.Secret) bool { return ManagesSecret(k, secret) }

// WorkspaceAPIKeyList is a list of WorkspaceAPIKeys.
// +kubebuilder:object:root=true
type WorkspaceAPIKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkspaceAPIKey `json:"items"`
}
