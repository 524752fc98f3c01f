package authproxy

import (
	"context"
	"log/slog"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/octopods/octopods-operator/internal/keyindex"
)

// peersInterval is how often the proxy counts its ready replicas: a
// replica added or lost shifts the shares within seconds, and a list of a
// Service's few EndpointSlices costs the API server nothing.
const peersInterval = 5 * time.Second

// Peers counts the ready replicas behind the proxy's own Service, from its
// EndpointSlices, and makes each object's rate limit shared among them:
// with N ready replicas each admits requestsPerSecond/N (burst/N, rounded
// up). Balanced traffic then meets the declared rate cluster-wide; traffic
// pinned to one replica gets that replica's share. Until the first count,
// and whenever the count fails, the last known number holds (1 at start).
type Peers struct {
	Index     *keyindex.Index
	Client    rest.Interface // discovery.k8s.io/v1
	Namespace string
	Service   string
	Log       *slog.Logger
}

// NewDiscoveryRESTClient returns a REST client for discovery.k8s.io/v1.
func NewDiscoveryRESTClient(cfg *rest.Config) (rest.Interface, error) {
	return restClientFor(cfg, discoveryv1.SchemeGroupVersion, "/apis", discoveryv1.AddToScheme)
}

// Run counts every peersInterval until ctx ends.
func (p *Peers) Run(ctx context.Context) {
	p.Count(ctx)
	every(ctx, peersInterval, func() { p.Count(ctx) })
}

// Count lists the Service's EndpointSlices once and sets the share.
func (p *Peers) Count(ctx context.Context) {
	slices := &discoveryv1.EndpointSliceList{}
	opts := metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + p.Service}
	err := p.Client.Get().Namespace(p.Namespace).Resource("endpointslices").VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(slices)
	if err != nil {
		p.Log.Warn("counting the proxy's ready replicas failed; rate limits keep their current share", "service", p.Namespace+"/"+p.Service, "replicas", p.Index.Replicas(), "error", err.Error())
		return
	}
	ready := map[string]bool{}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				// An endpoint may be in two slices during a move: by address.
				for _, a := range e.Addresses {
					ready[a] = true
					break
				}
			}
		}
	}
	if n := max(len(ready), 1); n != p.Index.Replicas() {
		p.Log.Info("rate limits shared among the proxy's ready replicas", "replicas", n)
		p.Index.SetReplicas(n)
	}
}
