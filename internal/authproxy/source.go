package authproxy

import (
	"context"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// Data keys of the slimmed Secret the reflector may hold between list pages:
// digests only, never the keys.
const (
	digestCurrent  = "api-key.sha256"
	digestPrevious = "previous-api-key.sha256"
)

// probeInterval is how often the API server is asked whether it is still
// there, so a quiet cluster does not look stale and a lost one does.
const probeInterval = 5 * time.Second

// Source keeps the index in step with the key Secrets through one reflector
// per namespace (or one for all). Reflectors write straight into the index:
// no informer store holds a second copy of 100k Secrets.
type Source struct {
	index      *keyindex.Index
	client     kubernetes.Interface
	namespaces []string // "" = all
	synced     []atomic.Bool
	// lastConfirmed is when the cache was last known to match the API
	// server (unix nanoseconds).
	lastConfirmed atomic.Int64
}

// NewSource watches key Secrets in the given namespaces (none: all).
func NewSource(ix *keyindex.Index, client kubernetes.Interface, namespaces []string) *Source {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	return &Source{index: ix, client: client, namespaces: namespaces, synced: make([]atomic.Bool, len(namespaces))}
}

// Run watches until ctx ends.
func (s *Source) Run(ctx context.Context) {
	selector := fields.OneTermEqualSelector("type", octopodsv1alpha1.SecretType).String()
	for i, ns := range s.namespaces {
		lw := cache.NewFilteredListWatchFromClient(s.client.CoreV1().RESTClient(), "secrets", ns,
			func(o *metav1.ListOptions) { o.FieldSelector = selector })
		r := cache.NewReflectorWithOptions(lw, &corev1.Secret{}, &store{src: s, scope: ns, synced: &s.synced[i]},
			cache.ReflectorOptions{Name: "octopods-key-secrets/" + ns})
		go r.RunWithContext(ctx)
	}
	go s.probe(ctx, selector)
}

// Synced reports whether every reflector has completed its first full list.
func (s *Source) Synced() bool {
	for i := range s.synced {
		if !s.synced[i].Load() {
			return false
		}
	}
	return true
}

// Staleness is how long ago the cache was last confirmed current.
func (s *Source) Staleness() time.Duration {
	last := s.lastConfirmed.Load()
	if last == 0 {
		return 0
	}
	return time.Since(time.Unix(0, last))
}

func (s *Source) confirm() { s.lastConfirmed.Store(time.Now().UnixNano()) }

// probe confirms the API server is reachable while reflectors are quiet. A
// reachable API server with a running watch means the cache is current.
func (s *Source) probe(ctx context.Context, selector string) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.Synced() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, probeInterval)
		_, err := s.client.CoreV1().Secrets(s.namespaces[0]).List(pctx, metav1.ListOptions{FieldSelector: selector, Limit: 1, ResourceVersion: "0"})
		cancel()
		if err == nil {
			s.confirm()
		}
	}
}

// store is a cache.ReflectorStore that writes into the index.
type store struct {
	src    *Source
	scope  string
	synced *atomic.Bool
}

func (st *store) Add(obj any) error     { return st.Update(obj) }
func (st *store) Resync() error         { return nil }
func (st *store) Bookmark(string) error { st.src.confirm(); return nil }

func (st *store) Update(obj any) error {
	if s, ok := obj.(*corev1.Secret); ok {
		st.src.index.Set(secretKeys(s))
		st.src.confirm()
	}
	return nil
}

func (st *store) Delete(obj any) error {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if s, ok := obj.(*corev1.Secret); ok {
		st.src.index.Delete(s.Namespace, s.Name)
		st.src.confirm()
	}
	return nil
}

func (st *store) Replace(list []any, _ string) error {
	all := make([]keyindex.SecretKeys, 0, len(list))
	for _, obj := range list {
		if s, ok := obj.(*corev1.Secret); ok {
			all = append(all, secretKeys(s))
		}
	}
	st.src.index.Replace(st.scope, all)
	st.synced.Store(true)
	st.src.confirm()
	return nil
}

// Transformer slims Secrets the reflector buffers during a streaming list.
func (st *store) Transformer() cache.TransformFunc {
	return func(obj any) (any, error) {
		if s, ok := obj.(*corev1.Secret); ok {
			return slim(s), nil
		}
		return obj, nil
	}
}

// slim keeps what the index needs: identity, expiry, and digests in place
// of keys. Idempotent.
func slim(s *corev1.Secret) *corev1.Secret {
	out := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       s.Namespace,
			Name:            s.Name,
			ResourceVersion: s.ResourceVersion,
			Labels:          map[string]string{octopodsv1alpha1.WorkspaceLabel: s.Labels[octopodsv1alpha1.WorkspaceLabel]},
		},
		Type: s.Type,
		Data: map[string][]byte{},
	}
	if until, ok := s.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation]; ok {
		out.Annotations = map[string]string{octopodsv1alpha1.PreviousValidUntilAnnotation: until}
	}
	for plain, hashed := range map[string]string{octopodsv1alpha1.SecretKeyAPIKey: digestCurrent, octopodsv1alpha1.SecretKeyPreviousAPIKey: digestPrevious} {
		if d, ok := s.Data[hashed]; ok {
			out.Data[hashed] = d
		} else if key, ok := s.Data[plain]; ok && apikey.Validate(string(key)) == nil {
			d := apikey.DigestOf(string(key))
			out.Data[hashed] = d[:]
		}
	}
	return out
}

// secretKeys reads a (full or slimmed) key Secret. A malformed key is left
// out: no well-formed presented key could match it anyway.
func secretKeys(s *corev1.Secret) keyindex.SecretKeys {
	s = slim(s)
	k := keyindex.SecretKeys{Namespace: s.Namespace, Name: s.Name, Workspace: s.Labels[octopodsv1alpha1.WorkspaceLabel]}
	if d := s.Data[digestCurrent]; len(d) == len(k.Current) {
		k.Current, k.HasCurrent = apikey.Digest(d), true
	}
	if d := s.Data[digestPrevious]; len(d) == len(k.Previous) {
		if until, err := time.Parse(time.RFC3339, s.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation]); err == nil {
			k.Previous, k.HasPrevious, k.PreviousValidUntil = apikey.Digest(d), true, until
		}
	}
	return k
}
