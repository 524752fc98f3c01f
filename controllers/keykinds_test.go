package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// The three key kinds share one reconciler: each is issued into a Secret of
// its own type with its own prefix, publishes the scope its owner gives it,
// and is revoked when its owner or the owner's Workspace goes.
var _ = Describe("Channel and WhatsApp Business keys", func() {
	type kindCase struct {
		owner       func(ns string) client.Object
		key         func(ns string) octopodsv1alpha1.KeyObject
		secretName  string
		secretType  string
		prefix      string
		scope       octopodsv1alpha1.KeyScope
		deleteOwner bool // else delete the Workspace
	}
	issued := func(g Gomega, key octopodsv1alpha1.KeyObject) *corev1.Secret {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(key), key)).To(Succeed())
		st := key.KeyStatus()
		g.Expect(meta.IsStatusConditionTrue(st.Conditions, ConditionReady)).To(BeTrue(), "Ready")
		s := getSecret(g, key.GetNamespace(), st.SecretName)
		g.Expect(st.PublishedKeys).To(HaveLen(1))
		g.Expect(st.KeyID).To(Equal(apikey.ID(keyIn(s))))
		return s
	}

	DescribeTable("issue, scope and revocation",
		func(c kindCase) {
			ns := newNamespace()
			key := c.key(ns)
			create(testutil.Workspace(ns, "acme"), c.owner(ns), key)
			var secret *corev1.Secret
			Eventually(func(g Gomega) { secret = issued(g, key) }).Should(Succeed())

			Expect(secret.Name).To(Equal(c.secretName))
			Expect(string(secret.Type)).To(Equal(c.secretType))
			Expect(keyIn(secret)).To(HavePrefix(c.prefix))
			Expect(apikey.Validate(keyIn(secret))).To(Succeed())
			Expect(secret.Labels).To(HaveKeyWithValue(octopodsv1alpha1.WorkspaceLabel, "acme"))
			Expect(metav1.IsControlledBy(secret, key)).To(BeTrue())
			Expect(key.KeyStatus().Scope).To(Equal(&c.scope))
			Expect(key.GetFinalizers()).To(ContainElement(RevokeFinalizer))
			Expect(metav1.GetControllerOf(key).Kind).To(Equal(key.KeyKind().OwnerKind))

			// Deleting the owner (or its Workspace) revokes the key, with no
			// garbage collector in envtest: the reconciler sees it gone.
			gone := c.owner(ns)
			if !c.deleteOwner {
				gone = testutil.Workspace(ns, "acme")
			}
			Expect(k8sClient.Delete(ctx, gone)).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(key), key)).To(Succeed())
				g.Expect(key.KeyStatus().PublishedKeys).To(BeEmpty())
				g.Expect(key.KeyStatus().RevokedKeys).To(HaveLen(1))
				isNotFound(g, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.secretName}})
			}).Should(Succeed())
		},
		Entry("an SMS channel's key, revoked with its Channel", kindCase{
			owner: func(ns string) client.Object {
				return testutil.Channel(ns, "sms-1", "acme", octopodsv1alpha1.ChannelSMS)
			},
			key:        func(ns string) octopodsv1alpha1.KeyObject { return testutil.ChannelAPIKey(ns, "sms-1") },
			secretName: "sms-1-channel-api-key", secretType: octopodsv1alpha1.ChannelSecretType, prefix: apikey.PrefixChannel,
			scope:       octopodsv1alpha1.KeyScope{Type: "channel", Workspace: "acme", Channel: "sms-1", ChannelType: "SMS"},
			deleteOwner: true,
		}),
		Entry("a Telegram channel's key, revoked with its Workspace", kindCase{
			owner: func(ns string) client.Object {
				return testutil.Channel(ns, "bot", "acme", octopodsv1alpha1.ChannelTelegram)
			},
			key:        func(ns string) octopodsv1alpha1.KeyObject { return testutil.ChannelAPIKey(ns, "bot") },
			secretName: "bot-channel-api-key", secretType: octopodsv1alpha1.ChannelSecretType, prefix: apikey.PrefixChannel,
			scope: octopodsv1alpha1.KeyScope{Type: "channel", Workspace: "acme", Channel: "bot", ChannelType: "Telegram"},
		}),
		Entry("a WhatsApp Business Account's key, revoked with its account", kindCase{
			owner:      func(ns string) client.Object { return testutil.WhatsAppBusinessAccount(ns, "waba", "acme") },
			key:        func(ns string) octopodsv1alpha1.KeyObject { return testutil.WhatsAppAPIKey(ns, "waba") },
			secretName: "waba-whatsapp-api-key", secretType: octopodsv1alpha1.WhatsAppSecretType, prefix: apikey.PrefixWhatsApp,
			scope:       octopodsv1alpha1.KeyScope{Type: "whatsapp", Workspace: "acme", WhatsAppBusinessAccount: "waba"},
			deleteOwner: true,
		}),
		Entry("a WhatsApp Business Account's key, revoked with its Workspace", kindCase{
			owner:      func(ns string) client.Object { return testutil.WhatsAppBusinessAccount(ns, "waba", "acme") },
			key:        func(ns string) octopodsv1alpha1.KeyObject { return testutil.WhatsAppAPIKey(ns, "waba") },
			secretName: "waba-whatsapp-api-key", secretType: octopodsv1alpha1.WhatsAppSecretType, prefix: apikey.PrefixWhatsApp,
			scope: octopodsv1alpha1.KeyScope{Type: "whatsapp", Workspace: "acme", WhatsAppBusinessAccount: "waba"},
		}),
	)

	It("rotates a channel key like a workspace key: a new token, a new key, the old one remembered as revoked", func() {
		ns := newNamespace()
		key := testutil.ChannelAPIKey(ns, "viber")
		create(testutil.Workspace(ns, "acme"), testutil.Channel(ns, "viber", "acme", octopodsv1alpha1.ChannelVBM), key)
		var first *corev1.Secret
		Eventually(func(g Gomega) { first = issued(g, key) }).Should(Succeed())
		patch := client.MergeFrom(key.DeepCopy())
		key.Annotations = map[string]string{octopodsv1alpha1.RotateAnnotation: "T-1"}
		Expect(k8sClient.Patch(ctx, key, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			s := issued(g, key)
			g.Expect(keyIn(s)).NotTo(Equal(keyIn(first)))
			g.Expect(keyIn(s)).To(HavePrefix(apikey.PrefixChannel))
			g.Expect(key.KeyStatus().LastRotationToken).To(Equal("T-1"))
			g.Expect(key.KeyStatus().RevokedKeys).To(ConsistOf(HaveField("KeyID", apikey.ID(keyIn(first)))))
		}).Should(Succeed())
	})
})
