//go:build e2e

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/octopods/octopods-operator/internal/localenv"
	"github.com/octopods/octopods-operator/internal/testutil"
)

const helmNamespace = "octopods-helm"

// suspend deletes a cluster-scoped object of the local install until the
// spec ends, then creates it again as it was.
func suspend(apiVersion, kind, name string) {
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(apiVersion)
	obj.SetKind(kind)
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, obj)).To(Succeed())
	Expect(k8sClient.Delete(ctx, obj)).To(Succeed())
	DeferCleanup(func() {
		restored := obj.DeepCopy()
		for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"} {
			unstructured.RemoveNestedField(restored.Object, "metadata", f)
		}
		Eventually(func() error { return client.IgnoreAlreadyExists(k8sClient.Create(ctx, restored)) }).Should(Succeed())
	})
}

// releaseArgs are the args of a Deployment of the release, without those
// naming in-cluster paths the local process cannot have.
func releaseArgs(name string, drop ...string) []string {
	d := &appsv1.Deployment{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: helmNamespace, Name: name}, d)).To(Succeed())
	var out []string
next:
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		for _, prefix := range drop {
			if strings.HasPrefix(a, prefix) {
				continue next
			}
		}
		out = append(out, a)
	}
	return out
}

// Serial: the local manager steps aside for the release's.
var _ = Describe("The Helm chart on the local control plane", Serial, func() {
	It("installs and upgrades through the SDK; its manager and proxy, as the release's ServiceAccounts with its flags, issue, rotate and check a key", func() {
		chart, err := loader.Load(root + "/charts/octopods-operator")
		Expect(err).NotTo(HaveOccurred())
		flags := genericclioptions.NewConfigFlags(false)
		kubeconfig, ns := env.Kubeconfig, helmNamespace
		flags.KubeConfig, flags.Namespace = &kubeconfig, &ns
		cfg := &action.Configuration{}
		Expect(cfg.Init(flags, helmNamespace, "secret", func(string, ...any) {})).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: helmNamespace}})).To(Succeed())

		// The local control plane has the CRDs already, and calls the
		// webhooks it registered itself: the release brings neither.
		vals := map[string]any{
			"crds":      map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": false, "certManager": map[string]any{"enabled": false}},
			"authProxy": map[string]any{"upstream": "http://" + env.EchoAddress},
		}
		// One installation per cluster: run-local's people ClusterRoles carry
		// the names the release installs, so they step aside for it.
		for _, role := range []string{"octopods-workspace-editor", "octopods-workspace-viewer", "octopods-key-rotator"} {
			suspend("rbac.authorization.k8s.io/v1", "ClusterRole", role)
		}
		install := action.NewInstall(cfg)
		install.ReleaseName, install.Namespace = "octopods-operator", helmNamespace
		_, err = install.Run(chart, vals)
		Expect(err).NotTo(HaveOccurred())
		vals["authProxy"].(map[string]any)["replicas"] = 3
		upgrade := action.NewUpgrade(cfg)
		upgrade.Namespace = helmNamespace
		_, err = upgrade.Run("octopods-operator", chart, vals)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			_, err := action.NewUninstall(cfg).Run("octopods-operator")
			Expect(err).NotTo(HaveOccurred())
		})

		Expect(env.KillManager()).To(Succeed())
		DeferCleanup(func() { Expect(env.StartManager()).To(Succeed()) })
		// One installation per cluster: the local install's policies name
		// its own manager (octopods-system), the release's name the
		// release's; the local ones step aside with the local manager.
		suspend("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", "workspaceapikey-published-keys")
		suspend("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", "workspaceapikey-spec-needs-update")
		suspend("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", "keydigestslices-manager-only")
		probe := localenv.FreeAddress()
		managerArgs := append(releaseArgs("octopods-controller-manager", "--metrics-cert-dir", "--webhook-cert-dir"),
			"--metrics-bind-address=0", "--health-probe-bind-address="+probe, "--leader-election-namespace="+helmNamespace)
		manager, err := env.RunAs(ctx, "helm-manager", env.ManagerBin, helmNamespace, "octopods-controller-manager", "http://"+probe+"/readyz",
			[]string{"ENABLE_WEBHOOKS=true", "POD_NAMESPACE=" + helmNamespace}, append(managerArgs, env.WebhookServingArgs()...)...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(manager.Stop)

		listen, proxyProbe := localenv.FreeAddress(), localenv.FreeAddress()
		proxyArgs := append(releaseArgs("octopods-auth-proxy"), "--listen-address="+listen, "--health-probe-bind-address="+proxyProbe,
			"--metrics-bind-address="+localenv.FreeAddress(), "--grpc-bind-address="+localenv.FreeAddress(), "--shutdown-delay=0s",
			"--last-used-flush-interval=2s")
		Expect(proxyArgs).To(ContainElement("--upstream=http://" + env.EchoAddress))
		// POD_NAMESPACE is the Deployment's Downward API value, as the kubelet sets it.
		proxy, err := env.RunAs(ctx, "helm-auth-proxy", env.ProxyBin, helmNamespace, "octopods-auth-proxy", "http://"+proxyProbe+"/readyz",
			[]string{"POD_NAMESPACE=" + helmNamespace}, proxyArgs...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(proxy.Stop)
		DeferCleanup(func() {
			// The release's Role lets its proxy count its replicas.
			log, err := os.ReadFile(filepath.Join(env.Dir, "helm-auth-proxy.log"))
			Expect(err).NotTo(HaveOccurred())
			Expect(string(log)).NotTo(ContainSubstring("counting the proxy's ready replicas failed"))
		})

		through := func(key string) int {
			req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/v1/messages", nil)
			req.Header.Set("X-Octopods-Auth", key)
			res, err := httpClient.Do(req)
			if err != nil {
				return 0
			}
			_ = res.Body.Close()
			return res.StatusCode
		}
		keysNS := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(keysNS, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(keysNS, "acme"))).To(Succeed())
		first := waitIssued(keysNS, "acme")
		Eventually(func() int { return through(first) }, issueTimeout, pollEvery).Should(Equal(http.StatusOK))

		rotate(keysNS, "acme", "HELM-1")
		var second string
		Eventually(func(g Gomega) {
			second = string(secretOf(g, keysNS, "acme").Data["api-key"])
			g.Expect(second).NotTo(Equal(first))
		}, issueTimeout, pollEvery).Should(Succeed())
		Eventually(func() int { return through(second) }, issueTimeout, pollEvery).Should(Equal(http.StatusOK))
		Expect(through(first)).To(Equal(http.StatusBadRequest), "DEPRECATED_API_KEY")
		Eventually(func(g Gomega) {
			g.Expect(keyOf(g, keysNS, "acme").Status.LastUsedTime).NotTo(BeNil(), "the release's proxy records use with its own identity")
		}, 10*time.Second, 200*time.Millisecond).Should(Succeed())
	})
})
