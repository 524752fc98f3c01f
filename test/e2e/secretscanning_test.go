//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/localenv"
	"github.com/octopods/octopods-operator/internal/secretscanning"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// GitHub's secret scanning, through the real binaries: a signed report of
// a leaked key reaches the proxy's endpoint, the proxy records it on the
// key, the manager rotates the key, and the proxy refuses the leaked key.
var _ = Describe("A key reported by GitHub's secret scanning", func() {
	It("is refused at the proxy within a second of the report, over 20 reports", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		key := testutil.BareAPIKey(ns, "acme")
		key.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: time.Hour} // a leak ignores the grace
		Expect(k8sClient.Create(ctx, key)).To(Succeed())
		signer, err := env.SecretScanningKey()
		Expect(err).NotTo(HaveOccurred())
		endpoint := "http://" + env.SecretScanningAddress + "/secret-scanning"

		const reports = 20
		var took []time.Duration
		leaked := waitIssued(ns, "acme")
		for i := range reports {
			Eventually(func() int { return status(leaked) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
			body, err := json.Marshal([]secretscanning.Token{{Token: leaked, Type: "octopods_api_key", URL: fmt.Sprintf("https://github.com/octo/leaky/blob/main/%d.env", i), Source: "content"}})
			Expect(err).NotTo(HaveOccurred())
			sig, err := secretscanning.Sign(signer, body)
			Expect(err).NotTo(HaveOccurred())
			req, _ := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
			req.Header.Set(secretscanning.HeaderKeyIdentifier, localenv.SecretScanningKeyIdentifier)
			req.Header.Set(secretscanning.HeaderSignature, sig)

			start := time.Now()
			res, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			answer, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			Expect(res.StatusCode).To(Equal(http.StatusOK), string(answer))
			Expect(string(answer)).To(ContainSubstring(`"label":"true_positive"`))
			Eventually(func() int { return status(leaked) }, 5*time.Second, 2*time.Millisecond).Should(Equal(http.StatusBadRequest), "DEPRECATED_API_KEY")
			took = append(took, time.Since(start))

			// The next report leaks the key that replaced it.
			Eventually(func(g Gomega) {
				next := string(secretOf(g, ns, "acme").Data[octopodsv1alpha1.SecretKeyAPIKey])
				g.Expect(next).NotTo(Equal(leaked))
				leaked = next
			}, issueTimeout, pollEvery).Should(Succeed())
		}
		slices.Sort(took)
		p50, p99 := took[len(took)/2], took[(len(took)*99+99)/100-1]
		figure("secret scanning: signed report posted → leaked key refused at the proxy: median %s, p99 %s, max %s over %d reports (goal p99 ≤ 1s)",
			p50.Round(time.Millisecond), p99.Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), reports)
		Expect(p99).To(BeNumerically("<=", time.Second))

		var k *octopodsv1alpha1.WorkspaceAPIKey
		Eventually(func(g Gomega) {
			k = keyOf(g, ns, "acme")
			g.Expect(k.Status.KeyID).To(Equal(apikey.ID(leaked)))
			g.Expect(k.Status.LastRotatedBy).To(Equal(octopodsv1alpha1.LeakReporter))
			g.Expect(k.Status.LastRotationToken).To(HavePrefix(octopodsv1alpha1.LeakTokenPrefix))
			g.Expect(k.Status.PublishedKeys).To(HaveLen(1), "no grace for a leaked key")
		}, issueTimeout, pollEvery).Should(Succeed())
		Eventually(func(g Gomega) {
			events := &corev1.EventList{}
			g.Expect(k8sClient.List(ctx, events, client.InNamespace(ns))).To(Succeed())
			leaks := 0
			for _, e := range events.Items {
				if e.Reason == "KeyLeaked" && e.Type == corev1.EventTypeWarning {
					leaks += max(1, int(e.Count))
				}
			}
			g.Expect(leaks).To(BeNumerically(">=", 1))
		}, issueTimeout, pollEvery).Should(Succeed())
		out, err := exec.Command(pluginBin, "audit", "acme", "--kubeconfig", env.Kubeconfig, "-n", ns).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("Leak report: key " + k.Status.RevokedKeys[0].KeyID))
		Expect(string(out)).To(ContainSubstring("the reported key no longer works"))
		Expect(string(out)).NotTo(ContainSubstring(leaked))
	})
})
