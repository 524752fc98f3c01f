// Package keystore is the one writer of key Secrets. It keeps the rule the
// auth proxy's trust rests on by construction: a key object's published
// keys, in its status and in the KeyDigestSlices the proxies read, are a
// subset of the keys its Secret holds at every instant. Every write first
// unpublishes what the Secret will no longer hold, from the slices (what
// the proxies read, so a revoked key is refused one write sooner) and then
// from the status; a key is published only after the write that added it
// succeeded (the caller's status write, which the slices follow, or a
// slice write the caller makes right after that write). A crash
// in between leaves a key unpublished (refused), never a dead key admitted.
package keystore

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/keysecret"
)

// Publication is a key object's published keys, and how to write fewer.
type Publication interface {
	// Published are the keys published now.
	Published() []octopodsv1alpha1.PublishedKey
	// Unpublish writes the published keys down to kept (a subset of
	// Published) and returns once the API server holds it.
	Unpublish(ctx context.Context, kept []octopodsv1alpha1.PublishedKey) error
	// Unslice removes from the digest slices every digest of the key object
	// that held does not accept, gone (the digests about to be unpublished)
	// among them, keeps them out of the slices whatever a stale status says,
	// and returns once the API server holds the slices without them. It is
	// called before every Secret write, whatever the status says, and
	// before Unpublish: the proxies read the slices, so this is the step
	// that refuses the key.
	Unslice(ctx context.Context, held func(digest string) bool, gone []string) error
}

// Store writes key Secrets for one key object's Publication.
type Store struct {
	// Writer is the only client allowed to write key Secrets (see Guard).
	Writer client.Writer
}

// Create creates secret; the API server refuses it if the name is taken, so
// a key is never written over another.
func (s Store) Create(ctx context.Context, pub Publication, secret *corev1.Secret) error {
	if err := refuseSealed(secret); err != nil {
		return err
	}
	if err := unpublishBefore(ctx, pub, secret); err != nil {
		return err
	}
	return s.Writer.Create(ctx, secret)
}

// Update writes secret with the resourceVersion it was read with: a
// concurrent change makes it fail with a conflict, never overwrite.
func (s Store) Update(ctx context.Context, pub Publication, secret *corev1.Secret) error {
	if err := refuseSealed(secret); err != nil {
		return err
	}
	if err := unpublishBefore(ctx, pub, secret); err != nil {
		return err
	}
	return s.Writer.Update(ctx, secret)
}

// Delete deletes that incarnation of secret (a UID precondition), after
// unpublishing every key. With a nil secret (none of the key object's
// exists) it only unpublishes.
func (s Store) Delete(ctx context.Context, pub Publication, secret *corev1.Secret) error {
	if err := unpublishBefore(ctx, pub, nil); err != nil || secret == nil {
		return err
	}
	uid := secret.UID
	return s.Writer.Delete(ctx, secret, client.Preconditions{UID: &uid})
}

// ErrSealedWrite is what the Store answers a write of a Secret read from
// the manager's cache, whose keys are sealed (keysecret.Seal): it would
// replace the keys with their fingerprints.
var ErrSealedWrite = errors.New("a Secret from the cache holds fingerprints, not keys: write from a fresh read")

func refuseSealed(secret *corev1.Secret) error {
	if keysecret.Sealed(secret) {
		return fmt.Errorf("write Secret %s: %w", secret.Name, ErrSealedWrite)
	}
	return nil
}

// unpublishBefore unpublishes the keys that next (nil: no Secret) will not
// hold, from the slices and then from the status, before that Secret write
// happens. A failed status write after the slices' leaves the key refused
// while its Secret still holds it (fail closed); the next reconcile
// publishes it again from a fresh read, or removes it.
func unpublishBefore(ctx context.Context, pub Publication, next *corev1.Secret) error {
	name := "(none)"
	if next != nil {
		name = next.Name
	}
	published := pub.Published()
	kept := Kept(published, next)
	var gone []string
	for _, p := range published {
		if !keysecret.Holds(next, p.Digest) {
			gone = append(gone, p.Digest)
		}
	}
	held := func(digest string) bool { return keysecret.Holds(next, digest) }
	if err := pub.Unslice(ctx, held, gone); err != nil {
		return fmt.Errorf("remove keys from the digest slices before writing key Secret %s: %w", name, err)
	}
	if len(kept) != len(published) {
		if err := pub.Unpublish(ctx, kept); err != nil {
			return fmt.Errorf("unpublish keys before writing key Secret %s: %w", name, err)
		}
	}
	return nil
}

// Kept are the published keys that next (nil: no Secret) holds.
func Kept(published []octopodsv1alpha1.PublishedKey, next *corev1.Secret) []octopodsv1alpha1.PublishedKey {
	var kept []octopodsv1alpha1.PublishedKey
	for _, p := range published {
		if keysecret.Holds(next, p.Digest) {
			kept = append(kept, p)
		}
	}
	return kept
}

// ErrDirectKeySecretWrite is what Guard answers a key Secret write that
// bypasses the Store.
var ErrDirectKeySecretWrite = errors.New("key Secrets are written through keystore.Store only, which unpublishes first")

// Guard wraps the client a key reconciler holds so that a Secret written
// with it instead of the Store fails at once, in every test, rather than
// breaking the trust boundary for one reconcile.
func Guard(c client.Client) client.Client { return guarded{c} }

type guarded struct{ client.Client }

func refuse(obj client.Object) error {
	if s, ok := obj.(*corev1.Secret); ok { // a key reconciler writes no other Secret
		return fmt.Errorf("write Secret %s: %w", s.Name, ErrDirectKeySecretWrite)
	}
	return nil
}

func (g guarded) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := refuse(obj); err != nil {
		return err
	}
	return g.Client.Create(ctx, obj, opts...)
}

func (g guarded) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := refuse(obj); err != nil {
		return err
	}
	return g.Client.Update(ctx, obj, opts...)
}

func (g guarded) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if err := refuse(obj); err != nil {
		return err
	}
	return g.Client.Patch(ctx, obj, patch, opts...)
}

func (g guarded) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if err := refuse(obj); err != nil {
		return err
	}
	return g.Client.Delete(ctx, obj, opts...)
}
