//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// applyYAML server-side applies every object of a multi-document YAML, as a
// dry run if asked (a Namespace is always created for real: what follows is
// namespaced in it), and returns what it applied and what skip left out.
func applyYAML(data []byte, dryRun bool, skip func(schema.GroupVersionKind) bool) (applied, skipped []string) {
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())

	decoder := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := decoder.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return applied, skipped
		}
		Expect(err).NotTo(HaveOccurred())
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		if skip(gvk) {
			skipped = append(skipped, gvk.Kind+"/"+obj.GetName())
			continue
		}
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		Expect(err).NotTo(HaveOccurred(), "%s is not served", gvk)
		var res dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			res = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		}
		opts := metav1.ApplyOptions{FieldManager: "octopods-e2e", Force: true}
		if dryRun && gvk.Kind != "Namespace" {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err = res.Apply(ctx, obj.GetName(), obj, opts)
		Expect(err).NotTo(HaveOccurred(), "%s %s", gvk.Kind, obj.GetName())
		applied = append(applied, gvk.Kind+"/"+obj.GetName())
	}
}

var _ = Describe("Deployment manifests", func() {
	It("render with kustomize and pass a server-side dry-run apply", func() {
		kustomize := os.Getenv("KUSTOMIZE")
		Expect(kustomize).NotTo(BeEmpty(), "KUSTOMIZE names the pinned kustomize binary; make test-e2e sets it")
		out, err := exec.Command(kustomize, "build", filepath.Join(root, "config", "default")).Output()
		Expect(err).NotTo(HaveOccurred())

		applied, skipped := applyYAML(out, true, func(gvk schema.GroupVersionKind) bool {
			return gvk.Group == "cert-manager.io" // cert-manager's CRDs are not in a bare control plane
		})
		Expect(applied).To(ContainElements("Deployment/octopods-controller-manager", "Deployment/octopods-auth-proxy",
			"ClusterRole/octopods-workspace-editor", "ClusterRole/octopods-workspace-viewer", "ClusterRole/octopods-key-rotator",
			"ValidatingWebhookConfiguration/octopods-validating-webhook-configuration",
			"ValidatingAdmissionPolicy/octopods-workspaceapikey-spec-needs-update"))
		Expect(skipped).To(ConsistOf("Issuer/octopods-selfsigned-issuer", "Certificate/octopods-serving-cert", "Certificate/octopods-metrics-certs"))

		samples, err := os.ReadFile(filepath.Join(root, "config", "samples", "networkpolicy.yaml"))
		Expect(err).NotTo(HaveOccurred())
		applied, _ = applyYAML(samples, true, func(schema.GroupVersionKind) bool { return false })
		Expect(applied).To(ConsistOf("NetworkPolicy/octopods-controller-manager", "NetworkPolicy/octopods-auth-proxy"))
	})

	It("undeploy removes the operator but never the CRDs (and with them every key) nor its namespace", func() {
		out, err := exec.Command(os.Getenv("KUSTOMIZE"), "build", filepath.Join(root, "config", "undeploy")).Output()
		Expect(err).NotTo(HaveOccurred())
		Expect(string(out)).NotTo(ContainSubstring("kind: CustomResourceDefinition"))
		Expect(string(out)).NotTo(ContainSubstring("kind: Namespace"))
		Expect(string(out)).To(ContainSubstring("name: octopods-controller-manager"))
		Expect(string(out)).To(ContainSubstring("kind: MutatingWebhookConfiguration"))
	})
})
