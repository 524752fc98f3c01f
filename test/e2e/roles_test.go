//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// as returns a client that acts as user, bound in ns to clusterRole.
func as(ns, user, clusterRole string) client.Client {
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	})).To(Succeed())
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// applyPeopleRoles applies the ClusterRoles people are bound to (editor,
// viewer, rotator) and the rotator's policy, as a platform team would.
func applyPeopleRoles() {
	for _, f := range []string{"workspace_editor_role.yaml", "workspace_viewer_role.yaml", "key_rotator_role.yaml", "key_rotator_policy.yaml"} {
		data, err := os.ReadFile(filepath.Join(root, "config", "rbac", f))
		Expect(err).NotTo(HaveOccurred())
		applyYAML(data, false, func(schema.GroupVersionKind) bool { return false })
	}
}

var _ = Describe("The three kinds of people", Ordered, func() {
	var ns string
	var editor, viewer, rotator client.Client

	BeforeAll(func() {
		applyPeopleRoles()
		ns = newNamespace()
		editor = as(ns, "member@acme.example", "workspace-editor")
		viewer = as(ns, "viewer@acme.example", "workspace-viewer")
		rotator = as(ns, "support@octopods.example", "key-rotator")

		// The API server loads a new admission policy asynchronously: wait
		// until it refuses a probe before the specs rely on it.
		probeNS := newNamespace()
		probe := as(probeNS, "probe@octopods.example", "key-rotator")
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(probeNS, "probe"))).To(Succeed())
		Eventually(func() error {
			k := keyOf(Default, probeNS, "probe")
			patch := client.MergeFrom(k.DeepCopy())
			k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: time.Duration(time.Now().UnixNano()%3600) * time.Second}
			return probe.Patch(ctx, k, patch)
		}, issueTimeout, 200*time.Millisecond).Should(MatchError(ContainSubstring("may only rotate")))
	})

	It("lets an editor create a workspace and its key, and copy the key", func() {
		Eventually(func() error { return editor.Create(ctx, testutil.Workspace(ns, "acme")) }, issueTimeout, 100*time.Millisecond).Should(Succeed())
		Expect(editor.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		waitIssued(ns, "acme")
		s := &corev1.Secret{}
		Expect(editor.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme-api-key"}, s)).To(Succeed())
		Expect(string(s.Data["api-key"])).To(HavePrefix("opk_"))
	})

	It("shows a viewer workspaces and key IDs, never a key", func() {
		list := &octopodsv1alpha1.WorkspaceAPIKeyList{}
		Expect(viewer.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Status.KeyID).NotTo(BeEmpty())
		err := viewer.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme-api-key"}, &corev1.Secret{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		k := keyOf(Default, ns, "acme")
		patch := client.MergeFrom(k.DeepCopy())
		k.Annotations = map[string]string{octopodsv1alpha1.RotateAnnotation: "viewer-try"}
		Expect(apierrors.IsForbidden(viewer.Patch(ctx, k, patch))).To(BeTrue())
	})

	It("lets support rotate a key, but not change its spec or read it", func() {
		old := string(secretOf(Default, ns, "acme").Data["api-key"])
		k := keyOf(Default, ns, "acme")
		patch := client.MergeFrom(k.DeepCopy())
		if k.Annotations == nil {
			k.Annotations = map[string]string{}
		}
		k.Annotations[octopodsv1alpha1.RotateAnnotation] = "TICKET-42"
		Expect(rotator.Patch(ctx, k, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(string(secretOf(g, ns, "acme").Data["api-key"])).NotTo(Equal(old))
		}, issueTimeout, pollEvery).Should(Succeed())

		k = keyOf(Default, ns, "acme")
		patch = client.MergeFrom(k.DeepCopy())
		k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: 24 * time.Hour}
		err := rotator.Patch(ctx, k, patch)
		Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("may only rotate"))

		err = rotator.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme-api-key"}, &corev1.Secret{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)

		// A rotation token is bounded and printable, whoever sets it.
		for _, bad := range []string{strings.Repeat("T", 200<<10), "TICKET-43\x1b[2J", " padded "} {
			k = keyOf(Default, ns, "acme")
			patch = client.MergeFrom(k.DeepCopy())
			k.Annotations[octopodsv1alpha1.RotateAnnotation] = bad
			err = rotator.Patch(ctx, k, patch)
			Expect(err).To(MatchError(ContainSubstring("take 1 to 128 printable ASCII characters")), "token %.20q", bad)
		}
	})

	DescribeTable("refuses support any change to a key but the rotate annotation",
		func(change func(k *octopodsv1alpha1.WorkspaceAPIKey)) {
			k := keyOf(Default, ns, "acme")
			patch := client.MergeFrom(k.DeepCopy())
			change(k)
			err := rotator.Patch(ctx, k, patch)
			Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring("may only rotate"))
		},
		Entry("adding a label", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Labels = map[string]string{"team": "support"}
		}),
		Entry("adding another annotation", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Annotations["note"] = "rotated for TICKET-42"
		}),
		Entry("adding another annotation along with a rotation", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Annotations[octopodsv1alpha1.RotateAnnotation] = "TICKET-43"
			k.Annotations["note"] = "rotated for TICKET-43"
		}),
		Entry("removing the revoke finalizer", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Finalizers = nil
		}),
		Entry("removing the owner reference to the Workspace", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.OwnerReferences = nil
		}),
	)

	It("lets support read the events of a key in both event APIs (kubectl describe uses core/v1)", func() {
		Expect(rotator.List(ctx, &corev1.EventList{}, client.InNamespace(ns))).To(Succeed())
		Expect(rotator.List(ctx, &eventsv1.EventList{}, client.InNamespace(ns))).To(Succeed())
	})

	It("lets support cut a grace period short", func() {
		k := keyOf(Default, ns, "acme")
		patch := client.MergeFrom(k.DeepCopy())
		k.Annotations[octopodsv1alpha1.RevokePreviousAnnotation] = "TICKET-42"
		Expect(rotator.Patch(ctx, k, patch)).To(Succeed())
	})

	It("names who asked for a rotation, and lets nobody forge it", func() {
		Eventually(func(g Gomega) {
			k := keyOf(g, ns, "acme")
			g.Expect(k.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.RotateRequestedByAnnotation, "support@octopods.example"))
			g.Expect(k.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.CreatedByAnnotation, "member@acme.example"))
			g.Expect(k.Status.LastRotatedBy).To(Equal("support@octopods.example"))
		}, issueTimeout, pollEvery).Should(Succeed())
		for _, stamp := range []string{octopodsv1alpha1.CreatedByAnnotation, octopodsv1alpha1.RotateRequestedByAnnotation} {
			k := keyOf(Default, ns, "acme")
			patch := client.MergeFrom(k.DeepCopy())
			k.Annotations[stamp] = "someone-else@acme.example"
			err := editor.Patch(ctx, k, patch)
			Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(stamp + " is stamped by the operator"))
		}
	})

	It("still lets an editor change a key's spec", func() {
		Eventually(func() error {
			k := &octopodsv1alpha1.WorkspaceAPIKey{}
			if err := editor.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme"}, k); err != nil {
				return err
			}
			k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: time.Hour}
			return editor.Update(ctx, k)
		}, issueTimeout, 100*time.Millisecond).Should(Succeed())
	})
})
