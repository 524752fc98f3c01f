package keystore

import (
	"context"
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keysecret"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// publication records what is published, in the status and in the
// slices; unpublishErr makes Unpublish fail.
type publication struct {
	published    []octopodsv1alpha1.PublishedKey
	sliced       []string // digests the slices hold
	unpublishErr error
	unpublished  int
	calls        []string // Unslice and Unpublish, in order
}

func (p *publication) Unslice(_ context.Context, held func(string) bool, _ []string) error {
	p.calls = append(p.calls, "Unslice")
	kept := p.sliced[:0:0]
	for _, d := range p.sliced {
		if held(d) {
			kept = append(kept, d)
		}
	}
	p.sliced = kept
	return nil
}

func (p *publication) Published() []octopodsv1alpha1.PublishedKey { return p.published }

func (p *publication) Unpublish(_ context.Context, kept []octopodsv1alpha1.PublishedKey) error {
	p.calls = append(p.calls, "Unpublish")
	if p.unpublishErr != nil {
		return p.unpublishErr
	}
	p.unpublished++
	p.published = kept
	return nil
}

func secretWith(name string, keys ...string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Type: octopodsv1alpha1.SecretType, Data: map[string][]byte{}}
	names := []string{octopodsv1alpha1.SecretKeyAPIKey, octopodsv1alpha1.SecretKeyPreviousAPIKey}
	for i, k := range keys {
		s.Data[names[i]] = []byte(k)
	}
	return s
}

// TestNoWriteLeavesAKeyPublishedThatItsSecretNoLongerHolds checks the trust
// boundary at the instant of each Secret write: every key still published
// then is held by the Secret as written (none, for a delete).
func TestNoWriteLeavesAKeyPublishedThatItsSecretNoLongerHolds(t *testing.T) {
	current, previous, next := testutil.NewKey(t), testutil.NewKey(t), testutil.NewKey(t)
	pub := func(keys ...string) []octopodsv1alpha1.PublishedKey {
		var out []octopodsv1alpha1.PublishedKey
		for _, k := range keys {
			out = append(out, keysecret.PublishedKey(k, nil))
		}
		return out
	}
	tests := []struct {
		name       string
		stored     *corev1.Secret // nil: none yet
		published  []octopodsv1alpha1.PublishedKey
		write      func(Store, *publication) error
		wantKept   int
		unpublishN int
	}{
		{"create over keys of a Secret that is gone", nil, pub(current, previous),
			func(s Store, p *publication) error { return s.Create(context.Background(), p, secretWith("k", next)) }, 0, 1},
		{"rotation with no grace period", secretWith("k", current), pub(current),
			func(s Store, p *publication) error { return s.Update(context.Background(), p, secretWith("k", next)) }, 0, 1},
		{"rotation with a grace period keeps the old key published", secretWith("k", current), pub(current),
			func(s Store, p *publication) error {
				return s.Update(context.Background(), p, secretWith("k", next, current))
			}, 1, 0},
		{"previous key dropped", secretWith("k", current, previous), pub(current, previous),
			func(s Store, p *publication) error {
				return s.Update(context.Background(), p, secretWith("k", current))
			}, 1, 1},
		{"hand edit re-issued", secretWith("k", "opk_edited"), pub(current),
			func(s Store, p *publication) error { return s.Update(context.Background(), p, secretWith("k", next)) }, 0, 1},
		{"metadata-only write", secretWith("k", current), pub(current),
			func(s Store, p *publication) error {
				return s.Update(context.Background(), p, secretWith("k", current))
			}, 1, 0},
		{"revoke", secretWith("k", current, previous), pub(current, previous),
			func(s Store, p *publication) error { return s.Delete(context.Background(), p, secretWith("k")) }, 0, 1},
		{"revoke with no Secret of ours", nil, pub(current),
			func(s Store, p *publication) error { return s.Delete(context.Background(), p, nil) }, 0, 1},
		// A crash after the status write and before the slice write: the
		// status no longer publishes the key, a slice still does.
		{"rotation after a crash between unpublish and unslice", secretWith("k", current), nil,
			func(s Store, p *publication) error { return s.Update(context.Background(), p, secretWith("k", next)) }, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &publication{published: tc.published, sliced: []string{apikey.DigestOf(current).String()}}
			for _, k := range tc.published {
				p.sliced = append(p.sliced, k.Digest)
			}
			var checked int
			check := func(written *corev1.Secret) {
				checked++
				for _, k := range p.published {
					if !keysecret.Holds(written, k.Digest) {
						t.Errorf("key %s was still published when a write left its Secret without it", k.KeyID)
					}
				}
				for _, d := range p.sliced {
					if !keysecret.Holds(written, d) {
						t.Errorf("key %s was still in a slice when a write left its Secret without it", d[7:19])
					}
				}
			}
			b := fake.NewClientBuilder().WithScheme(scheme(t))
			if tc.stored != nil {
				b = b.WithObjects(tc.stored.DeepCopy())
			}
			c := b.WithInterceptorFuncs(interceptor.Funcs{
				Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
					check(obj.(*corev1.Secret))
					return c.Create(ctx, obj, opts...)
				},
				Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
					check(obj.(*corev1.Secret))
					return c.Update(ctx, obj, opts...)
				},
				Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
					check(nil)
					return c.Delete(ctx, obj, opts...)
				},
			}).Build()
			if tc.stored != nil { // writes start from a read, as the reconciler's do
				got := &corev1.Secret{}
				if err := c.Get(context.Background(), client.ObjectKeyFromObject(tc.stored), got); err != nil {
					t.Fatal(err)
				}
				orig := tc.write
				tc.write = func(_ Store, p *publication) error {
					return orig(Store{Writer: versioned{c, got}}, p)
				}
			}
			if err := tc.write(Store{Writer: c}, p); err != nil {
				t.Fatalf("write: %v", err)
			}
			if len(p.published) != tc.wantKept || p.unpublished != tc.unpublishN {
				t.Errorf("published after the write: %d keys (%d unpublish writes), want %d (%d)", len(p.published), p.unpublished, tc.wantKept, tc.unpublishN)
			}
			if tc.name != "revoke with no Secret of ours" && checked == 0 {
				t.Error("no Secret write was made")
			}
		})
	}
}

// versioned stamps the stored object's identity on a write built from
// scratch by the table, as a write built from a fresh read carries it.
type versioned struct {
	client.Client
	read *corev1.Secret
}

func (v versioned) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	obj.SetResourceVersion(v.read.ResourceVersion)
	return v.Client.Update(ctx, obj, opts...)
}

func (v versioned) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	obj.SetUID(v.read.UID)
	return v.Client.Delete(ctx, obj, opts...)
}

func TestAFailedUnpublishStopsTheSecretWrite(t *testing.T) {
	current := testutil.NewKey(t)
	stored := secretWith("k", current)
	writes := 0
	c := fake.NewClientBuilder().WithScheme(scheme(t)).WithObjects(stored).WithInterceptorFuncs(interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			writes++
			return c.Update(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			writes++
			return c.Delete(ctx, obj, opts...)
		},
	}).Build()
	boom := errors.New("status conflict")
	p := &publication{published: []octopodsv1alpha1.PublishedKey{keysecret.PublishedKey(current, nil)}, unpublishErr: boom}
	s := Store{Writer: c}
	if err := s.Update(context.Background(), p, secretWith("k", testutil.NewKey(t))); !errors.Is(err, boom) {
		t.Errorf("Update = %v, want the unpublish error", err)
	}
	if err := s.Delete(context.Background(), p, stored); !errors.Is(err, boom) {
		t.Errorf("Delete = %v, want the unpublish error", err)
	}
	if writes != 0 {
		t.Errorf("%d Secret writes after a failed unpublish, want 0", writes)
	}
}

// The slices, which the proxies read, lose a key before the status does:
// a rotated or revoked key is refused one write sooner. A failed status
// write after them leaves the key refused and the Secret unwritten.
func TestSlicesAreWithdrawnBeforeTheStatus(t *testing.T) {
	current := testutil.NewKey(t)
	stored := secretWith("k", current)
	c := fake.NewClientBuilder().WithScheme(scheme(t)).WithObjects(stored).Build()
	for _, unpublishErr := range []error{nil, errors.New("status conflict")} {
		d := keysecret.PublishedKey(current, nil)
		p := &publication{published: []octopodsv1alpha1.PublishedKey{d}, sliced: []string{d.Digest}, unpublishErr: unpublishErr}
		_ = Store{Writer: c}.Update(context.Background(), p, secretWith("k", testutil.NewKey(t)))
		if want := []string{"Unslice", "Unpublish"}; !slices.Equal(p.calls, want) {
			t.Errorf("unpublish error %v: calls %v, want %v", unpublishErr, p.calls, want)
		}
		if len(p.sliced) != 0 {
			t.Errorf("unpublish error %v: the slices still hold the replaced key", unpublishErr)
		}
	}
}

func TestGuardRefusesSecretWritesOnly(t *testing.T) {
	c := Guard(fake.NewClientBuilder().WithScheme(scheme(t)).Build())
	ctx := context.Background()
	s := secretWith("k", testutil.NewKey(t))
	for name, err := range map[string]error{
		"create": c.Create(ctx, s.DeepCopy()),
		"update": c.Update(ctx, s.DeepCopy()),
		"patch":  c.Patch(ctx, s.DeepCopy(), client.MergeFrom(s)),
		"delete": c.Delete(ctx, s.DeepCopy()),
	} {
		if !errors.Is(err, ErrDirectKeySecretWrite) {
			t.Errorf("%s of a Secret through the guarded client = %v, want ErrDirectKeySecretWrite", name, err)
		}
	}
	if err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}}); err != nil {
		t.Errorf("create of a ConfigMap = %v, want it written", err)
	}
}

func scheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// A Secret from the manager's cache holds fingerprints: writing it would
// replace the keys. The store refuses it before anything is unpublished.
func TestTheStoreRefusesASealedSecret(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme(t)).Build()
	sealed := secretWith("k", testutil.NewKey(t))
	keysecret.Seal(sealed)
	p := &publication{}
	for name, write := range map[string]func() error{
		"create": func() error { return Store{Writer: c}.Create(context.Background(), p, sealed.DeepCopy()) },
		"update": func() error { return Store{Writer: c}.Update(context.Background(), p, sealed.DeepCopy()) },
	} {
		if err := write(); !errors.Is(err, ErrSealedWrite) {
			t.Errorf("%s of a sealed Secret: %v, want ErrSealedWrite", name, err)
		}
	}
	if p.unpublished != 0 {
		t.Error("a refused write unpublished keys")
	}
}
