package authproxy

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// The proxy reads KeyDigestSlices and writes the usage fields of the key
// objects' status, nothing else. Its client knows just those types:
// client-go's full clientset registers every API group at start, which
// costs the proxy megabytes of memory it never uses.

// SlicesClient lists and watches KeyDigestSlices: the proxy reads nothing
// else (never a Secret, nor a key object).
type SlicesClient interface {
	List(ctx context.Context, namespace string, opts metav1.ListOptions) (*octopodsv1alpha1.KeyDigestSliceList, error)
	Watch(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
	// Get reads one slice (the manager's marker) and says only whether it
	// is there.
	Get(ctx context.Context, name types.NamespacedName) error
}

type slicesClient struct{ rc rest.Interface }

// NewSlicesClient returns a SlicesClient over an octopods.io REST client.
func NewSlicesClient(rc rest.Interface) SlicesClient { return slicesClient{rc} }

const slicesResource = "keydigestslices"

func (c slicesClient) List(ctx context.Context, ns string, opts metav1.ListOptions) (*octopodsv1alpha1.KeyDigestSliceList, error) {
	page := &octopodsv1alpha1.KeyDigestSliceList{}
	err := c.rc.Get().Namespace(ns).Resource(slicesResource).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(page)
	return page, err
}

func (c slicesClient) Get(ctx context.Context, name types.NamespacedName) error {
	return c.rc.Get().Namespace(name.Namespace).Resource(slicesResource).Name(name.Name).Do(ctx).Error()
}

func (c slicesClient) Watch(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return c.rc.Get().Namespace(ns).Resource(slicesResource).VersionedParams(&opts, metav1.ParameterCodec).Timeout(timeout).Watch(ctx)
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
