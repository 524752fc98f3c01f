package controllers

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// A leak report is what an auth proxy records in status.lastLeakReport (a
// usage field) when GitHub reports a key; the key reconciler acts on it as
// spec.leakResponse says, and the sighting reconciler announces it.
var _ = Describe("Leak reports", func() {
	report := func(key octopodsv1alpha1.KeyObject, keyID string) *octopodsv1alpha1.LeakReport {
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(key), key)).To(Succeed())
		patch := client.MergeFrom(key.DeepCopyObject().(client.Object))
		r := &octopodsv1alpha1.LeakReport{Time: metav1.NewTime(time.Now().Truncate(time.Second)), KeyID: keyID,
			Source: "github:content", URL: "https://github.com/octo/leaky/blob/abc/config.yml"}
		key.KeyStatus().LastLeakReport = r
		Expect(k8sClient.Status().Patch(ctx, key, patch)).To(Succeed())
		return r
	}
	leakedEvents := func(g Gomega, key octopodsv1alpha1.KeyObject) []string {
		var out []string
		for _, e := range eventsFor(g, key.GetNamespace(), key.GetName()) {
			if strings.HasPrefix(e, "Warning/"+EventKeyLeaked+":") {
				out = append(out, e)
			}
		}
		return out
	}
	withKey := func(ns string, kind octopodsv1alpha1.KeyKind, response octopodsv1alpha1.LeakResponse, grace time.Duration) (octopodsv1alpha1.KeyObject, string) {
		var key octopodsv1alpha1.KeyObject
		switch kind.Kind {
		case octopodsv1alpha1.WorkspaceKey.Kind:
			key = testutil.APIKey(ns, "acme")
			create(testutil.Workspace(ns, "acme"))
		case octopodsv1alpha1.ChannelKey.Kind:
			key = testutil.ChannelAPIKey(ns, "sms-1")
			create(testutil.Workspace(ns, "acme"), testutil.Channel(ns, "sms-1", "acme", octopodsv1alpha1.ChannelSMS))
		default:
			key = testutil.WhatsAppAPIKey(ns, "waba-1")
			create(testutil.Workspace(ns, "acme"), testutil.WhatsAppBusinessAccount(ns, "waba-1", "acme"))
		}
		key.Settings().LeakResponse = response
		key.Settings().RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: grace}
		create(key)
		return key, testutil.IssuedKeyOf(k8sClient, key)
	}

	DescribeTable("Rotate replaces the reported key at once, with no grace period, for every kind",
		func(kind octopodsv1alpha1.KeyKind) {
			ns := newNamespace()
			key, leaked := withKey(ns, kind, "", time.Hour) // Rotate is the default; the grace is ignored
			r := report(key, apikey.ID(leaked))
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(key), key)).To(Succeed())
				st := key.KeyStatus()
				g.Expect(st.KeyID).NotTo(Equal(apikey.ID(leaked)))
				g.Expect(st.LastRotationToken).To(Equal(octopodsv1alpha1.LeakToken(r)))
				g.Expect(st.LastRotatedBy).To(Equal(octopodsv1alpha1.LeakReporter))
				g.Expect(st.PublishedKeys).To(HaveLen(1), "no grace period: the leaked key is not published")
				g.Expect(st.RevokedKeys).To(ContainElement(HaveField("KeyID", apikey.ID(leaked))))
				g.Expect(key.Settings().LeakResponse).To(BeEmpty(), "unset is Rotate, and no default is written into the spec")
				g.Expect(leakedEvents(g, key)).To(ConsistOf(And(ContainSubstring("key "+apikey.ID(leaked)+" was reported found in public by github:content at https://github.com/octo/leaky"),
					ContainSubstring("rotated at once"))))
			}).Should(Succeed())
			secret := getSecret(Default, ns, key.KeyStatus().SecretName)
			Expect(secret.Data).NotTo(HaveKey(octopodsv1alpha1.SecretKeyPreviousAPIKey))
			Expect(keyIn(secret)).NotTo(Equal(leaked))
		},
		Entry("workspace key", octopodsv1alpha1.WorkspaceKey),
		Entry("channel key", octopodsv1alpha1.ChannelKey),
		Entry("WhatsApp key", octopodsv1alpha1.WhatsAppKey),
	)

	It("Report records and announces, and rotates nothing", func() {
		ns := newNamespace()
		key, leaked := withKey(ns, octopodsv1alpha1.WorkspaceKey, octopodsv1alpha1.LeakResponseReport, 0)
		report(key, apikey.ID(leaked))
		Eventually(func(g Gomega) {
			g.Expect(leakedEvents(g, key)).To(ConsistOf(ContainSubstring("spec.leakResponse is Report: it still works until you rotate it")))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(key), key)).To(Succeed())
			g.Expect(key.KeyStatus().KeyID).To(Equal(apikey.ID(leaked)))
		}, "2s").Should(Succeed())

		// Switching to Rotate acts on the report already recorded.
		updateKey(ns, "acme", func(k *octopodsv1alpha1.WorkspaceAPIKey) { k.Spec.LeakResponse = octopodsv1alpha1.LeakResponseRotate })
		Eventually(func(g Gomega) {
			g.Expect(getKey(g, ns, "acme").Status.KeyID).NotTo(Equal(apikey.ID(leaked)))
		}).Should(Succeed())
	})

	It("a report of a key already revoked rotates nothing more, and says so", func() {
		ns := newNamespace()
		key, first := withKey(ns, octopodsv1alpha1.WorkspaceKey, "", 0)
		rotate(ns, "acme", "T1")
		var current string
		Eventually(func(g Gomega) {
			k := getKey(g, ns, "acme")
			g.Expect(k.Status.LastRotationToken).To(Equal("T1"))
			current = k.Status.KeyID
		}).Should(Succeed())
		report(key, apikey.ID(first))
		Eventually(func(g Gomega) {
			g.Expect(leakedEvents(g, key)).To(ConsistOf(ContainSubstring("it no longer works (revoked earlier): nothing rotated")))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(getKey(g, ns, "acme").Status.KeyID).To(Equal(current))
		}, "2s").Should(Succeed())
	})

	It("a revoked key keeps when it was last admitted, for the audit", func() {
		ns := newNamespace()
		_, first := withKey(ns, octopodsv1alpha1.WorkspaceKey, "", 0)
		used := metav1.NewTime(time.Now().Truncate(time.Second)) // after the key's issue: its own use
		k := getKey(Default, ns, "acme")
		patch := client.MergeFrom(k.DeepCopy())
		k.Status.LastUsedTime = &used // as an auth proxy records it
		Expect(k8sClient.Status().Patch(ctx, k, patch)).To(Succeed())
		rotate(ns, "acme", "T1")
		Eventually(func(g Gomega) {
			revoked := getKey(g, ns, "acme").Status.RevokedKeys
			g.Expect(revoked).NotTo(BeEmpty())
			g.Expect(revoked[0].KeyID).To(Equal(apikey.ID(first)))
			g.Expect(revoked[0].LastUsedTime).NotTo(BeNil())
			g.Expect(revoked[0].LastUsedTime.Time).To(BeTemporally("==", used.Time))
		}).Should(Succeed())
	})

	It("a leaked previous key stops at once, and the current key stays", func() {
		ns := newNamespace()
		_, first := withKey(ns, octopodsv1alpha1.WorkspaceKey, "", time.Hour)
		rotate(ns, "acme", "T1")
		var current string
		Eventually(func(g Gomega) {
			k := getKey(g, ns, "acme")
			g.Expect(k.Status.PublishedKeys).To(HaveLen(2))
			current = k.Status.KeyID
		}).Should(Succeed())
		report(getKey(Default, ns, "acme"), apikey.ID(first))
		Eventually(func(g Gomega) {
			k := getKey(g, ns, "acme")
			g.Expect(k.Status.PublishedKeys).To(HaveLen(1))
			g.Expect(k.Status.KeyID).To(Equal(current))
			g.Expect(getSecret(g, ns, k.Status.SecretName).Data).NotTo(HaveKey(octopodsv1alpha1.SecretKeyPreviousAPIKey))
		}).Should(Succeed())
	})
})
