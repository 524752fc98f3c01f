package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names on KeyDigestSlices.
const (
	// MaxKeysPerSlice is how many key objects one KeyDigestSlice holds at
	// most (the CRD's maxItems). The manager fills slices to
	// keyslice.KeysPerSlice, chosen by measurement there.
	MaxKeysPerSlice = 1000

	// SliceLabel marks every KeyDigestSlice the manager writes; its value
	// is SliceRoleKeys for a slice of keys and SliceRoleBuilt for the
	// marker that says the slices were built.
	SliceLabel     = "octopods.io/key-digest-slice"
	SliceRoleKeys  = "keys"
	SliceRoleBuilt = "built"
	// SliceRoleWithdrawn marks a namespace's withdrawal slice, named
	// SliceWithdrawnName: the digests a rotation, revocation or deletion
	// took away, refused by the proxies before the slice that publishes
	// them is rewritten. It holds only withdrawnKeys.
	SliceRoleWithdrawn = "withdrawn"
	SliceWithdrawnName = "withdrawn-keys"
	// MaxWithdrawnKeys bounds a withdrawal slice (the CRD's maxItems); a
	// withdrawal that would not fit rewrites the slice of keys at once.
	MaxWithdrawnKeys = 1000
	// SlicesBuiltName is the marker's name, in the manager's namespace: the
	// manager writes it once every namespace's slices were built from the
	// key objects after it started, and an auth proxy reports ready only
	// once it exists (an upgrade from a release without slices).
	SlicesBuiltName = "octopods-slices-built"
	// SlicesBuiltAtAnnotation on the marker is when the manager first
	// finished building every slice.
	SlicesBuiltAtAnnotation = "octopods.io/slices-built-at"
)

// KeyDigestSlice publishes, for the auth proxies, the digests of the keys of
// up to 1000 key objects of its namespace: what their status.publishedKeys,
// status.revokedKeys and status.scope say, in one object, so that a proxy
// lists a few hundred slices instead of 100,000 key objects. Only the manager
// writes slices (an admission policy). What they admit is a subset of
// what the key Secrets hold at every instant, as status.publishedKeys is: a
// key is in a slice only after its Secret holds it, and is refused (listed
// in the namespace's withdrawal slice) before it leaves its Secret.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=kds,categories=octopods
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KeyDigestSlice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// keys are the key objects this slice publishes, one entry each.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Keys []SlicedKey `json:"keys,omitempty"`

	// withdrawnKeys are digests refused ahead of the slices of keys that
	// still publish them, on the namespace's withdrawal slice only: a slice
	// of 200 keys costs the API server several times a small object's
	// write, and a key must be refused within milliseconds of its
	// rotation. A proxy answers such a key 400 DEPRECATED_API_KEY whatever
	// a slice of keys says. The manager drops a digest here once no slice
	// of keys publishes it.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	WithdrawnKeys []RevokedDigest `json:"withdrawnKeys,omitempty"`
}

// SlicedKey is what the auth proxy knows of one key object: its published
// and revoked digests and the scope they unlock. It is never a key.
type SlicedKey struct {
	// kind is the key object's kind.
	// +required
	// +kubebuilder:validation:Enum=WorkspaceAPIKey;ChannelAPIKey;WhatsAppAPIKey
	Kind string `json:"kind"`
	// name is the key object's name.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// owner is the name of the key's owner: its Workspace, Channel or
	// WhatsApp Business Account.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Owner string `json:"owner"`
	// scope is what the keys unlock, as the key's status.scope says.
	// +required
	Scope KeyScope `json:"scope"`
	// publishedKeys are the keys admitted: the current key, and the previous
	// key with its validUntil (already capped at rotatedAt + 24h).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=2
	PublishedKeys []PublishedKey `json:"publishedKeys,omitempty"`
	// revokedKeys are keys that no longer work, answered 400
	// DEPRECATED_API_KEY rather than 401: status.revokedKeys, and keys
	// withdrawn from the slice before the status says so.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	RevokedKeys []RevokedDigest `json:"revokedKeys,omitempty"`
}

// RevokedDigest is a revoked key by its digest.
type RevokedDigest struct {
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
}

// KeyDigestSliceList contains a list of KeyDigestSlice.
// +kubebuilder:object:root=true
type KeyDigestSliceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KeyDigestSlice `json:"items"`
}
