package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	octotest "github.com/octopods/octopods-operator/internal/testutil"
)

// keySeries is the value of the per-key series family for ns/name, and
// whether it exists.
func keySeries(g Gomega, family, ns, name string) (float64, bool) {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != family {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "namespace") == ns && label(m, "name") == name {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

var _ = Describe("Key metrics", func() {
	It("follow each key from its informer's events: ready or not, next rotation, gone with the key", func() {
		ns := newNamespace()
		k := octotest.APIKey(ns, "acme")
		k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Duration: 720 * 3600e9}
		create(octotest.Workspace(ns, "acme"), k, octotest.Workspace(ns, "globex"), octotest.APIKey(ns, "globex"))
		waitForIssuedKey(ns, "acme")
		waitForIssuedKey(ns, "globex")
		Eventually(func(g Gomega) {
			// The usual key: ready, no schedule (nothing held for it).
			ready, found := keySeries(g, "octopods_workspaceapikey_ready", ns, "globex")
			g.Expect(found).To(BeTrue())
			g.Expect(ready).To(Equal(1.0))
			_, found = keySeries(g, "octopods_workspaceapikey_next_rotation_seconds", ns, "globex")
			g.Expect(found).To(BeFalse())
		}).Should(Succeed())
		// A key waiting for its Workspace: not ready.
		create(octotest.APIKey(ns, "initech"))
		Eventually(func(g Gomega) {
			ready, found := keySeries(g, "octopods_workspaceapikey_ready", ns, "initech")
			g.Expect(found).To(BeTrue())
			g.Expect(ready).To(Equal(0.0))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			ready, found := keySeries(g, "octopods_workspaceapikey_ready", ns, k.Name)
			g.Expect(found).To(BeTrue())
			g.Expect(ready).To(Equal(1.0))
			next, found := keySeries(g, "octopods_workspaceapikey_next_rotation_seconds", ns, k.Name)
			g.Expect(found).To(BeTrue())
			g.Expect(next).To(BeNumerically("~", 720*3600, 60))
		}).Should(Succeed())

		Expect(k8sClient.Delete(ctx, &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: k.ObjectMeta})).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), &octopodsv1alpha1.WorkspaceAPIKey{})).NotTo(Succeed())
			_, found := keySeries(g, "octopods_workspaceapikey_ready", ns, k.Name)
			g.Expect(found).To(BeFalse())
			_, found = keySeries(g, "octopods_workspaceapikey_next_rotation_seconds", ns, k.Name)
			g.Expect(found).To(BeFalse())
		}).Should(Succeed())
	})
})
