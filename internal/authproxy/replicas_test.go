package authproxy

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// What spec.rateLimit means with several replicas: each enforces its share
// of the declared rate (divided by the ready endpoints of its Service), so
// traffic spread over them meets the declared rate cluster-wide. Measured
// with 2 and 4 replicas against a real API server, and beside it the
// "per replica" reading (no Service named), which admits N times as much.
var _ = Describe("Rate limits across replicas", Serial, func() {
	const declared, seconds = 20, 4

	measure := func(replicas int, shared bool) float64 {
		ns := newNamespace()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "octopods-auth-proxy-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "octopods-auth-proxy"}},
			AddressType: discoveryv1.AddressTypeIPv4,
		}
		for i := range replicas {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.0.0.%d", i+1)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
		}
		// One endpoint not ready: not counted.
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.0.0.99"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}})
		Expect(k8sClient.Create(ctx, slice)).To(Succeed())

		key := newKey()
		obj := publishOf(octopodsv1alpha1.WorkspaceKey, ns, "acme", key)
		original := obj.DeepCopyObject().(client.Object)
		obj.KeyStatus().Scope.RateLimit = &octopodsv1alpha1.RateLimit{RequestsPerSecond: declared, Burst: declared}
		Expect(k8sClient.Status().Patch(ctx, obj, client.MergeFrom(original))).To(Succeed())

		var proxies []*Proxy
		for range replicas {
			proxies = append(proxies, startProxy(ctx, restCfg, "", func(c *Config) {
				c.Namespaces = []string{ns}
				if shared {
					c.PeersService, c.PeersNamespace = "octopods-auth-proxy", ns
				}
			}))
		}
		for _, p := range proxies {
			Eventually(func() int { return status(p, key) }, syncTimeout, pollEvery).Should(Equal(http.StatusOK))
			if shared {
				Eventually(p.Index.Replicas, syncTimeout, pollEvery).Should(Equal(replicas))
			}
		}
		time.Sleep(1500 * time.Millisecond) // every bucket full again

		var admitted, sent atomic.Int64
		stop := time.Now().Add(seconds * time.Second)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				defer GinkgoRecover()
				for i := w; time.Now().Before(stop); i++ {
					sent.Add(1)
					if status(proxies[i%replicas], key) == http.StatusOK {
						admitted.Add(1)
					}
				}
			})
		}
		wg.Wait()
		// The sustained rate: what was admitted beyond the initial bursts
		// (one in all when shared, one per replica when not).
		bursts := int64(declared)
		if !shared {
			bursts *= int64(replicas)
		}
		rate := float64(admitted.Load()-bursts) / seconds
		mode := "shared among ready replicas"
		if !shared {
			mode = "per replica (no --rate-limit-peers-service)"
		}
		figures.Add("rate limit %d/s, burst %d, %d replicas, %s: %d of %d requests admitted in %ds, %.1f/s sustained (%.2f× declared)",
			declared, declared, replicas, mode, admitted.Load(), sent.Load(), seconds, rate, rate/declared)
		Expect(sent.Load()).To(BeNumerically(">", 4*admitted.Load()), "the load must exceed the limit for the measure to mean anything")
		return rate
	}

	It("meets the declared rate cluster-wide with 2 and 4 replicas", func() {
		for _, n := range []int{2, 4} {
			rate := measure(n, true)
			Expect(rate).To(BeNumerically("~", declared, declared*0.25), "%d replicas", n)
		}
		perReplica := measure(4, false)
		Expect(perReplica).To(BeNumerically(">", 3*declared), "without the Service, each replica enforces the whole limit")
	})
})
