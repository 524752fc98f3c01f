package v1alpha1

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ConditionReady is the one condition type on every kind: for a key, it is
// issued and in its Secret; for a Workspace, it has an issued key. People's
// tools read it too.
const ConditionReady = "Ready"

// The key types, as X-Octopods-Key-Type and status.scope.type say them.
const (
	KeyTypeWorkspace = "workspace"
	KeyTypeChannel   = "channel"
	KeyTypeWhatsApp  = "whatsapp"
)

// Secret types of the channel and WhatsApp Business keys (the workspace
// key's is SecretType).
const (
	ChannelSecretType  = "octopods.io/channel-api-key"
	WhatsAppSecretType = "octopods.io/whatsapp-api-key"
)

// KeyKind is what tells one kind of API key from another, as data: the
// lifecycle code (store, reconciler, webhooks, proxy) takes it as a
// parameter, never as a code path of its own.
// +kubebuilder:object:generate=false
type KeyKind struct {
	// Kind is the key object's kind, e.g. "WorkspaceAPIKey"; Resource its
	// plural resource name.
	Kind, Resource string
	// OwnerKind is the kind of the object the key belongs to, OwnerField
	// the JSON name of the key's spec field that names it, and OwnerNoun
	// how a sentence names it ("WhatsApp Business Account").
	OwnerKind, OwnerField, OwnerNoun string
	// KeyType is the key's type as the proxy announces it
	// (X-Octopods-Key-Type).
	KeyType string
	// Prefix starts every key of the kind.
	Prefix string
	// SecretType is the type of the Secret that holds the key.
	SecretType corev1.SecretType
	// SecretNameSuffix makes the default Secret name: <owner name><suffix>.
	SecretNameSuffix string
	// NewKey and NewOwner return empty objects of the kind and its owner,
	// NewKeyList and NewOwnerList empty lists of them.
	NewKey       func() KeyObject
	NewOwner     func() KeyOwner
	NewKeyList   func() ObjectList
	NewOwnerList func() ObjectList
}

// ObjectList is a typed list of objects (what a client lists into).
// +kubebuilder:object:generate=false
type ObjectList interface {
	metav1.ListInterface
	runtime.Object
}

// The three kinds of API key.
var (
	WorkspaceKey = KeyKind{
		Kind: "WorkspaceAPIKey", Resource: "workspaceapikeys", OwnerKind: "Workspace", OwnerField: "workspaceName", OwnerNoun: "workspace",
		KeyType: KeyTypeWorkspace, Prefix: "opk_", SecretType: SecretType, SecretNameSuffix: SecretNameSuffix,
		NewKey: func() KeyObject { return &WorkspaceAPIKey{} }, NewOwner: func() KeyOwner { return &Workspace{} },
		NewOwnerList: func() ObjectList { return &WorkspaceList{} },
		NewKeyList:   func() ObjectList { return &WorkspaceAPIKeyList{} },
	}
	ChannelKey = KeyKind{
		Kind: "ChannelAPIKey", Resource: "channelapikeys", OwnerKind: "Channel", OwnerField: "channelName", OwnerNoun: "channel",
		KeyType: KeyTypeChannel, Prefix: "opc_", SecretType: ChannelSecretType, SecretNameSuffix: "-channel-api-key",
		NewKey: func() KeyObject { return &ChannelAPIKey{} }, NewOwner: func() KeyOwner { return &Channel{} },
		NewOwnerList: func() ObjectList { return &ChannelList{} },
		NewKeyList:   func() ObjectList { return &ChannelAPIKeyList{} },
	}
	WhatsAppKey = KeyKind{
		Kind: "WhatsAppAPIKey", Resource: "whatsappapikeys", OwnerKind: "WhatsAppBusinessAccount", OwnerField: "whatsAppBusinessAccountName", OwnerNoun: "WhatsApp Business Account",
		KeyType: KeyTypeWhatsApp, Prefix: "opw_", SecretType: WhatsAppSecretType, SecretNameSuffix: "-whatsapp-api-key",
		NewKey: func() KeyObject { return &WhatsAppAPIKey{} }, NewOwner: func() KeyOwner { return &WhatsAppBusinessAccount{} },
		NewOwnerList: func() ObjectList { return &WhatsAppBusinessAccountList{} },
		NewKeyList:   func() ObjectList { return &WhatsAppAPIKeyList{} },
	}
)

// KeyKinds are every kind of API key.
var KeyKinds = []KeyKind{WorkspaceKey, ChannelKey, WhatsAppKey}

// KeyKindOf returns the kind named kind ("WorkspaceAPIKey", ...).
func KeyKindOf(kind string) (KeyKind, bool) {
	for _, k := range KeyKinds {
		if k.Kind == kind {
			return k, true
		}
	}
	return KeyKind{}, false
}

// KeyObject is what the lifecycle code reads and writes of a key object of
// any kind.
// +kubebuilder:object:generate=false
type KeyObject interface {
	metav1.Object
	runtime.Object
	// KeyKind is the object's kind.
	KeyKind() KeyKind
	// OwnerName names the owner (spec.workspaceName, spec.channelName, ...);
	// SetOwnerName sets it.
	OwnerName() string
	SetOwnerName(name string)
	// Settings are the spec fields every kind shares.
	Settings() *KeySettings
	// KeyStatus is the status every kind shares.
	KeyStatus() *APIKeyStatus
}

// KeyOwner is the object a key belongs to: a Workspace, a Channel or a
// WhatsAppBusinessAccount.
// +kubebuilder:object:generate=false
type KeyOwner interface {
	metav1.Object
	runtime.Object
	// KeyScope is what the owner's key unlocks.
	KeyScope() KeyScope
}

// EffectiveSecretName is spec.secretName, or its default.
func EffectiveSecretName(k KeyObject) string {
	if s := k.Settings().SecretName; s != "" {
		return s
	}
	return k.OwnerName() + k.KeyKind().SecretNameSuffix
}

// ManagesSecret reports whether secret is this key object's own key
// Secret. Any other Secret is never written, revealed or deleted.
func ManagesSecret(k KeyObject, secret *corev1.Secret) bool {
	return IsKeySecretOf(secret, k.KeyKind(), k.GetName()) && metav1.GetControllerOf(secret).UID == k.GetUID()
}

// KeySettings are the spec fields every key kind has.
type KeySettings struct {
	// secretName is the Secret, in this namespace, that receives the key.
	// Defaults to the owner's name and "-api-key" (a workspace key),
	// "-channel-api-key" or "-whatsapp-api-key". Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName,omitempty"`

	// secretTemplate holds labels and annotations copied onto the Secret,
	// e.g. a reloader annotation so that pods pick up a rotated key. The
	// Secret follows edits: an entry removed here is removed there.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// rotationGracePeriod is how long the previous key keeps working after a
	// rotation, at most 24h. "0s" (the default) makes the old key stop working
	// at once: the right answer for a leaked key.
	// +optional
	// +kubebuilder:default="0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?((([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+|0)$')",messageExpression="'\"' + self + '\" is not a duration: use h, m or s, for example 1h or 30m (0s: the old key stops at once)'",reason=FieldValueInvalid
	// +kubebuilder:validation:XValidation:rule="!(self.matches('^[-+]?((([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+|0)$')) || duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="rotationGracePeriod must be between 0s and 24h"
	RotationGracePeriod *Duration `json:"rotationGracePeriod,omitempty"`

	// rotationInterval rotates the key on a schedule: when it has been
	// current this long (1h to 8760h), honouring rotationGracePeriod, with
	// the token "scheduled-<RFC 3339 time>". Changing it recomputes the next
	// rotation from the current key's issue time. Unset: no schedule.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?((([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+|0)$')",messageExpression="'\"' + self + '\" is not a duration: use h, m or s, for example 720h for 30 days'",reason=FieldValueInvalid
	// +kubebuilder:validation:XValidation:rule="!(self.matches('^[-+]?((([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+|0)$')) || duration(self) >= duration('1h') && duration(self) <= duration('8760h')",message="rotationInterval must be between 1h and 8760h (365 days), for example 720h for 30 days",reason=FieldValueInvalid
	RotationInterval *Duration `json:"rotationInterval,omitempty"`

	// leakResponse is what the operator does when one of this object's
	// keys is reported found in public (status.lastLeakReport): Rotate (the
	// default, also when unset: no default is written into the spec, so a
	// GitOps tool sees no drift) replaces it at once, with no grace period and the token
	// "leak-<RFC 3339 time of the report>"; Report only records it (a
	// Warning event KeyLeaked, and the audit). A reported key that no
	// longer works rotates nothing.
	// +optional
	// +kubebuilder:validation:Enum=Rotate;Report
	LeakResponse LeakResponse `json:"leakResponse,omitempty"`

	// allowedSourceRanges, when set, are the only client addresses the
	// keys work from (CIDRs, IPv4 or IPv6). A valid key presented from
	// elsewhere gets 403 source_not_allowed, and the attempt is recorded
	// (status.lastDisallowedSourceUse). The client address is the
	// connection's peer, or the right-most X-Forwarded-For hop that is not
	// one of the auth proxy's --trusted-proxy-cidrs, or Envoy's
	// source.address in gRPC. Unset: any address.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",messageExpression="'\"' + self + '\" is not a CIDR: write an address and a prefix length, for example 203.0.113.0/24 or 2001:db8::/48 (203.0.113.7/32 for one address)'",reason=FieldValueInvalid
	AllowedSourceRanges []string `json:"allowedSourceRanges,omitempty"`

	// rateLimit limits the requests the auth proxies admit with this
	// object's keys, current and previous together (a rotation neither
	// resets nor doubles it). Over it: 429 with Retry-After. The number is
	// for the whole deployment: each proxy replica enforces its share,
	// requestsPerSecond divided by the ready replicas it counts (see
	// docs/auth-proxy.md). Unset: unlimited.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// RateLimit is a token bucket: requestsPerSecond sustained, burst at once.
type RateLimit struct {
	// requestsPerSecond is the sustained rate, 1 to 1,000,000.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	RequestsPerSecond int32 `json:"requestsPerSecond"`
	// burst is how many requests may come at once, after a quiet spell:
	// 1 to 1,000,000; default requestsPerSecond.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Burst int32 `json:"burst,omitempty"`
}

// EffectiveBurst is burst, or requestsPerSecond when unset.
func (r *RateLimit) EffectiveBurst() int32 {
	if r.Burst > 0 {
		return r.Burst
	}
	return r.RequestsPerSecond
}

// LeakResponse is what a reported leak of a key does.
type LeakResponse string

// The leak responses.
const (
	// LeakResponseRotate replaces the reported key at once (grace 0).
	LeakResponseRotate LeakResponse = "Rotate"
	// LeakResponseReport records the report only.
	LeakResponseReport LeakResponse = "Report"
)

// LeakTokenPrefix starts the rotation token of a leak's rotation:
// "leak-<RFC 3339 time of the report>".
const LeakTokenPrefix = "leak-"

// LeakToken is the rotation token of the rotation answering report.
func LeakToken(report *LeakReport) string {
	return LeakTokenPrefix + report.Time.UTC().Format(time.RFC3339)
}

// LeakReporter is who a leak rotation is attributed to (lastRotatedBy).
const LeakReporter = "secret-scanning"

// KeyScope is what a key unlocks, as the operator read it from the key's
// owner when it published the key: the auth proxy believes it as it
// believes the published digests.
type KeyScope struct {
	// type is workspace, channel or whatsapp.
	// +required
	// +kubebuilder:validation:Enum=workspace;channel;whatsapp
	Type string `json:"type"`
	// workspace is the workspace the key belongs to.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Workspace string `json:"workspace"`
	// channel is the channel of a channel key.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Channel string `json:"channel,omitempty"`
	// channelType is the channel's type: SMS, VBM or Telegram.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	ChannelType ChannelType `json:"channelType,omitempty"`
	// whatsAppBusinessAccount is the account of a WhatsApp Business key.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	WhatsAppBusinessAccount string `json:"whatsAppBusinessAccount,omitempty"`
	// allowedSourceRanges are spec.allowedSourceRanges as the operator
	// published them with the keys: the auth proxy admits the keys only
	// from these addresses (none: any).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=43
	AllowedSourceRanges []string `json:"allowedSourceRanges,omitempty"`
	// rateLimit is spec.rateLimit as the operator published it with the
	// keys: what the auth proxies enforce.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

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
