//go:build e2e

package e2e

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// Serial: it counts every write the API server receives meanwhile.
var _ = Describe("Write amplification, as installed (webhooks on)", Serial, func() {
	It("issues 300 keys with at most 4.1 writes each, all included (the KeyDigestSlices batched among them)", func() {
		const n, workers = 300, 16
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("ws-%03d", i)
		}
		time.Sleep(2 * flushInterval) // the proxy's pending uses of earlier specs land first
		baseNS := newNamespace()
		started := time.Now()
		testutil.Parallel(n, workers, func(i int) {
			Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: baseNS, Name: names[i]}, StringData: map[string]string{"k": "v"}})).To(Succeed())
		})
		baseline := time.Since(started)

		ns := newNamespace()
		before, err := testutil.APIServerWrites(ctx, env.Config)
		Expect(err).NotTo(HaveOccurred())
		started = time.Now()
		testutil.Parallel(n, workers, func(i int) {
			Expect(k8sClient.Create(ctx, testutil.Workspace(ns, names[i]))).To(Succeed())
			Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, names[i]))).To(Succeed())
		})
		created := time.Since(started) // the user's own requests, through the webhooks
		Eventually(func(g Gomega) {
			keys := &octopodsv1alpha1.WorkspaceAPIKeyList{}
			g.Expect(k8sClient.List(ctx, keys, client.InNamespace(ns))).To(Succeed())
			ready := 0
			for _, k := range keys.Items {
				if meta.IsStatusConditionTrue(k.Status.Conditions, "Ready") {
					ready++
				}
			}
			g.Expect(ready).To(Equal(n))
		}, 3*time.Minute, 200*time.Millisecond).Should(Succeed())
		issued := time.Since(started)
		Eventually(func(g Gomega) { // and the settings table of every Workspace
			list := &octopodsv1alpha1.WorkspaceList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			for _, ws := range list.Items {
				g.Expect(meta.IsStatusConditionTrue(ws.Status.Conditions, "Ready")).To(BeTrue(), ws.Name)
			}
		}, time.Minute, 200*time.Millisecond).Should(Succeed())
		time.Sleep(time.Second) // the last events land

		after, err := testutil.APIServerWrites(ctx, env.Config)
		Expect(err).NotTo(HaveOccurred())
		writes := after.Minus(before)
		writes["POST workspaces"] -= n // the test's own creates
		writes["POST workspaceapikeys"] -= n
		delete(writes, "PUT leases") // leader election, not per key
		perKey := float64(writes.Total()) / n
		figure("writes to issue %d keys with webhooks, from the API server's request metrics: %d, %.2f per key (%s); first wave: ~8", n, writes.Total(), perKey, writes)
		figure("300 plain Secrets: %s; 300 keys issued: %s (%.1fx), of which creating the 300 Workspaces and 300 WorkspaceAPIKeys through the webhooks: %s",
			baseline.Round(time.Millisecond), issued.Round(time.Millisecond), issued.Seconds()/baseline.Seconds(), created.Round(time.Millisecond))
		Expect(perKey).To(BeNumerically("<=", 4.1), "writes per issued key: %s", writes)
	})

	It("issues channel and WhatsApp Business keys with no more writes than a workspace key", func() {
		const n, workers = 100, 16
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		time.Sleep(2 * flushInterval) // earlier specs' pending writes land first
		before, err := testutil.APIServerWrites(ctx, env.Config)
		Expect(err).NotTo(HaveOccurred())
		testutil.Parallel(n, workers, func(i int) {
			name := fmt.Sprintf("owner-%03d", i)
			if i%2 == 0 {
				Expect(k8sClient.Create(ctx, testutil.Channel(ns, name, "acme", octopodsv1alpha1.ChannelSMS))).To(Succeed())
				Expect(k8sClient.Create(ctx, &octopodsv1alpha1.ChannelAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
				return
			}
			Expect(k8sClient.Create(ctx, testutil.WhatsAppBusinessAccount(ns, name, "acme"))).To(Succeed())
			Expect(k8sClient.Create(ctx, &octopodsv1alpha1.WhatsAppAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
		})
		Eventually(func(g Gomega) {
			ready := 0
			for _, list := range []client.ObjectList{&octopodsv1alpha1.ChannelAPIKeyList{}, &octopodsv1alpha1.WhatsAppAPIKeyList{}} {
				g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
				items, _ := meta.ExtractList(list)
				for _, item := range items {
					if meta.IsStatusConditionTrue(item.(octopodsv1alpha1.KeyObject).KeyStatus().Conditions, "Ready") {
						ready++
					}
				}
			}
			g.Expect(ready).To(Equal(n))
		}, 3*time.Minute, 200*time.Millisecond).Should(Succeed())
		time.Sleep(time.Second) // the last events land
		after, err := testutil.APIServerWrites(ctx, env.Config)
		Expect(err).NotTo(HaveOccurred())
		writes := after.Minus(before)
		for _, r := range []string{"channels", "channelapikeys", "whatsappbusinessaccounts", "whatsappapikeys"} {
			writes["POST "+r] -= n / 2 // the test's own creates
		}
		delete(writes, "PUT leases")
		perKey := float64(writes.Total()) / n
		figure("writes to issue %d channel and WhatsApp Business keys with webhooks: %d, %.2f per key (%s); a workspace key's: 4 (its Workspace's status is the fourth)", n, writes.Total(), perKey, writes)
		Expect(perKey).To(BeNumerically("<=", 4.1), "writes per issued key: %s", writes)
	})
})
