//go:build e2e

package e2e

import (
	"net/http"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/localenv"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// impersonating returns a client acting as user (no binding made).
func impersonating(user string, groups ...string) client.Client {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// withRBAC waits until a binding just made lets c read the namespace's key:
// the API server's authorizer learns of new bindings a moment later.
func withRBAC(c client.Client, ns string) client.Client {
	Eventually(func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme"}, &octopodsv1alpha1.WorkspaceAPIKey{})
	}, issueTimeout, pollEvery).Should(Succeed())
	return c
}

var _ = Describe("What the proxy trusts, with the components' real identities", Ordered, func() {
	var ns string
	var proxy client.Client
	BeforeAll(func() {
		ns = newNamespace()
		proxy = impersonating(localenv.ServiceAccountUser(localenv.ProxyServiceAccount), "system:serviceaccounts", "system:serviceaccounts:"+localenv.SystemNamespace)
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		waitIssued(ns, "acme")
	})

	It("runs the proxy as a ServiceAccount that may not read any Secret", func() {
		err := proxy.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme-api-key"}, &corev1.Secret{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		err = proxy.List(ctx, &corev1.SecretList{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		// It reads the KeyDigestSlices, and no longer the key objects.
		Expect(proxy.List(ctx, &octopodsv1alpha1.KeyDigestSliceList{})).To(Succeed())
		err = proxy.List(ctx, &octopodsv1alpha1.WorkspaceAPIKeyList{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
	})

	It("lets only the manager write a KeyDigestSlice, whatever RBAC grants (a cluster admin included)", func() {
		key, err := apikey.Generate()
		Expect(err).NotTo(HaveOccurred())
		d := apikey.DigestOf(key)
		forged := &octopodsv1alpha1.KeyDigestSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged", Labels: map[string]string{octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleKeys}},
			Keys: []octopodsv1alpha1.SlicedKey{{Kind: "WorkspaceAPIKey", Name: "acme", Owner: "acme", Scope: octopodsv1alpha1.KeyScope{Type: "workspace", Workspace: "acme"},
				PublishedKeys: []octopodsv1alpha1.PublishedKey{{KeyID: d.ID(), Digest: d.String()}}}},
		}
		err = k8sClient.Create(ctx, forged)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("only the octopods-operator manager"))
		list := &octopodsv1alpha1.KeyDigestSliceList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		i := slices.IndexFunc(list.Items, func(s octopodsv1alpha1.KeyDigestSlice) bool { return len(s.Keys) > 0 })
		Expect(i).NotTo(Equal(-1), "the manager's own slice of keys")
		edited := list.Items[i].DeepCopy()
		edited.Keys[0].PublishedKeys = append(edited.Keys[0].PublishedKeys[:1], octopodsv1alpha1.PublishedKey{KeyID: d.ID(), Digest: d.String(), ValidUntil: &metav1.Time{Time: time.Now().Add(time.Hour)}})
		err = k8sClient.Update(ctx, edited)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		err = proxy.Create(ctx, forged)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)

		// A forged withdrawal slice would refuse a live key: refused too.
		real := string(secretOf(Default, ns, "acme").Data["api-key"])
		live := apikey.DigestOf(real)
		withdrawal := &octopodsv1alpha1.KeyDigestSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: octopodsv1alpha1.SliceWithdrawnName,
				Labels: map[string]string{octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleWithdrawn}},
			WithdrawnKeys: []octopodsv1alpha1.RevokedDigest{{KeyID: live.ID(), Digest: live.String(), RevokedAt: metav1.Now()}},
		}
		err = k8sClient.Create(ctx, withdrawal)
		if apierrors.IsAlreadyExists(err) { // the manager's own, after a rotation here
			held := &octopodsv1alpha1.KeyDigestSlice{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(withdrawal), held)).To(Succeed())
			held.WithdrawnKeys = append(held.WithdrawnKeys, withdrawal.WithdrawnKeys...)
			err = k8sClient.Update(ctx, held)
		}
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		Expect(status(real)).To(Equal(http.StatusOK))
	})

	It("admits no hand-made Secret, however it is labelled, nor a copy of a real key in another Secret", func() {
		forged, err := apikey.Generate()
		Expect(err).NotTo(HaveOccurred())
		real := string(secretOf(Default, ns, "acme").Data["api-key"])
		for name, key := range map[string]string{"forged-api-key": forged, "copy-api-key": real} {
			Expect(k8sClient.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
					Labels:      map[string]string{octopodsv1alpha1.WorkspaceLabel: "globex", octopodsv1alpha1.ManagedByLabel: octopodsv1alpha1.ManagedByValue},
					Annotations: map[string]string{octopodsv1alpha1.KeyIDAnnotation: apikey.ID(key)}},
				Type: octopodsv1alpha1.SecretType,
				Data: map[string][]byte{"api-key": []byte(key)},
			})).To(Succeed())
		}
		Eventually(func() int { return status(real) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		Consistently(func() int { return status(forged) }, 2*time.Second, 100*time.Millisecond).Should(Equal(http.StatusUnauthorized))
		_, seen, _ := call(real)
		Expect(seen.Headers.Get("X-Octopods-Workspace")).To(Equal("acme"), "the copy names no other workspace")

		// The copy does not outlive the original's rotation.
		rotate(ns, "acme", "LEAK-1")
		Eventually(func() int { return status(real) }, issueTimeout, pollEvery).Should(Equal(http.StatusBadRequest), "DEPRECATED_API_KEY")
	})

	DescribeTable("lets only the manager change publishedKeys",
		func(who func() client.Client, forbiddenBy string) {
			k := keyOf(Default, ns, "acme")
			patch := client.MergeFrom(k.DeepCopy())
			forged, err := apikey.Generate()
			Expect(err).NotTo(HaveOccurred())
			d := apikey.DigestOf(forged)
			k.Status.PublishedKeys = append(k.Status.PublishedKeys, octopodsv1alpha1.PublishedKey{KeyID: d.ID(), Digest: d.String(), ValidUntil: &metav1.Time{Time: time.Now().Add(time.Hour)}})
			err = who().Status().Patch(ctx, k, patch)
			Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(forbiddenBy))
			Expect(status(forged)).To(Equal(http.StatusUnauthorized))
		},
		Entry("the auth proxy (its role may patch status)", func() client.Client { return proxy }, "only the octopods-operator manager"),
		Entry("someone granted status patch by a custom role", func() client.Client {
			Expect(k8sClient.Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: "status-writer-" + ns},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"octopods.io"}, Resources: []string{"workspaceapikeys/status"}, Verbs: []string{"get", "patch"}}},
			})).To(Succeed())
			return as(ns, "status-writer@acme.example", "status-writer-"+ns)
		}, "only the octopods-operator manager"),
		Entry("an editor", func() client.Client { return as(ns, "editor-publish@acme.example", "workspace-editor") }, "forbidden"),
		// Any rule with verbs ["*"] grants every custom verb: the policy
		// names the manager's ServiceAccount instead of asking for one.
		Entry("a namespace admin with a wildcard Role", func() client.Client {
			Expect(k8sClient.Create(ctx, &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everything"},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}},
			})).To(Succeed())
			Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ns-admin"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "everything"},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "ns-admin@acme.example"}},
			})).To(Succeed())
			return withRBAC(impersonating("ns-admin@acme.example"), ns)
		}, "only the octopods-operator manager"),
		Entry("a cluster admin by a wildcard ClusterRole", func() client.Client {
			Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "wildcard-admin-" + ns},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "wildcard-admin@acme.example"}},
			})).To(Succeed())
			return withRBAC(impersonating("wildcard-admin@acme.example"), ns)
		}, "only the octopods-operator manager"),
		Entry("a rotator", func() client.Client { return as(ns, "rotator-publish@acme.example", "key-rotator") }, "forbidden"),
	)

	It("lets nobody but the manager make the proxy forget a revoked key", func() {
		Eventually(func(g Gomega) { g.Expect(keyOf(g, ns, "acme").Status.RevokedKeys).NotTo(BeEmpty()) }, issueTimeout, pollEvery).Should(Succeed())
		k := keyOf(Default, ns, "acme")
		patch := client.MergeFrom(k.DeepCopy())
		k.Status.RevokedKeys = nil
		err := proxy.Status().Patch(ctx, k, patch)
		Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("only the octopods-operator manager"))
	})

	It("repairs a usage time in the future written with the proxy's identity, and lets only the manager remove one", func() {
		k := keyOf(Default, ns, "acme")
		patch := client.MergeFrom(k.DeepCopy())
		forged := metav1.NewTime(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
		k.Status.LastUsedTime = &forged
		Expect(proxy.Status().Patch(ctx, k, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(keyOf(g, ns, "acme").Status.LastUsedTime).To(BeNil())
		}, issueTimeout, pollEvery).Should(Succeed())

		k = keyOf(Default, ns, "acme")
		patch = client.MergeFrom(k.DeepCopy())
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		k.Status.LastUsedTime = &now
		Expect(proxy.Status().Patch(ctx, k, patch)).To(Succeed(), "a real use is recorded after the repair")
		k = keyOf(Default, ns, "acme")
		patch = client.MergeFrom(k.DeepCopy())
		k.Status.LastUsedTime = nil
		err := proxy.Status().Patch(ctx, k, patch)
		Expect(err).To(MatchError(ContainSubstring("only the octopods-operator manager may remove")))
	})

	It("lets the proxy record lastUsedTime", func() {
		k := keyOf(Default, ns, "acme")
		patch := client.MergeFrom(k.DeepCopy())
		later := metav1.NewTime(time.Now().Add(time.Minute).Truncate(time.Second))
		k.Status.LastUsedTime = &later
		Expect(proxy.Status().Patch(ctx, k, patch)).To(Succeed())
	})
})
