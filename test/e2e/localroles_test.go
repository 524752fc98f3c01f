//go:build e2e

package e2e

import (
	"os/exec"

	"github.com/octopods/octopods-operator/internal/testutil"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// run-local prints: bind support to octopods-key-rotator, then rotate as
// support with the plugin. The roles are there, named as installed.
var _ = Describe("run-local's people roles", func() {
	It("lets support, bound to octopods-key-rotator as run-local prints, rotate with the plugin and not copy", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		waitIssued(ns, "acme")
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "support"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "octopods-key-rotator"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "support@example.com"}},
		})).To(Succeed())
		plugin := func(args ...string) (string, error) {
			out, err := exec.Command(pluginBin, append(args, "--kubeconfig", env.Kubeconfig, "-n", ns, "--as", "support@example.com")...).CombinedOutput()
			return string(out), err
		}
		out, err := plugin("rotate", "acme")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("Rotated the key of acme"))
		out, err = plugin("copy", "acme")
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring("you may not get secrets"))
	})
})
