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

// The proxy talks to one resource only. Its client knows just that type:
// client-go's full clientset registers every API group at start, which costs
// the proxy megabytes of memory it never uses.

// KeysClient lists and watches WorkspaceAPIKeys: the proxy reads nothing else
// (never a Secret).
type KeysClient interface {
	List(ctx context.Context, namespace string, opts metav1.ListOptions) (*octopodsv1alpha1.WorkspaceAPIKeyList, error)
	Watch(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
}

type keysClient struct{ rc rest.Interface }

// NewKeysClient returns a KeysClient over an octopods.io REST client.
func NewKeysClient(rc rest.Interface) KeysClient { return keysClient{rc} }

func (c keysClient) List(ctx context.Context, ns string, opts metav1.ListOptions) (*octopodsv1alpha1.WorkspaceAPIKeyList, error) {
	out := &octopodsv1alpha1.WorkspaceAPIKeyList{}
	err := c.rc.Get().Namespace(ns).Resource("workspaceapikeys").VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(out)
	return out, err
}

func (c keysClient) Watch(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return c.rc.Get().Namespace(ns).Resource("workspaceapikeys").VersionedParams(&opts, metav1.ParameterCodec).Timeout(timeout).Watch(ctx)
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
