package controllers

import (
	"context"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// Serial: it replaces the suite's manager with one that counts reconciles.
var _ = Describe("Status written by the auth proxies", Serial, func() {
	It("wakes no reconcile: 50 usage patches cost the manager nothing", func() {
		ns := newNamespace()
		var reconciles atomic.Int64
		stopManager()
		stopHere := startManager(Options{MaxConcurrentReconciles: 4, wrapClient: func(c client.Client) client.Client {
			// Every key reconcile starts by reading its WorkspaceAPIKey.
			return interceptor.NewClient(watchless{c}, interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if _, ok := obj.(*octopodsv1alpha1.WorkspaceAPIKey); ok && key.Namespace == ns {
						reconciles.Add(1)
					}
					return c.Get(ctx, key, obj, opts...)
				},
			})
		}})
		DeferCleanup(func() {
			stopHere()
			stopManager = startManager(Options{MaxConcurrentReconciles: 4})
		})
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		waitForIssuedKey(ns, "acme")
		var wsVersion string
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, ns, "acme")
			g.Expect(ws.Status.KeyID).NotTo(BeEmpty())
			wsVersion = ws.ResourceVersion
		}).Should(Succeed())
		// Settled: no reconcile for a second (the Workspace's status write
		// just above still wakes the key once, sometimes after this point).
		var before int64
		Eventually(func(g Gomega) {
			n := reconciles.Load()
			time.Sleep(time.Second)
			g.Expect(reconciles.Load()).To(Equal(n), "settled")
			before = n
		}, 10*time.Second).Should(Succeed())

		start := time.Now().Truncate(time.Second)
		for i := range 50 {
			k := getKey(Default, ns, "acme")
			patch := client.MergeFrom(k.DeepCopy())
			used := metav1.NewTime(start.Add(time.Duration(i) * time.Second))
			k.Status.LastUsedTime, k.Status.PreviousKeyLastUsedTime = &used, &used
			k.Status.LastRevokedKeyUse = &octopodsv1alpha1.KeyUse{Time: used, KeyID: "979690f7253f", ClientAddress: "10.2.3.4"}
			Expect(k8sClient.Status().Patch(ctx, k, patch)).To(Succeed())
		}
		Consistently(func() int64 { return reconciles.Load() - before }).Should(BeZero(), "no key reconcile for usage-only status changes")
		Expect(getWorkspace(Default, ns, "acme").ResourceVersion).To(Equal(wsVersion), "nor a Workspace status write")
		figures.Add("usage-only status patches: 50 patches, %d key reconciles (baseline without the predicate: one per patch)", reconciles.Load()-before)

		// Anything else still wakes it.
		rotate(ns, "acme", "AFTER-USAGE")
		Eventually(func() int64 { return reconciles.Load() - before }).Should(BeNumerically(">", 0))
	})
})
