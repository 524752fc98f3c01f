package controllers

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// onFakeClock replaces the suite's manager with one on a fake clock for the
// spec, and puts the suite's back after it. restart restarts the fake-clock
// manager, as a crash and a new pod would.
func onFakeClock() (clock *fakeClock, restart func()) {
	clock = &fakeClock{t: time.Now().Truncate(time.Second)}
	stopManager()
	stopHere := startManager(Options{MaxConcurrentReconciles: 4, now: clock.Now})
	DeferCleanup(func() {
		stopHere()
		stopManager = startManager(Options{MaxConcurrentReconciles: 4})
	})
	return clock, func() {
		stopHere()
		stopHere = startManager(Options{MaxConcurrentReconciles: 4, now: clock.Now})
	}
}

// revokedIDs returns the key IDs of status.revokedKeys, newest first.
func revokedIDs(k *octopodsv1alpha1.WorkspaceAPIKey) []string {
	var out []string
	for _, r := range k.Status.RevokedKeys {
		out = append(out, r.KeyID)
	}
	return out
}

// Serial: each spec runs the manager on a fake clock.
var _ = Describe("Revoked keys", Serial, func() {
	It("keeps the last 5 revoked keys, each for 30 days", func() {
		clock, _ := onFakeClock()
		ns := newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme")) // grace 0
		keyIDs := []string{apikey.ID(waitForIssuedKey(ns, "acme"))}
		start := clock.Now()
		for i := 1; i <= 6; i++ {
			clock.Add(24 * time.Hour)
			rotate(ns, "acme", fmt.Sprintf("T%d", i))
			Eventually(func(g Gomega) {
				k := getKey(g, ns, "acme")
				g.Expect(k.Status.LastRotationToken).To(Equal(fmt.Sprintf("T%d", i)))
				g.Expect(k.Status.RevokedKeys).NotTo(BeEmpty())
				g.Expect(k.Status.RevokedKeys[0].KeyID).To(Equal(keyIDs[i-1]), "the key rotated away is revoked first")
				g.Expect(k.Status.RevokedKeys[0].RevokedAt.Time).To(BeTemporally("==", clock.Now()))
				keyIDs = append(keyIDs[:i], k.Status.KeyID)
			}).Should(Succeed())
		}
		Expect(revokedIDs(getKey(Default, ns, "acme"))).To(Equal([]string{keyIDs[5], keyIDs[4], keyIDs[3], keyIDs[2], keyIDs[1]}),
			"five kept, newest first; the first key is forgotten")

		// Keys 1 and 2 were revoked on days 2 and 3: on day 33.5 they are
		// more than 30 days old.
		clock.Add(start.Add(33*24*time.Hour + 12*time.Hour).Sub(clock.Now()))
		annotate(ns, "acme", map[string]string{"poke": "1"})
		Eventually(func(g Gomega) {
			g.Expect(revokedIDs(getKey(g, ns, "acme"))).To(Equal([]string{keyIDs[5], keyIDs[4], keyIDs[3]}))
		}).Should(Succeed())
	})

	It("turns a new lastRevokedKeyUse into one Warning event a minute at most", func() {
		clock, _ := onFakeClock()
		ns := newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		old := apikey.ID(waitForIssuedKey(ns, "acme"))
		sighting := func(at time.Time, from string) {
			k := getKey(Default, ns, "acme")
			patch := client.MergeFrom(k.DeepCopy())
			k.Status.LastRevokedKeyUse = &octopodsv1alpha1.KeyUse{Time: metav1.NewTime(at), KeyID: old, ClientAddress: from}
			Expect(k8sClient.Status().Patch(ctx, k, patch)).To(Succeed())
		}
		presented := func(g Gomega) []string {
			var out []string
			for _, e := range eventsFor(g, ns, "acme") {
				if strings.HasPrefix(e, "Warning/"+EventRevokedKeyPresented+":") {
					out = append(out, e)
				}
			}
			return out
		}
		first := clock.Now().Truncate(time.Second)
		sighting(first, "10.2.3.4")
		Eventually(func(g Gomega) {
			g.Expect(presented(g)).To(ConsistOf(ContainSubstring(fmt.Sprintf("revoked key %s was presented from 10.2.3.4 at %s", old, first.UTC().Format(time.RFC3339)))))
		}).Should(Succeed())

		// A second sighting within the minute waits.
		clock.Add(20 * time.Second)
		sighting(clock.Now(), "10.9.9.9")
		Consistently(func(g Gomega) { g.Expect(presented(g)).To(HaveLen(1)) }).Should(Succeed())

		// A minute after the first event, the latest sighting is reported.
		clock.Add(time.Minute)
		sighting(clock.Now(), "10.7.7.7")
		Eventually(func(g Gomega) {
			g.Expect(presented(g)).To(ContainElement(ContainSubstring("from 10.7.7.7")))
			g.Expect(presented(g)).To(HaveLen(2))
		}).Should(Succeed())

		// An older sighting is refused by the API server: never backwards.
		k := getKey(Default, ns, "acme")
		patch := client.MergeFrom(k.DeepCopy())
		k.Status.LastRevokedKeyUse.Time = metav1.NewTime(first)
		Expect(k8sClient.Status().Patch(ctx, k, patch)).To(MatchError(ContainSubstring("lastRevokedKeyUse never moves backwards")))
	})
	It("removes a usage time set in the future, so that it cannot freeze the record", func() {
		clock, _ := onFakeClock()
		ns := newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		old := apikey.ID(waitForIssuedKey(ns, "acme"))
		k := getKey(Default, ns, "acme")
		patch := client.MergeFrom(k.DeepCopy())
		future := metav1.NewTime(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
		k.Status.LastUsedTime = &future
		k.Status.LastRevokedKeyUse = &octopodsv1alpha1.KeyUse{Time: metav1.NewTime(future.AddDate(-1, 0, 0)), KeyID: old}
		Expect(k8sClient.Status().Patch(ctx, k, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			k := getKey(g, ns, "acme")
			g.Expect(k.Status.LastUsedTime).To(BeNil())
			g.Expect(k.Status.LastRevokedKeyUse).To(BeNil())
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(And(HavePrefix("Warning/"+EventFutureUsageTimeRemoved+":"),
				ContainSubstring("removed status lastRevokedKeyUse, lastUsedTime"))))
		}).Should(Succeed())

		// A real sighting after the repair is recorded and reported.
		k = getKey(Default, ns, "acme")
		patch = client.MergeFrom(k.DeepCopy())
		k.Status.LastRevokedKeyUse = &octopodsv1alpha1.KeyUse{Time: metav1.NewTime(clock.Now().Truncate(time.Second)), KeyID: old, ClientAddress: "10.2.3.4"}
		Expect(k8sClient.Status().Patch(ctx, k, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(ContainSubstring("was presented from 10.2.3.4")))
		}).Should(Succeed())

		// What is recorded as a client address is an IP address.
		k = getKey(Default, ns, "acme")
		patch = client.MergeFrom(k.DeepCopy())
		k.Status.LastRevokedKeyUse.Time = metav1.NewTime(clock.Now().Add(time.Second).Truncate(time.Second))
		k.Status.LastRevokedKeyUse.ClientAddress = "\x1b[2Jcall support"
		Expect(k8sClient.Status().Patch(ctx, k, patch)).To(MatchError(ContainSubstring("clientAddress must be an IP address")))
	})
})
