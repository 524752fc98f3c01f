package webhook

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/controllers"
	"github.com/octopods/octopods-operator/internal/testutil"
)

func newNamespace() string { return testutil.NewNamespace(k8sClient, "octopods-webhook-") }

func getKey(g Gomega, ns, name string) *octopodsv1alpha1.WorkspaceAPIKey {
	return testutil.GetKey(g, k8sClient, ns, name)
}

var _ = Describe("Defaulting", func() {
	It("fills workspaceName from the name and writes out secretName", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		k := getKey(Default, ns, "acme")
		Expect(k.Spec.WorkspaceName).To(Equal("acme"))
		Expect(k.Spec.SecretName).To(Equal("acme-api-key"))
	})

	It("never rewrites what the person wrote: rotationGracePeriod 1m stays 1m (no GitOps drift)", func() {
		ns := newNamespace()
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "octopods.io/v1alpha1", "kind": "WorkspaceAPIKey",
			"metadata": map[string]any{"namespace": ns, "name": "acme"},
			"spec":     map[string]any{"rotationGracePeriod": "1m"},
		}}
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(u.GroupVersionKind())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), got)).To(Succeed())
		Expect(got.Object["spec"]).To(Equal(map[string]any{"rotationGracePeriod": "1m", "workspaceName": "acme", "secretName": "acme-api-key"}))
	})

	It("adds the finalizers and the Workspace owner at creation, so the operator needs no metadata write", func() {
		ns := newNamespace()
		ws := testutil.Workspace(ns, "acme")
		Expect(k8sClient.Create(ctx, ws)).To(Succeed())
		Expect(ws.Finalizers).To(ConsistOf(octopodsv1alpha1.RevokeFinalizer), "as the API server returned the Workspace it created")
		k := testutil.BareAPIKey(ns, "acme")
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		Expect(k.Finalizers).To(ConsistOf(octopodsv1alpha1.RevokeFinalizer))
		Expect(k.OwnerReferences).To(ConsistOf(And(
			HaveField("Kind", "Workspace"), HaveField("Name", "acme"), HaveField("UID", ws.UID),
			HaveField("Controller", HaveValue(BeTrue())), HaveField("BlockOwnerDeletion", BeNil()))))

		// A key whose Workspace does not exist yet gets its finalizer, and
		// its owner later from the reconciler.
		orphan := testutil.BareAPIKey(ns, "globex")
		Expect(k8sClient.Create(ctx, orphan)).To(Succeed())
		Expect(orphan.Finalizers).To(ConsistOf(octopodsv1alpha1.RevokeFinalizer))
		Expect(orphan.OwnerReferences).To(BeEmpty())
	})

	It("keeps an explicit secretName", func() {
		ns := newNamespace()
		k := testutil.BareAPIKey(ns, "acme")
		k.Spec.SecretName = "octopods-credentials"
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		Expect(getKey(Default, ns, "acme").Spec.SecretName).To(Equal("octopods-credentials"))
	})
})

var _ = Describe("Refusing a foreign Secret", func() {
	DescribeTable("refuses a key whose Secret exists and is not this operator's for this key",
		func(secret func(ns string) *corev1.Secret, whose string) {
			ns := newNamespace()
			foreign := secret(ns)
			Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
			err := k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(`spec.secretName: Invalid value: "acme-api-key": Secret "acme-api-key" already exists and ` + whose + `; the operator never takes over`))
			Expect(apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "acme"}, &octopodsv1alpha1.WorkspaceAPIKey{}))).To(BeTrue())
		},
		Entry("an Opaque Secret", func(ns string) *corev1.Secret {
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-api-key"}, Type: corev1.SecretTypeOpaque}
		}, "is not managed by octopods-operator"),
		Entry("a key-typed Secret with no owner", func(ns string) *corev1.Secret {
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-api-key"}, Type: octopodsv1alpha1.SecretType}
		}, "is not managed by octopods-operator"),
		Entry("another workspace's key Secret", func(ns string) *corev1.Secret {
			return &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-api-key", OwnerReferences: []metav1.OwnerReference{{
					APIVersion: octopodsv1alpha1.GroupVersion.String(), Kind: "WorkspaceAPIKey", Name: "globex", UID: "0000", Controller: ptrTrue(),
				}}},
				Type: octopodsv1alpha1.SecretType,
			}
		}, `belongs to WorkspaceAPIKey "globex"`),
	)

	It("names the field and an example for a bad duration", func() {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "octopods.io/v1alpha1", "kind": "WorkspaceAPIKey",
			"metadata": map[string]any{"namespace": newNamespace(), "name": "acme"},
			"spec":     map[string]any{"rotationGracePeriod": "1x"},
		}}
		err := k8sClient.Create(ctx, u)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.rotationGracePeriod"))
		Expect(err.Error()).NotTo(HavePrefix("time: "))
	})

	It("is backed by the reconciler when the Secret appears after the key was admitted", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(meta.FindStatusCondition(getKey(g, ns, "acme").Status.Conditions, controllers.ConditionReady)).To(
				HaveField("Reason", controllers.ReasonWorkspaceNotFound))
		}).Should(Succeed())
		foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-api-key"}, StringData: map[string]string{"password": "x"}}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(meta.FindStatusCondition(getKey(g, ns, "acme").Status.Conditions, controllers.ConditionReady)).To(
				HaveField("Reason", controllers.ReasonSecretConflict))
		}).Should(Succeed())
		s := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), s)).To(Succeed())
		Expect(s.ResourceVersion).To(Equal(foreign.ResourceVersion))
	})
})

// The same key webhooks serve the channel and WhatsApp Business keys.
var _ = Describe("Channel and WhatsApp Business keys", func() {
	It("default the owner and the Secret name, make the owner the controller, and refuse someone else's Secret", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Channel(ns, "sms-1", "acme", octopodsv1alpha1.ChannelSMS))).To(Succeed())
		ch := &octopodsv1alpha1.Channel{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sms-1"}, ch)).To(Succeed())
		Expect(metav1.GetControllerOf(ch)).To(HaveField("Kind", "Workspace"), "a Channel is owned by its Workspace from its creation")

		key := &octopodsv1alpha1.ChannelAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sms-1"}}
		Expect(k8sClient.Create(ctx, key)).To(Succeed())
		Expect(key.Spec.ChannelName).To(Equal("sms-1"))
		Expect(key.Spec.SecretName).To(Equal("sms-1-channel-api-key"))
		Expect(key.Finalizers).To(ContainElement(octopodsv1alpha1.RevokeFinalizer))
		Expect(metav1.GetControllerOf(key)).To(HaveField("Kind", "Channel"))

		got := warnings.during(func() {
			Expect(k8sClient.Create(ctx, &octopodsv1alpha1.WhatsAppAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "waba"}})).To(Succeed())
		})
		Expect(got).To(ConsistOf(`WhatsAppBusinessAccount "waba" does not exist yet: the key will be issued when WhatsApp Business Account waba exists`))

		foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bot-channel-api-key"}, StringData: map[string]string{"password": "x"}}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		err := k8sClient.Create(ctx, &octopodsv1alpha1.ChannelAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bot"}})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring(`spec.secretName: Invalid value: "bot-channel-api-key": Secret "bot-channel-api-key" already exists and is not managed by octopods-operator`))
	})
})

var _ = Describe("Warnings", func() {
	It("warns that a key waits for its missing Workspace, then issues it", func() {
		ns := newNamespace()
		got := warnings.during(func() { Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed()) })
		Expect(got).To(ConsistOf(`Workspace "acme" does not exist yet: the key will be issued when workspace acme exists`))

		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Eventually(func(g Gomega) {
			k := getKey(g, ns, "acme")
			g.Expect(meta.IsStatusConditionTrue(k.Status.Conditions, controllers.ConditionReady)).To(BeTrue())
		}).Should(Succeed())
	})

	It("warns that a schedule without a grace period cuts integrations off at each rotation", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		k := testutil.BareAPIKey(ns, "acme")
		k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Duration: 720 * time.Hour}
		got := warnings.during(func() { Expect(k8sClient.Create(ctx, k)).To(Succeed()) })
		Expect(got).To(ConsistOf(HavePrefix("spec.rotationInterval with rotationGracePeriod 0s: every scheduled rotation stops the old key at once")))

		k = testutil.BareAPIKey(ns, "globex")
		k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Duration: 720 * time.Hour}
		k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: time.Hour}
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "globex"))).To(Succeed())
		Expect(warnings.during(func() { Expect(k8sClient.Create(ctx, k)).To(Succeed()) })).To(BeEmpty())
	})

	It("warns that a rotation token already used rotates nothing: pasted twice, or re-applied later", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		annotate := func(token string) []string {
			return warnings.during(func() {
				k := getKey(Default, ns, "acme")
				patch := client.MergeFrom(k.DeepCopy())
				if k.Annotations == nil {
					k.Annotations = map[string]string{}
				}
				k.Annotations[octopodsv1alpha1.RotateAnnotation] = token
				Expect(k8sClient.Patch(ctx, k, patch)).To(Succeed())
			})
		}
		rotatedWith := func(token string) {
			Eventually(func(g Gomega) { g.Expect(getKey(g, ns, "acme").Status.LastRotationToken).To(Equal(token)) }).Should(Succeed())
		}
		Eventually(func(g Gomega) { g.Expect(getKey(g, ns, "acme").Status.KeyID).NotTo(BeEmpty()) }).Should(Succeed())
		Expect(annotate("LEAK-1")).To(BeEmpty())
		rotatedWith("LEAK-1")
		// The README's command pasted a second time: the object does not change.
		Expect(annotate("LEAK-1")).To(ConsistOf(MatchRegexp(`^token "LEAK-1" was already used for this key at \d{4}-\d\d-\d\dT[0-9:]+Z; nothing rotated; use a new token$`)))
		Expect(annotate("LEAK-2")).To(BeEmpty())
		rotatedWith("LEAK-2")
		// A GitOps tool putting the older token back.
		Expect(annotate("LEAK-1")).To(ConsistOf(`token "LEAK-1" was already used for this key (it is among the last 16 tokens handled); nothing rotated; use a new token`))
	})

	It("does not warn when the Workspace exists", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		got := warnings.during(func() { Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed()) })
		Expect(got).To(BeEmpty())
	})

	It("warns that deleting a Workspace revokes its key, naming the key ID", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		var keyID string
		Eventually(func(g Gomega) {
			keyID = getKey(g, ns, "acme").Status.KeyID
			g.Expect(keyID).NotTo(BeEmpty())
		}).Should(Succeed())
		got := warnings.during(func() { Expect(k8sClient.Delete(ctx, testutil.Workspace(ns, "acme"))).To(Succeed()) })
		Expect(got).To(ConsistOf(`deleting Workspace "acme" revokes key ` + keyID + ` (Secret "acme-api-key") used by integrations`))
	})

	It("does not warn when deleting a Workspace without a key", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		got := warnings.during(func() { Expect(k8sClient.Delete(ctx, testutil.Workspace(ns, "acme"))).To(Succeed()) })
		Expect(got).To(BeEmpty())
	})
})

func ptrTrue() *bool { t := true; return &t }

// as is a client acting as user (with every permission: what matters here
// is the name the API server gives the webhook).
func as(user string) client.Client {
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters"}}
	c, err := client.New(cfg, client.Options{Scheme: k8sClient.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}

var _ = Describe("Who asked", func() {
	It("stamps the creator and the rotation's requester over anything the client sent, and the rotation names them", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		k := testutil.BareAPIKey(ns, "acme")
		k.Annotations = map[string]string{octopodsv1alpha1.CreatedByAnnotation: "mallory", octopodsv1alpha1.RotateRequestedByAnnotation: "mallory"}
		Expect(as("alice@acme.example").Create(ctx, k)).To(Succeed())
		got := getKey(Default, ns, "acme")
		Expect(got.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.CreatedByAnnotation, "alice@acme.example"))
		Expect(got.Annotations).NotTo(HaveKey(octopodsv1alpha1.RotateRequestedByAnnotation), "no rotation was asked for")
		Eventually(func(g Gomega) { g.Expect(getKey(g, ns, "acme").Status.KeyID).NotTo(BeEmpty()) }).Should(Succeed())

		Eventually(func() error {
			k := getKey(Default, ns, "acme")
			patch := client.MergeFrom(k.DeepCopy())
			k.Annotations[octopodsv1alpha1.RotateAnnotation] = "LEAK-7"
			k.Annotations[octopodsv1alpha1.RotateRequestedByAnnotation] = "mallory"
			return as("support@octopods.example").Patch(ctx, k, patch)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			k := getKey(g, ns, "acme")
			g.Expect(k.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.RotateRequestedByAnnotation, "support@octopods.example"))
			g.Expect(k.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.CreatedByAnnotation, "alice@acme.example"))
			g.Expect(k.Status.LastRotationToken).To(Equal("LEAK-7"))
			g.Expect(k.Status.LastRotatedBy).To(Equal("support@octopods.example"))
		}).Should(Succeed())
	})
})
