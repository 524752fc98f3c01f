//go:build e2e

package e2e

import (
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// Issue 19's five steps, through run-local's real binaries: one tenant's
// typo must stop nothing for any other tenant, and every probe must tell
// the truth.
var _ = Describe("One tenant's typo", Ordered, func() {
	var p1, p2, p3 string
	BeforeAll(func() {
		p1, p2, p3 = newNamespace(), newNamespace(), newNamespace()
		for _, ns := range []string{p1, p2} {
			Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "a"))).To(Succeed())
			Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "a"))).To(Succeed())
			waitIssued(ns, "a")
		}
	})

	It("1. is refused on update, naming the value and the fix", func() {
		k := keyOf(Default, p1, "a")
		patch := client.MergeFrom(k.DeepCopy())
		k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Invalid: "1 hour"}
		Expect(k8sClient.Patch(ctx, k, patch)).To(MatchError(ContainSubstring(
			`spec.rotationGracePeriod: Invalid value: "1 hour": "1 hour" is not a duration: use h, m or s`)))
	})

	It("2–4. stored anyway, it stops no other tenant's rotation, issue or revocation, and the probes say ready because they are", func() {
		bad, probe := testutil.BareAPIKey(p1, "b"), testutil.BareAPIKey(p1, "probe")
		bad.Spec.RotationInterval = &octopodsv1alpha1.Duration{Invalid: "30d"}
		probe.Spec.RotationInterval = bad.Spec.RotationInterval
		Expect(k8sClient.Create(ctx, testutil.Workspace(p1, "b"))).To(Succeed())
		testutil.StoreBehindTheSchema(ctx, k8sClient, "workspaceapikeys.octopods.io", "rotationInterval", bad, probe)

		// Support rotates a leaked key in p2.
		leaked := string(secretOf(Default, p2, "a").Data[octopodsv1alpha1.SecretKeyAPIKey])
		start := time.Now()
		rotate(p2, "a", "leak-1")
		Eventually(func() int { return status(leaked) }, issueTimeout, pollEvery).Should(Equal(http.StatusBadRequest), "DEPRECATED_API_KEY")
		rotated := time.Since(start)
		fresh := waitIssued(p2, "a")
		Eventually(func() int { return status(fresh) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))

		// A new tenant in p3 gets a key, then loses it.
		start = time.Now()
		Expect(k8sClient.Create(ctx, testutil.Workspace(p3, "c"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(p3, "c"))).To(Succeed())
		third := waitIssued(p3, "c")
		Eventually(func() int { return status(third) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		issued := time.Since(start)
		start = time.Now()
		Expect(k8sClient.Delete(ctx, testutil.BareAPIKey(p3, "c"))).To(Succeed())
		Eventually(func() int { return status(third) }, issueTimeout, pollEvery).Should(Equal(http.StatusUnauthorized))
		revoked := time.Since(start)
		figure("one undecodable key in another namespace: a leaked key refused %s after the rotate annotation, a new key admitted %s after its creation, a deleted key refused %s after the delete",
			rotated.Round(time.Millisecond), issued.Round(time.Millisecond), revoked.Round(time.Millisecond))

		// The bad key says why, and nothing else is affected.
		Eventually(func(g Gomega) {
			c := meta.FindStatusCondition(keyOf(g, p1, "b").Status.Conditions, "Ready")
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal("InvalidSpec"))
			g.Expect(c.Message).To(HavePrefix(`spec.rotationInterval: "30d" is not a duration`))
		}, issueTimeout, pollEvery).Should(Succeed())
		for _, probe := range []string{env.ManagerProbeAddress, env.ProxyProbeAddress} {
			res, err := httpClient.Get("http://" + probe + "/readyz")
			Expect(err).NotTo(HaveOccurred())
			_ = res.Body.Close()
			Expect(res.StatusCode).To(Equal(http.StatusOK), "%s/readyz", probe)
		}
	})

	It("5. fixed, it is issued, and the proxy admits it within 1s of its publication", func() {
		Eventually(func() error {
			k := keyOf(Default, p1, "b")
			patch := client.MergeFrom(k.DeepCopy())
			k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Duration: 720 * time.Hour}
			return k8sClient.Patch(ctx, k, patch)
		}, issueTimeout, pollEvery).Should(Succeed())
		key := waitIssued(p1, "b")
		Eventually(func() int { return status(key) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
	})
})
