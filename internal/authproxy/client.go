package authproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

type slicesClient struct {
	rc      rest.Interface
	decoder runtime.Decoder
}

// NewSlicesClient returns a SlicesClient over an octopods.io REST client.
func NewSlicesClient(rc rest.Interface) SlicesClient {
	s := runtime.NewScheme()
	if err := octopodsv1alpha1.AddToScheme(s); err != nil {
		panic(err) // the scheme is built from code: a failure is a bug
	}
	metav1.AddToGroupVersion(s, octopodsv1alpha1.GroupVersion)
	return slicesClient{rc: rc, decoder: serializer.NewCodecFactory(s).UniversalDeserializer()}
}

const slicesResource = "keydigestslices"

func (c slicesClient) List(ctx context.Context, ns string, opts metav1.ListOptions) (*octopodsv1alpha1.KeyDigestSliceList, error) {
	page := &octopodsv1alpha1.KeyDigestSliceList{}
	err := c.rc.Get().Namespace(ns).Resource(slicesResource).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(page)
	return page, err
}

// ListPages lists every page from opts on and hands each to each, in
// order. It asks for the next page before it decodes one, with the
// continue token read from the raw answer: the API server encodes page
// n+1 (most of a sync's time) while the proxy decodes and indexes page n.
// The token read early is a guess, checked against the decoded page: a
// wrong one costs a request, never a page.
func (c slicesClient) ListPages(ctx context.Context, ns string, opts metav1.ListOptions, each func(*octopodsv1alpha1.KeyDigestSliceList) error) error {
	ctx, cancel := context.WithCancel(ctx) // ends a request for a page no longer wanted
	defer cancel()
	next := c.fetch(ctx, ns, opts)
	for {
		answer := <-next
		if answer.err != nil {
			return answer.err
		}
		guess := continueOf(answer.raw)
		var prefetched <-chan fetched
		if guess != "" {
			ahead := opts
			ahead.Continue = guess
			prefetched = c.fetch(ctx, ns, ahead)
		}
		page := &octopodsv1alpha1.KeyDigestSliceList{}
		if err := runtime.DecodeInto(c.decoder, answer.raw, page); err != nil {
			return fmt.Errorf("decode a page of KeyDigestSlices: %w", err)
		}
		if err := each(page); err != nil || page.Continue == "" {
			return err
		}
		opts.Continue = page.Continue
		next = prefetched
		if page.Continue != guess {
			next = c.fetch(ctx, ns, opts)
		}
	}
}

// fetched is a page's raw answer.
type fetched struct {
	raw []byte
	err error
}

func (c slicesClient) fetch(ctx context.Context, ns string, opts metav1.ListOptions) <-chan fetched {
	out := make(chan fetched, 1)
	go func() {
		raw, err := c.rc.Get().Namespace(ns).Resource(slicesResource).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Raw()
		out <- fetched{raw, err}
	}()
	return out
}

// listMetadataKey starts a list's metadata in the API server's JSON: it
// comes after the items (keys are sorted), and cannot occur inside a
// string, where quotes are escaped.
var listMetadataKey = []byte(`"metadata":`)

// continueOf reads the continue token of a JSON list without decoding its
// items ("" when it finds none).
func continueOf(raw []byte) string {
	i := bytes.LastIndex(raw, listMetadataKey)
	if i < 0 {
		return ""
	}
	var meta metav1.ListMeta
	if err := json.NewDecoder(bytes.NewReader(raw[i+len(listMetadataKey):])).Decode(&meta); err != nil {
		return ""
	}
	return meta.Continue
}

// listPages lists every page from opts on with c, handing each to each:
// pipelined when c can (slicesClient), else one page after another.
func listPages(ctx context.Context, c SlicesClient, ns string, opts metav1.ListOptions, each func(*octopodsv1alpha1.KeyDigestSliceList) error) error {
	if p, ok := c.(interface {
		ListPages(context.Context, string, metav1.ListOptions, func(*octopodsv1alpha1.KeyDigestSliceList) error) error
	}); ok {
		return p.ListPages(ctx, ns, opts, each)
	}
	for {
		page, err := c.List(ctx, ns, opts)
		if err != nil {
			return err
		}
		if err := each(page); err != nil || page.Continue == "" {
			return err
		}
		opts.Continue = page.Continue
	}
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
