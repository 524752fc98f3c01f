package testutil

import (
	"context"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StoreBehindTheSchema creates obj as if it had been stored before the
// schema refused it: the rules of one spec field are lifted from the CRD
// for the write and put back after, and the schema is seen to refuse a
// copy again (probe) before it returns. The object stays stored as it is.
func StoreBehindTheSchema(ctx context.Context, c client.Client, crdName, specField string, obj, probe client.Object) {
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	gomega.Expect(c.Get(ctx, client.ObjectKey{Name: crdName}, crd)).To(gomega.Succeed())
	original, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	versions, _, _ := unstructured.NestedSlice(crd.DeepCopy().Object, "spec", "versions")
	for _, v := range versions {
		for _, rule := range []string{"x-kubernetes-validations", "maxLength", "pattern", "format"} {
			unstructured.RemoveNestedField(v.(map[string]any), "schema", "openAPIV3Schema", "properties", "spec", "properties", specField, rule)
		}
	}
	setVersions := func(v []any) func() error {
		return func() error {
			if err := c.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
				return err
			}
			if err := unstructured.SetNestedSlice(crd.Object, v, "spec", "versions"); err != nil {
				return err
			}
			return c.Update(ctx, crd)
		}
	}
	gomega.Eventually(setVersions(versions)).Should(gomega.Succeed())
	restore := setVersions(original)
	ginkgo.DeferCleanup(func() { gomega.Eventually(restore).Should(gomega.Succeed()) })
	gomega.Eventually(func() error { return client.IgnoreAlreadyExists(c.Create(ctx, obj.DeepCopyObject().(client.Object))) }).Should(gomega.Succeed())
	gomega.Eventually(restore).Should(gomega.Succeed())
	gomega.Eventually(func(g gomega.Gomega) {
		err := c.Create(ctx, probe.DeepCopyObject().(client.Object))
		g.Expect(apierrors.IsInvalid(err)).To(gomega.BeTrue(), "the schema refuses it again: %v", err)
	}).Should(gomega.Succeed())
}
