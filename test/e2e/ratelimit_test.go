//go:build e2e

package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// from is an HTTP client whose requests come from a loopback address of
// its own: a source of its own for the proxy.
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}}
}

// send is one request with key through the proxy from c: its status and
// Retry-After.
func send(c *http.Client, key string) (int, string, string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+env.ProxyAddress+"/v1/messages", nil)
	req.Header.Set("X-Octopods-Auth", key)
	res, err := c.Do(req)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Retry-After"), string(body)
}

// limitedWorkspace makes a Workspace whose key has spec.rateLimit, and
// returns the key once the proxy admits it.
func limitedWorkspace(ns, name string, perSecond, burst int32) string {
	Expect(k8sClient.Create(ctx, testutil.Workspace(ns, name))).To(Succeed())
	k := testutil.BareAPIKey(ns, name)
	k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: time.Hour}
	k.Spec.RateLimit = &octopodsv1alpha1.RateLimit{RequestsPerSecond: perSecond, Burst: burst}
	Expect(k8sClient.Create(ctx, k)).To(Succeed())
	key := waitIssued(ns, name)
	Eventually(func() int { return status(key) }, issueTimeout, pollEvery).Should(Equal(http.StatusOK))
	return key
}

var _ = Describe("Rate limits and the failed-attempt throttle, through the real binaries", func() {
	It("gives a key with requestsPerSecond 5, burst 5 429s under a burst of 50, and leaves another workspace's key alone", func() {
		ns := newNamespace()
		limited := limitedWorkspace(ns, "looping", 5, 5)
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "calm"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "calm"))).To(Succeed())
		calm := waitIssued(ns, "calm")
		time.Sleep(1200 * time.Millisecond) // the bucket full again

		c := from("127.0.0.1")
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				defer GinkgoRecover()
				code, retry, body := send(c, limited)
				if code == http.StatusTooManyRequests {
					n, err := strconv.Atoi(retry)
					Expect(err == nil && n >= 1).To(BeTrue(), "Retry-After %q", retry)
					Expect(body).To(MatchJSON(`{"error":"rate_limited"}`))
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		figure("rate limit 5/s, burst 5: a burst of 50 got %d × 200 and %d × 429", codes[http.StatusOK], codes[http.StatusTooManyRequests])
		Expect(codes[http.StatusOK]+codes[http.StatusTooManyRequests]).To(Equal(50), "only 200 or 429, never 401: %v", codes)
		Expect(codes[http.StatusOK]).To(BeNumerically(">=", 5))
		Expect(codes[http.StatusOK]).To(BeNumerically("<=", 7), "5 at once, and at most what 5/s refills during the burst")
		Expect(status(calm)).To(Equal(http.StatusOK), "another workspace's key")

		// Support sees which integration loops.
		Eventually(func(g Gomega) {
			events := &corev1.EventList{}
			g.Expect(k8sClient.List(ctx, events, client.InNamespace(ns))).To(Succeed())
			var notes []string
			for _, e := range events.Items {
				if e.InvolvedObject.Name == "looping" && e.Reason == "RateLimited" {
					notes = append(notes, e.Message)
				}
			}
			g.Expect(notes).To(ContainElement(ContainSubstring("requests with key " + apikey.ID(limited))))
		}, issueTimeout, pollEvery).Should(Succeed())
	})

	It("keeps the budget across a rotation: the new key does not start afresh", func() {
		ns := newNamespace()
		old := limitedWorkspace(ns, "acme", 1, 5) // refills one a second
		time.Sleep(5 * time.Second)               // full: 5
		c := from("127.0.0.1")
		for i := range 5 {
			code, _, _ := send(c, old)
			Expect(code).To(Equal(http.StatusOK), "request %d", i)
		}
		code, _, _ := send(c, old)
		Expect(code).To(Equal(http.StatusTooManyRequests))

		rotate(ns, "acme", "T1")
		var next string
		Eventually(func(g Gomega) {
			next = string(secretOf(g, ns, "acme").Data[octopodsv1alpha1.SecretKeyAPIKey])
			g.Expect(next).NotTo(Equal(old))
			c, _, _ := send(c, next)
			g.Expect(c).NotTo(Equal(http.StatusUnauthorized)) // published: 200 or already 429
		}, issueTimeout, 50*time.Millisecond).Should(Succeed())
		admitted := 0
		for range 10 {
			if code, _, _ := send(c, next); code == http.StatusOK {
				admitted++
			}
		}
		figure("rate limit 1/s, burst 5, spent, then rotated: the new key got %d of 10 requests through (a fresh budget would give 5)", admitted)
		Expect(admitted).To(BeNumerically("<=", 2))
	})

	It("throttles a source after its failed attempts, and another source's valid key still works", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		valid := waitIssued(ns, "acme")
		Eventually(func() int { return status(valid) }, issueTimeout, pollEvery).Should(Equal(http.StatusOK))

		guesser := from("127.0.0.2")
		throttled := 0
		for range 1000 {
			guess, err := apikey.Generate()
			Expect(err).NotTo(HaveOccurred())
			code, retry, _ := send(guesser, guess)
			if code == http.StatusTooManyRequests {
				throttled++
				Expect(retry).NotTo(BeEmpty())
			} else {
				Expect(code).To(Equal(http.StatusUnauthorized))
			}
		}
		figure("throttle: of 1,000 invalid keys from one address, %d were answered 429 before any key lookup (default --throttle-failures 100 a minute)", throttled)
		Expect(throttled).To(Equal(900))
		code, _, _ := send(guesser, valid)
		Expect(code).To(Equal(http.StatusTooManyRequests), "a throttled source is refused before its key is read")
		code, _, _ = send(from("127.0.0.3"), valid)
		Expect(code).To(Equal(http.StatusOK), "another source's valid key")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+env.ProxyMetricsAddress+"/metrics", nil)
		res, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		metrics, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		Expect(string(metrics)).To(MatchRegexp(`octopods_auth_proxy_throttled_total 9\d\d`))
	})
})
