// Package keysecret owns the key Secret's shape: how its keys, annotations
// and template metadata are read and written, which of its keys may be
// published, and whose it is. Pure functions, used by the controller and the
// webhook alike, each table-tested.
package keysecret

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyplan"
)

// SetNewKey writes a fresh key with its ID, the rotation token it handles
// (remembered with the last 16) and its issue time: all in the object that
// is written in one request. It returns the new key's ID.
// prefix is the key kind's (apikey.Prefix, PrefixChannel, PrefixWhatsApp).
func SetNewKey(secret *corev1.Secret, prefix, token string, now time.Time) (string, error) {
	k, err := apikey.GenerateWith(prefix)
	if err != nil {
		return "", err
	}
	if secret.Data == nil {
		secret.Data = map[string][]byte{}
	}
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	id := apikey.ID(k)
	secret.Data[octopodsv1alpha1.SecretKeyAPIKey] = []byte(k)
	secret.Annotations[octopodsv1alpha1.KeyIDAnnotation] = id
	secret.Annotations[octopodsv1alpha1.IssuedAtAnnotation] = now.UTC().Format(time.RFC3339)
	if token != "" && token != secret.Annotations[octopodsv1alpha1.RotationTokenAnnotation] {
		history := tokenHistory(secret)
		if prev := secret.Annotations[octopodsv1alpha1.RotationTokenAnnotation]; prev != "" {
			history = keyplan.Remember(history, prev)
		}
		record, _ := json.Marshal(keyplan.Remember(history, token)) // strings: cannot fail
		secret.Annotations[octopodsv1alpha1.RotationTokenHistoryAnnotation] = string(record)
		secret.Annotations[octopodsv1alpha1.RotationTokenAnnotation] = token
	}
	return id, nil
}

// ClearPrevious removes the previous key and what describes it.
func ClearPrevious(secret *corev1.Secret) {
	delete(secret.Data, octopodsv1alpha1.SecretKeyPreviousAPIKey)
	delete(secret.Annotations, octopodsv1alpha1.PreviousKeyIDAnnotation)
	delete(secret.Annotations, octopodsv1alpha1.PreviousValidUntilAnnotation)
}

// TokenUsed reports whether token was already handled for the key in
// secret, and when, if it was the last one (zero otherwise).
func TokenUsed(secret *corev1.Secret, token string) (bool, time.Time) {
	if token == "" {
		return false, time.Time{}
	}
	if token == secret.Annotations[octopodsv1alpha1.RotationTokenAnnotation] {
		if at := ParseTime(secret.Annotations[octopodsv1alpha1.RotatedAtAnnotation]); at != nil {
			return true, at.Time
		}
		return true, time.Time{}
	}
	return slices.Contains(tokenHistory(secret), token), time.Time{}
}

func tokenHistory(secret *corev1.Secret) []string {
	var history []string
	_ = json.Unmarshal([]byte(secret.Annotations[octopodsv1alpha1.RotationTokenHistoryAnnotation]), &history) // unreadable: none
	return history
}

// sealedMarker is a data key the API server cannot hold (a data key has no
// "/"): present only in a copy whose key values Seal replaced.
const sealedMarker = "octopods.io/sealed"

// Seal replaces, in a copy of a Secret that is read and never written (the
// manager's cache), each key value by its fingerprint: whether it is a
// well-formed key, and its SHA-256. What reads a Secret here (Observe,
// Published, Holds) reads either form alike; only a sealed copy's values
// are read as fingerprints, so no value written to the API server can pose
// as one.
func Seal(secret *corev1.Secret) {
	if Sealed(secret) || secret.Data == nil {
		return
	}
	for _, k := range []string{octopodsv1alpha1.SecretKeyAPIKey, octopodsv1alpha1.SecretKeyPreviousAPIKey} {
		v, ok := secret.Data[k]
		if !ok {
			continue
		}
		f := apikey.FingerprintOf(string(v))
		valid := byte(0)
		if f.Valid {
			valid = 1
		}
		secret.Data[k] = append([]byte{valid}, f.Digest[:]...)
	}
	secret.Data[sealedMarker] = nil
}

// Sealed reports whether secret is a sealed copy: it must never be written
// (keystore.Store refuses it).
func Sealed(secret *corev1.Secret) bool {
	_, ok := secret.Data[sealedMarker]
	return ok
}

// fingerprint is the fingerprint of the value at field, sealed or not.
func fingerprint(secret *corev1.Secret, field string) apikey.Fingerprint {
	v := secret.Data[field]
	if len(v) == 1+len(apikey.Digest{}) && Sealed(secret) {
		f := apikey.Fingerprint{Present: true, Valid: v[0] == 1}
		copy(f.Digest[:], v[1:])
		return f
	}
	return apikey.FingerprintOf(string(v))
}

// Observe reads a managed Secret for keyplan. A key counts as the operator's
// only if it was published.
func Observe(secret *corev1.Secret, published []octopodsv1alpha1.PublishedKey) keyplan.Observed {
	a := secret.Annotations
	key := fingerprint(secret, octopodsv1alpha1.SecretKeyAPIKey)
	previous := fingerprint(secret, octopodsv1alpha1.SecretKeyPreviousAPIKey)
	return keyplan.Observed{
		Current:            key,
		KeyID:              a[octopodsv1alpha1.KeyIDAnnotation],
		HandledToken:       a[octopodsv1alpha1.RotationTokenAnnotation],
		RecentTokens:       tokenHistory(secret),
		HandledRevokeToken: a[octopodsv1alpha1.RevokePreviousTokenAnnotation],
		IssuedAt:           issuedAt(secret),
		Previous:           previous,
		PreviousValidUntil: a[octopodsv1alpha1.PreviousValidUntilAnnotation],
		PreviousPublished:  previous.Present && Publishes(published, previous.Digest.String()),
		KeyPublished:       key.Present && Publishes(published, key.Digest.String()),
	}
}

// Published are the keys of a managed Secret the proxy may admit: its
// current key when intact, and its previous key only if the operator
// published it before (as current, or as previous) — a previous key added
// by hand never is. A previous key's end is never later than it was
// published with, nor than rotatedAt + MaxPreviousKeyLifetime. A Secret
// being deleted publishes nothing.
func Published(secret *corev1.Secret, prev []octopodsv1alpha1.PublishedKey, rotatedAt *metav1.Time) []octopodsv1alpha1.PublishedKey {
	if secret == nil || !secret.DeletionTimestamp.IsZero() {
		return nil
	}
	var out []octopodsv1alpha1.PublishedKey
	current := fingerprint(secret, octopodsv1alpha1.SecretKeyAPIKey)
	if current.Valid && current.ID() == secret.Annotations[octopodsv1alpha1.KeyIDAnnotation] {
		out = append(out, published(current, nil))
	}
	previous := fingerprint(secret, octopodsv1alpha1.SecretKeyPreviousAPIKey)
	until := ParseTime(secret.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation])
	if !previous.Valid || until == nil || rotatedAt == nil || len(out) == 0 {
		return out
	}
	digest := previous.Digest.String()
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
		return append(out, published(previous, until))
	}
	return out
}

// PublishedKey is the published form of a key.
func PublishedKey(key string, validUntil *metav1.Time) octopodsv1alpha1.PublishedKey {
	return published(apikey.FingerprintOf(key), validUntil)
}

func published(f apikey.Fingerprint, validUntil *metav1.Time) octopodsv1alpha1.PublishedKey {
	return octopodsv1alpha1.PublishedKey{KeyID: f.ID(), Digest: f.Digest.String(), ValidUntil: validUntil}
}

// Intersect keeps the entries of prev whose digest is in next: what a failed
// reconcile may still publish (never anything new).
func Intersect(prev, next []octopodsv1alpha1.PublishedKey) []octopodsv1alpha1.PublishedKey {
	var out []octopodsv1alpha1.PublishedKey
	for _, p := range prev {
		if Publishes(next, p.Digest) {
			out = append(out, p)
		}
	}
	return out
}

// Revoke records as revoked at now the keys published before and not after,
// newest first, and returns the revoked keys to keep: none published again
// (a key unpublished before a Secret write that then failed comes back), at
// most MaxRevokedKeys, none older than RevokedKeyRetention.
func Revoke(revoked []octopodsv1alpha1.RevokedKey, before, after []octopodsv1alpha1.PublishedKey, lastUse func(keyID string) *metav1.Time, now time.Time) []octopodsv1alpha1.RevokedKey {
	var out []octopodsv1alpha1.RevokedKey
	for _, p := range before {
		if !Publishes(after, p.Digest) && !isRevoked(revoked, p.Digest) {
			out = append(out, octopodsv1alpha1.RevokedKey{KeyID: p.KeyID, Digest: p.Digest, RevokedAt: metav1.Time{Time: now.UTC().Truncate(time.Second)}, LastUsedTime: lastUse(p.KeyID).DeepCopy()})
		}
	}
	for _, r := range revoked {
		if !Publishes(after, r.Digest) && now.Sub(r.RevokedAt.Time) < octopodsv1alpha1.RevokedKeyRetention {
			out = append(out, r)
		}
	}
	if len(out) > octopodsv1alpha1.MaxRevokedKeys {
		out = out[:octopodsv1alpha1.MaxRevokedKeys]
	}
	return out
}

func isRevoked(revoked []octopodsv1alpha1.RevokedKey, digest string) bool {
	for _, r := range revoked {
		if r.Digest == digest {
			return true
		}
	}
	return false
}

// RevokedKeysExpire is when the oldest revoked key is forgotten (zero: none).
func RevokedKeysExpire(revoked []octopodsv1alpha1.RevokedKey) time.Time {
	var first time.Time
	for _, r := range revoked {
		if t := r.RevokedAt.Add(octopodsv1alpha1.RevokedKeyRetention); first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first
}

// Publishes reports whether digest is among the published keys.
func Publishes(published []octopodsv1alpha1.PublishedKey, digest string) bool {
	for _, p := range published {
		if p.Digest == digest {
			return true
		}
	}
	return false
}

// Union is published followed by the keys of others it lacks: what the
// proxies may admit when others are published ahead of a status.
func Union(published, others []octopodsv1alpha1.PublishedKey) []octopodsv1alpha1.PublishedKey {
	out := slices.Clip(published)
	for _, p := range others {
		if !Publishes(out, p.Digest) {
			out = append(out, *p.DeepCopy())
		}
	}
	return out
}

// PublishesAll reports whether every key of others is among the published
// keys.
func PublishesAll(published, others []octopodsv1alpha1.PublishedKey) bool {
	for _, p := range others {
		if !Publishes(published, p.Digest) {
			return false
		}
	}
	return true
}

// Holds reports whether the Secret (nil: none) holds the key of digest.
func Holds(secret *corev1.Secret, digest string) bool {
	if secret == nil {
		return false
	}
	for _, k := range []string{octopodsv1alpha1.SecretKeyAPIKey, octopodsv1alpha1.SecretKeyPreviousAPIKey} {
		if _, ok := secret.Data[k]; ok && fingerprint(secret, k).Digest.String() == digest {
			return true
		}
	}
	return false
}

// Owner says whose a Secret in a key's way is, for messages: another
// key's, or nobody's the operator knows.
func Owner(secret *corev1.Secret) string {
	if ref := octopodsv1alpha1.KeySecretController(secret); ref != nil {
		return fmt.Sprintf("belongs to %s %q", ref.Kind, ref.Name)
	}
	return "is not managed by octopods-operator"
}

// issuedAt is when the Secret's current key was issued; zero when unknown.
func issuedAt(secret *corev1.Secret) time.Time {
	t, _ := time.Parse(time.RFC3339, secret.Annotations[octopodsv1alpha1.IssuedAtAnnotation]) // unreadable: zero
	return t
}

// ParseTime reads an RFC 3339 annotation; nil when absent or unreadable.
func ParseTime(s string) *metav1.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil
	}
	return &metav1.Time{Time: t}
}
