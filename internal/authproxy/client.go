package authproxy

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// The proxy talks to the three key resources only. Its client knows just
// those types: client-go's full clientset registers every API group at
// start, which costs the proxy megabytes of memory it never uses.

// KeyPage is one page of a list of key objects of one kind.
type KeyPage struct {
	metav1.ListMeta
	Items []octopodsv1alpha1.KeyObject
}

// KeysClient lists and watches the key objects of a kind: the proxy reads
// nothing else (never a Secret).
type KeysClient interface {
	List(ctx context.Context, kind octopodsv1alpha1.KeyKind, namespace string, opts metav1.ListOptions) (*KeyPage, error)
	Watch(ctx context.Context, kind octopodsv1alpha1.KeyKind, namespace string, opts metav1.ListOptions) (watch.Interface, error)
}

type keysClient struct{ rc rest.Interface }

// NewKeysClient returns a KeysClient over an octopods.io REST client.
func NewKeysClient(rc rest.Interface) KeysClient { return keysClient{rc} }

// List decodes only what PublishedKeys reads (listedKey): a listed key's
// managedFields, conditions and the rest of its status were most of the
// proxy's CPU while syncing 100k keys.
func (c keysClient) List(ctx context.Context, kind octopodsv1alpha1.KeyKind, ns string, opts metav1.ListOptions) (*KeyPage, error) {
	page := &listedKeys{}
	if err := c.rc.Get().Namespace(ns).Resource(kind.Resource).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(page); err != nil {
		return nil, err
	}
	out := &KeyPage{ListMeta: page.ListMeta, Items: make([]octopodsv1alpha1.KeyObject, len(page.Items))}
	for i := range page.Items {
		out.Items[i] = page.Items[i].into(kind)
	}
	return out, nil
}

// listedKeys is a page of a key list as the proxy decodes it. It is not
// registered in any scheme, so the JSON serializer decodes into it as it
// is; it is never copied.
type listedKeys struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []listedKey `json:"items"`
}

func (l *listedKeys) DeepCopyObject() runtime.Object { c := *l; return &c }

// listedKey holds the fields of a key object of any kind that
// PublishedKeys reads, under the same JSON names (a test decodes a full
// object both ways). Its owner is whichever of the kinds' owner fields is
// set.
type listedKey struct {
	Metadata struct {
		Namespace         string       `json:"namespace"`
		Name              string       `json:"name"`
		ResourceVersion   string       `json:"resourceVersion"`
		DeletionTimestamp *metav1.Time `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		WorkspaceName               string `json:"workspaceName"`
		ChannelName                 string `json:"channelName"`
		WhatsAppBusinessAccountName string `json:"whatsAppBusinessAccountName"`
	} `json:"spec"`
	Status struct {
		IssuedAt      *metav1.Time                    `json:"issuedAt"`
		RotatedAt     *metav1.Time                    `json:"rotatedAt"`
		LastUsedTime  *metav1.Time                    `json:"lastUsedTime"`
		PublishedKeys []octopodsv1alpha1.PublishedKey `json:"publishedKeys"`
		RevokedKeys   []octopodsv1alpha1.RevokedKey   `json:"revokedKeys"`
		Scope         *octopodsv1alpha1.KeyScope      `json:"scope"`
	} `json:"status"`
}

func (l *listedKey) into(kind octopodsv1alpha1.KeyKind) octopodsv1alpha1.KeyObject {
	k := kind.NewKey()
	m := l.Metadata
	k.SetNamespace(m.Namespace)
	k.SetName(m.Name)
	k.SetResourceVersion(m.ResourceVersion)
	k.SetDeletionTimestamp(m.DeletionTimestamp)
	k.SetOwnerName(l.Spec.WorkspaceName + l.Spec.ChannelName + l.Spec.WhatsAppBusinessAccountName)
	st, in := k.KeyStatus(), l.Status
	st.IssuedAt, st.RotatedAt, st.LastUsedTime = in.IssuedAt, in.RotatedAt, in.LastUsedTime
	st.PublishedKeys, st.RevokedKeys, st.Scope = in.PublishedKeys, in.RevokedKeys, in.Scope
	return k
}

func (c keysClient) Watch(ctx context.Context, kind octopodsv1alpha1.KeyKind, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return c.rc.Get().Namespace(ns).Resource(kind.Resource).VersionedParams(&opts, metav1.ParameterCodec).Timeout(timeout).Watch(ctx)
}

// NewOctopodsRESTClient returns a REST client for octopods.io/v1alpha1.
func NewOctopodsRESTClient(cfg *rest.Config) (rest.Interface, error) {
	return restClientFor(cfg, octopodsv1alpha1.GroupVersion, "/apis", octopodsv1alpha1.AddToScheme)
}

func restClientFor(cfg *rest.Config, gv schema.GroupVersion, apiPath string, add func(*runtime.Scheme) error) (rest.Interface, error) {
	s := runtime.NewScheme()
	if err := add(s); err != nil {
		return nil, err
	}
	metav1.AddToGroupVersion(s, gv)
	c := rest.CopyConfig(cfg)
	c.GroupVersion, c.APIPath = &gv, apiPath
	c.NegotiatedSerializer = serializer.NewCodecFactory(s).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = "octopods-auth-proxy"
	}
	return rest.RESTClientFor(c)
}
