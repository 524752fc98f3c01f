package authproxy

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
)

// revoke publishes current alone and records old as revoked, as the
// operator does after a grace-0 rotation.
func revoke(wak *octopodsv1alpha1.WorkspaceAPIKey, current, old string) {
	original := wak.DeepCopy()
	cur, was := apikey.DigestOf(current), apikey.DigestOf(old)
	wak.Status.PublishedKeys = []octopodsv1alpha1.PublishedKey{{KeyID: cur.ID(), Digest: cur.String()}}
	wak.Status.RevokedKeys = []octopodsv1alpha1.RevokedKey{{KeyID: was.ID(), Digest: was.String(), RevokedAt: metav1.Now()}}
	Expect(k8sClient.Status().Patch(ctx, wak, client.MergeFrom(original))).To(Succeed())
}

// statusWrites counts the Modified events of one WorkspaceAPIKey until stop.
func statusWrites(wak *octopodsv1alpha1.WorkspaceAPIKey) (count func() int, stop func()) {
	wc, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(ctx, &octopodsv1alpha1.WorkspaceAPIKeyList{}, client.InNamespace(wak.Namespace), client.MatchingFields{"metadata.name": wak.Name})
	Expect(err).NotTo(HaveOccurred())
	var n atomic.Int64
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				n.Add(1)
			}
		}
	}()
	return func() int { return int(n.Load()) }, w.Stop
}

var _ = Describe("Revoked keys", func() {
	It("refuses a revoked key as unknown, and reports a burst of 10,000 attempts in a handful of writes", func() {
		old, current := newKey(), newKey()
		wak := publishKey(k8sClient, newNamespace(), "acme", old)
		Eventually(func() int { return status(reverseProxy, old) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		revoke(wak, current, old)
		Eventually(func() int { return status(reverseProxy, current) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))

		writes, stop := statusWrites(wak)
		defer stop()
		counted := counter(reverseProxy, "octopods_auth_proxy_revoked_key_presented_total", "namespace", wak.Namespace, "workspace", "acme")
		const attempts = 10_000
		start := time.Now()
		var wg sync.WaitGroup
		var refused atomic.Int64
		for range 8 {
			wg.Go(func() {
				defer GinkgoRecover()
				for range attempts / 8 {
					res := call(reverseProxy, old)
					if res.StatusCode == http.StatusBadRequest && res.Header.Get("Www-Authenticate") == "" {
						refused.Add(1)
					}
				}
			})
		}
		wg.Wait()
		burst := time.Since(start)
		Expect(refused.Load()).To(BeEquivalentTo(attempts), "every attempt answered 400 DEPRECATED_API_KEY")
		Expect(counter(reverseProxy, "octopods_auth_proxy_revoked_key_presented_total", "namespace", wak.Namespace, "workspace", "acme") - counted).To(BeEquivalentTo(attempts))

		Eventually(func(g Gomega) {
			got := &octopodsv1alpha1.WorkspaceAPIKey{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(wak), got)).To(Succeed())
			use := got.Status.LastRevokedKeyUse
			g.Expect(use).NotTo(BeNil())
			g.Expect(use.KeyID).To(Equal(apikey.ID(old)))
			g.Expect(use.ClientAddress).To(Equal("127.0.0.1"))
			g.Expect(use.Time.Time).To(BeTemporally("~", time.Now(), 5*time.Second))
		}, flushDeadline, pollEvery).Should(Succeed())
		time.Sleep(2 * flushInterval) // let a late flush land, so it is counted
		elapsed := time.Since(start)
		n := writes()
		figures.Add("revoked-key burst: %d attempts in %s made %d writes to the WorkspaceAPIKey (flush every %s; at most %d expected; in production, with the 1-minute flush, one per replica per minute)",
			attempts, burst.Round(time.Millisecond), n, flushInterval, int(elapsed/flushInterval)+1)
		Expect(n).To(BeNumerically("<=", int(elapsed/flushInterval)+1), "at most one write per flush interval")
		Expect(n).To(BeNumerically(">=", 1))
		Expect(proxyLogs.String()).To(ContainSubstring(`"reason":"revoked_key"`))
		Expect(proxyLogs.String()).To(ContainSubstring(`"key_id":"` + apikey.ID(old) + `"`))
		Expect(proxyLogs.String()).NotTo(ContainSubstring(old[4:47]))
	})

	It("is recognised by a proxy started after the rotation", func() {
		old, current := newKey(), newKey()
		wak := publishKey(k8sClient, newNamespace(), "acme", old)
		revoke(wak, current, old)
		// The slice follows the status; the late proxy lists the slice.
		Eventually(func() int { return status(forwardProxy, current) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))

		pctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		late := startProxy(pctx, restCfg, "")
		Eventually(func() int { return get(late, "http://"+late.ProbeAddr()+"/readyz", nil).StatusCode }, syncTimeout, pollEvery).Should(Equal(http.StatusOK))
		res := call(late, old)
		Expect(res.StatusCode).To(Equal(http.StatusUnauthorized), "forward-auth: 401 carrying the code")
		Expect(res.Header.Get(HeaderAuthError)).To(Equal(OutcomeDeprecatedKey))
		Expect(counter(late, "octopods_auth_proxy_revoked_key_presented_total", "namespace", wak.Namespace, "workspace", "acme")).To(BeEquivalentTo(1))
		Expect(status(late, current)).To(Equal(http.StatusOK))
	})
})
