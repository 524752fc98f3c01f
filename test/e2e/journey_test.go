//go:build e2e

package e2e

import (
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

var _ = Describe("A user's journey", Ordered, func() {
	var ns, acmeKey string

	BeforeAll(func() { ns = newNamespace() })

	It("issues keys whatever the order Workspaces and keys are applied in", func() {
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "globex"))).To(Succeed(), "key before its workspace")
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "globex"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "initech"))).To(Succeed(), "a workspace with no key")
		acmeKey = waitIssued(ns, "acme")
		waitIssued(ns, "globex")
	})

	It("writes the Secret in the contract's shape", func() {
		s := secretOf(Default, ns, "acme")
		Expect(s.Type).To(Equal(corev1.SecretType(octopodsv1alpha1.SecretType)))
		Expect(string(s.Data["api-key"])).To(MatchRegexp(`^opk_[0-9A-Za-z]{49}$`))
		Expect(s.Labels).To(HaveKeyWithValue("octopods.io/workspace", "acme"))
		Expect(s.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "octopods-operator"))
		Expect(s.Annotations).To(HaveKeyWithValue("octopods.io/key-id", apikey.ID(acmeKey)))
		Expect(metav1.GetControllerOf(s)).To(HaveField("Kind", "WorkspaceAPIKey"))
		k := keyOf(Default, ns, "acme")
		Expect(k.Spec.WorkspaceName).To(Equal("acme"), "defaulted by the webhook")
		Expect(k.Spec.SecretName).To(Equal("acme-api-key"), "written out by the webhook")
	})

	It("reads like the settings table in `kubectl get workspaces`", func() {
		cfg := rest.CopyConfig(env.Config)
		cfg.APIPath, cfg.GroupVersion = "/apis", &octopodsv1alpha1.GroupVersion
		cfg.NegotiatedSerializer = clientNegotiator()
		rc, err := rest.RESTClientFor(cfg)
		Expect(err).NotTo(HaveOccurred())
		table := &metav1.Table{}
		Expect(rc.Get().Namespace(ns).Resource("workspaces").
			SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(ctx).Into(table)).To(Succeed())
		var columns []string
		for _, c := range table.ColumnDefinitions {
			if c.Priority == 0 {
				columns = append(columns, c.Name)
			}
		}
		Expect(columns).To(Equal([]string{"Name", "Workspace", "Provider", "API Key", "Age"}))
		rows := map[string][]any{}
		for _, r := range table.Rows {
			rows[r.Cells[0].(string)] = r.Cells
		}
		Expect(rows["acme"][1:4]).To(Equal([]any{"Workspace acme", "Intercom", "acme-api-key (key " + apikey.ID(acmeKey) + ")"}))
		Eventually(func() any {
			t := &metav1.Table{}
			_ = rc.Get().Namespace(ns).Resource("workspaces").Name("initech").
				SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(ctx).Into(t)
			if len(t.Rows) == 0 {
				return nil
			}
			return t.Rows[0].Cells[3]
		}, issueTimeout, pollEvery).Should(Equal("No API key generated"))
	})

	It("admits calls with the key and refuses the rest through the proxy", func() {
		Eventually(func() int { return status(acmeKey) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		code, seen, _ := call(acmeKey)
		Expect(code).To(Equal(http.StatusOK))
		Expect(seen.Headers.Get("X-Octopods-Workspace")).To(Equal("acme"))
		Expect(seen.Headers.Get("X-Octopods-Workspace-Namespace")).To(Equal(ns))
		Expect(seen.Headers.Get("X-Octopods-Key-Id")).To(Equal(apikey.ID(acmeKey)))
		Expect(seen.Headers.Get("X-Octopods-Auth")).To(BeEmpty())

		code, _, body := call("")
		Expect(code).To(Equal(http.StatusUnauthorized))
		Expect(body).To(MatchJSON(`{"error":"missing_key"}`))
		code, _, body = call("Bearer " + acmeKey)
		Expect(code).To(Equal(http.StatusUnauthorized))
		Expect(body).To(MatchJSON(`{"error":"invalid_key"}`))
	})

	It("records when the key was last used", func() {
		Expect(status(acmeKey)).To(Equal(http.StatusOK))
		Eventually(func(g Gomega) {
			used := keyOf(g, ns, "acme").Status.LastUsedTime
			g.Expect(used).NotTo(BeNil())
			g.Expect(used.Time).To(BeTemporally("~", time.Now(), 10*time.Second))
		}, 3*flushInterval, 100*time.Millisecond).Should(Succeed())
	})

	It("rotates without grace: the old key stops at once", func() {
		rotate(ns, "acme", "LEAK-1")
		start := time.Now()
		Eventually(func() int { return status(acmeKey) }, issueTimeout, pollEvery).Should(Equal(http.StatusBadRequest), "DEPRECATED_API_KEY")
		refused := time.Since(start)
		var newKey string
		Eventually(func(g Gomega) {
			s := secretOf(g, ns, "acme")
			newKey = string(s.Data["api-key"])
			g.Expect(s.Annotations).To(HaveKeyWithValue("octopods.io/rotation-token", "LEAK-1"))
		}, issueTimeout, pollEvery).Should(Succeed())
		Expect(newKey).NotTo(Equal(acmeKey))
		Eventually(func() int { return status(newKey) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		figure("rotation without grace: old key refused by the proxy %s after the annotation", refused.Round(time.Millisecond))
		acmeKey = newKey
	})

	It("rotates with grace: both keys work until the grace period ends", func() {
		Eventually(func() error {
			k := keyOf(Default, ns, "acme")
			k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: 5 * time.Second}
			return k8sClient.Update(ctx, k)
		}, issueTimeout, pollEvery).Should(Succeed())
		old := acmeKey
		rotate(ns, "acme", "PLANNED-2")
		Eventually(func(g Gomega) {
			s := secretOf(g, ns, "acme")
			g.Expect(s.Annotations).To(HaveKeyWithValue("octopods.io/rotation-token", "PLANNED-2"))
			acmeKey = string(s.Data["api-key"])
		}, issueTimeout, pollEvery).Should(Succeed())
		Eventually(func() int { return status(acmeKey) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		Expect(status(old)).To(Equal(http.StatusOK), "the previous key works during the grace period")
		// The slices admit a new key ahead of its status write: wait for it.
		var until *metav1.Time
		Eventually(func(g Gomega) {
			until = keyOf(g, ns, "acme").Status.PreviousValidUntil
			g.Expect(until).NotTo(BeNil())
		}, issueTimeout, pollEvery).Should(Succeed())
		// At validUntil the proxy stops admitting it, and the operator drops
		// it and remembers it: DEPRECATED_API_KEY.
		Eventually(func() int { return status(old) }, 5*time.Second+issueTimeout, pollEvery).Should(Equal(http.StatusBadRequest))
		figure("grace period end: previous key refused by the proxy %s after its validUntil", time.Since(until.Time).Round(time.Millisecond))
		Expect(status(acmeKey)).To(Equal(http.StatusOK))
	})

	It("re-issues a deleted Secret with a new key", func() {
		old := acmeKey
		Expect(k8sClient.Delete(ctx, secretOf(Default, ns, "acme"))).To(Succeed())
		deleted := time.Now()
		Eventually(func() int { return status(old) }, issueTimeout, pollEvery).Should(Equal(http.StatusBadRequest))
		figure("deleted Secret: its key refused by the proxy %s after the delete", time.Since(deleted).Round(time.Millisecond))
		Eventually(func(g Gomega) {
			acmeKey = string(secretOf(g, ns, "acme").Data["api-key"])
			g.Expect(apikey.Validate(acmeKey)).To(Succeed())
			g.Expect(acmeKey).NotTo(Equal(old))
		}, issueTimeout, pollEvery).Should(Succeed())
		Eventually(func() int { return status(acmeKey) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		figure("re-issued key admitted by the proxy %s after the Secret was deleted", time.Since(deleted).Round(time.Millisecond))
		Expect(status(old)).To(Equal(http.StatusBadRequest), "remembered as revoked")
	})

	It("revokes the key when the key is deleted", func() {
		Expect(k8sClient.Delete(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		deleted := time.Now()
		Eventually(func() int { return status(acmeKey) }, issueTimeout, pollEvery).Should(Equal(http.StatusUnauthorized))
		figure("deleted WorkspaceAPIKey: its key refused by the proxy %s after the delete", time.Since(deleted).Round(time.Millisecond))
		Eventually(func(g Gomega) {
			g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme-api-key"}, &corev1.Secret{}))).To(BeTrue())
			ws := &octopodsv1alpha1.Workspace{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme"}, ws)).To(Succeed())
			g.Expect(ws.Status.APIKey).To(Equal("No API key generated"))
		}, issueTimeout, pollEvery).Should(Succeed())
	})

	It("revokes the key when the workspace is deleted", func() {
		globexKey := waitIssued(ns, "globex")
		Eventually(func() int { return status(globexKey) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		Expect(k8sClient.Delete(ctx, testutil.Workspace(ns, "globex"))).To(Succeed())
		Eventually(func() int { return status(globexKey) }, issueTimeout, pollEvery).Should(Equal(http.StatusUnauthorized))
		Eventually(func(g Gomega) {
			g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "globex"}, &octopodsv1alpha1.WorkspaceAPIKey{}))).To(BeTrue())
			g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "globex"}, &octopodsv1alpha1.Workspace{}))).To(BeTrue())
		}, issueTimeout, pollEvery).Should(Succeed())
	})
})
