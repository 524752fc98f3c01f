package controllers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/authproxy"
	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// Serial: it stops the suite's manager to leave the objects as the
// previous release left them, with no slice.
var _ = Describe("An upgrade from a release without KeyDigestSlices", Serial, func() {
	It("builds the slices before a new proxy reports ready, so no key is refused", func() {
		const n = 30
		ns := newNamespace()
		keys := make([]string, n)
		for i := range keys {
			name := fmt.Sprintf("ws-%02d", i)
			create(testutil.Workspace(ns, name), testutil.APIKey(ns, name))
		}
		for i := range keys {
			keys[i] = waitForIssuedKey(ns, fmt.Sprintf("ws-%02d", i))
			Eventually(func(g Gomega) { g.Expect(published(getKey(g, ns, fmt.Sprintf("ws-%02d", i)))).To(HaveLen(1)) }).Should(Succeed())
		}

		// The previous release: its manager wrote statuses, Secrets and
		// nothing else; no slice, no marker.
		stopManager()
		Expect(k8sClient.DeleteAllOf(ctx, &octopodsv1alpha1.KeyDigestSlice{}, client.InNamespace(ns))).To(Succeed())
		Eventually(func(g Gomega) {
			left := &octopodsv1alpha1.KeyDigestSliceList{}
			g.Expect(k8sClient.List(ctx, left, client.InNamespace(ns))).To(Succeed())
			g.Expect(left.Items).To(BeEmpty())
		}).Should(Succeed())

		// The new release rolls out: a proxy replica and the manager start
		// together.
		index := keyindex.New()
		rc, err := authproxy.NewOctopodsRESTClient(restCfg)
		Expect(err).NotTo(HaveOccurred())
		source := authproxy.NewSource(index, authproxy.NewSlicesClient(rc), []string{ns}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		source.Marker = types.NamespacedName{Namespace: ns, Name: octopodsv1alpha1.SlicesBuiltName}
		sctx, stopSource := context.WithCancel(context.Background())
		defer stopSource()
		source.Run(sctx)
		Consistently(source.Synced, 2*time.Second).Should(BeFalse(), "ready with no slice built: every key would be refused")

		stopManager = startManager(Options{MaxConcurrentReconciles: 4, SlicesBuiltNamespace: ns})
		// At every instant the proxy says it is ready, it admits every key.
		Eventually(func(g Gomega) {
			synced := source.Synced()
			refused := 0
			for _, k := range keys {
				if r, _, _ := index.Find(k, time.Now()); r != keyindex.Allowed {
					refused++
				}
			}
			if synced {
				Expect(refused).To(BeZero(), "the proxy reported ready while %d of %d keys were refused", refused, n)
			}
			g.Expect(synced).To(BeTrue())
		}, bulkTimeout, 5*time.Millisecond).Should(Succeed())
		marker := &octopodsv1alpha1.KeyDigestSlice{}
		Expect(k8sClient.Get(ctx, source.Marker, marker)).To(Succeed())
		Expect(marker.Annotations).To(HaveKey(octopodsv1alpha1.SlicesBuiltAtAnnotation))
	})
})
