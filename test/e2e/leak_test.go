//go:build e2e

package e2e

import (
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// The README's "For support" walkthrough, step by step, as the people in it.
var _ = Describe("A leaked key, as support handles it", func() {
	It("rotates at once as support, then shows support who still presents the old key, and from where", func() {
		applyPeopleRoles()
		ns := newNamespace()
		rotator := as(ns, "support@octopods.example", "key-rotator")
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed()) // rotationGracePeriod 0s
		leaked := waitIssued(ns, "acme")
		Eventually(func() int { return status(leaked) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))

		// 1. Support rotates: the leaked key stops at once.
		Eventually(func() error {
			k := keyOf(Default, ns, "acme")
			patch := client.MergeFrom(k.DeepCopy())
			k.Annotations[octopodsv1alpha1.RotateAnnotation] = "LEAK-2026-11-27"
			return rotator.Patch(ctx, k, patch)
		}, issueTimeout, pollEvery).Should(Succeed())
		Eventually(func() int { return status(leaked) }, issueTimeout, pollEvery).Should(Equal(http.StatusBadRequest), "DEPRECATED_API_KEY")
		Eventually(func(g Gomega) {
			k := keyOf(g, ns, "acme")
			g.Expect(k.Status.LastRotatedBy).To(Equal("support@octopods.example"))
			g.Expect(k.Status.RevokedKeys).To(ContainElement(HaveField("KeyID", apikey.ID(leaked))))
		}, issueTimeout, pollEvery).Should(Succeed())

		// 2. Whoever copied it tries it: refused as Octopods' API refuses a
		// rotated key.
		code, _, body := call(leaked)
		Expect(code).To(Equal(http.StatusBadRequest))
		Expect(body).To(MatchJSON(`{"error":"DEPRECATED_API_KEY"}`))

		// 3. Support sees it on the key, as `kubectl describe` shows it.
		Eventually(func(g Gomega) {
			events := &corev1.EventList{}
			g.Expect(rotator.List(ctx, events, client.InNamespace(ns))).To(Succeed())
			var notes []string
			for _, e := range events.Items {
				if e.InvolvedObject.Name == "acme" && e.Reason == "RevokedKeyPresented" {
					g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
					notes = append(notes, e.Message)
				}
			}
			g.Expect(notes).To(ContainElement(ContainSubstring("revoked key " + apikey.ID(leaked) + " was presented from 127.0.0.1 at ")))
		}, 3*flushInterval+issueTimeout, 200*time.Millisecond).Should(Succeed())
		use := keyOf(Default, ns, "acme").Status.LastRevokedKeyUse
		Expect(use).NotTo(BeNil())
		Expect(use.KeyID).To(Equal(apikey.ID(leaked)))
		Expect(use.ClientAddress).To(Equal("127.0.0.1"))
	})
})
