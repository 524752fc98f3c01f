package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// published returns the digests a key publishes.
func published(k *octopodsv1alpha1.WorkspaceAPIKey) []string {
	var out []string
	for _, p := range k.Status.PublishedKeys {
		out = append(out, p.Digest)
	}
	return out
}

func digest(key string) string { return apikey.DigestOf(key).String() }

// slicedDigests are the digests the namespace's KeyDigestSlices admit for
// the key object (kind, name), as the API server holds them now, in one
// list (testutil.AdmittedDigests): digest → slice.
func slicedDigests(ns, kind, name string) map[string]string {
	slices := &octopodsv1alpha1.KeyDigestSliceList{}
	Expect(k8sClient.List(context.Background(), slices, client.InNamespace(ns))).To(Succeed())
	return testutil.AdmittedDigests(slices.Items, kind, name)
}

// Serial: it replaces the suite's manager with one that checks, at the
// instant of every Secret write, that nothing published is missing from it.
var _ = Describe("Published keys", Serial, func() {
	var (
		ns         string
		mu         sync.Mutex
		violations []string
		writes     int
		crashOn    string // rotation token whose Secret write kills the manager
		crashed    chan struct{}
		crash      context.CancelFunc
		stopHere   func()
	)
	startChecking := func() {
		var crashCtx context.Context
		crashCtx, crash = context.WithCancel(context.Background())
		crashed = make(chan struct{})
		var once sync.Once
		stopHere = startManagerWithContext(crashCtx, Options{MaxConcurrentReconciles: 4, sliceDelay: 300 * time.Millisecond, wrapClient: afterSecretWrites(func(_ context.Context, s *corev1.Secret) bool {
			if s.Namespace != ns {
				return false
			}
			k := &octopodsv1alpha1.WorkspaceAPIKey{}
			Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: s.Labels[octopodsv1alpha1.WorkspaceLabel]}, k)).To(Succeed())
			// The Secret as this write stored it (the API server's answer),
			// not a read after it: the spec itself writes the Secret (a
			// planted key) as soon as it sees a write land, and a read here
			// could judge the slices against the spec's write, not ours.
			held := map[string]bool{}
			for _, v := range s.Data {
				held[digest(string(v))] = true
			}
			sliced := slicedDigests(ns, octopodsv1alpha1.WorkspaceKey.Kind, k.Name)
			mu.Lock()
			defer mu.Unlock()
			writes++
			for _, d := range published(k) {
				if !held[d] {
					violations = append(violations, fmt.Sprintf("after Secret write %d, %s published but not in the Secret", writes, d[:19]))
				}
			}
			for d, slice := range sliced {
				if !held[d] {
					violations = append(violations, fmt.Sprintf("after Secret write %d, %s in KeyDigestSlice %s but not in the Secret", writes, d[:19], slice))
				}
			}
			if crashOn != "" && s.Annotations[octopodsv1alpha1.RotationTokenAnnotation] == crashOn {
				once.Do(func() { crash(); close(crashed) })
				return true
			}
			return false
		})})
	}
	BeforeEach(func() {
		ns, violations, writes, crashOn = newNamespace(), nil, 0, ""
		stopManager()
		startChecking()
		DeferCleanup(func() {
			stopHere()
			stopManager = startManager(Options{MaxConcurrentReconciles: 4})
		})
	})

	It("publishes only keys the Secret holds, at every Secret write: issue, rotations with and without grace, expiry, re-issue, revocation", func() {
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		first := waitForIssuedKey(ns, "acme")
		Eventually(func(g Gomega) { g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(first)})) }).Should(Succeed())
		// The slices follow: what the check at each write reads is written.
		Eventually(func(g Gomega) {
			g.Expect(slicedDigests(ns, octopodsv1alpha1.WorkspaceKey.Kind, "acme")).To(HaveKey(digest(first)))
		}).Should(Succeed())

		rotate(ns, "acme", "LEAK-1") // grace 0s: unpublish, write, publish
		var second string
		Eventually(func(g Gomega) {
			second = keyIn(getSecret(g, ns, "acme-api-key"))
			g.Expect(second).NotTo(Equal(first))
			g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(second)}))
		}).Should(Succeed())

		updateKey(ns, "acme", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: 2 * time.Second}
		})
		rotate(ns, "acme", "PLANNED-2")
		var third string
		Eventually(func(g Gomega) {
			third = keyIn(getSecret(g, ns, "acme-api-key"))
			g.Expect(third).NotTo(Equal(second))
			k := getKey(g, ns, "acme")
			g.Expect(published(k)).To(Equal([]string{digest(third), digest(second)}))
			g.Expect(k.Status.PublishedKeys[1].ValidUntil).NotTo(BeNil())
			g.Expect(k.Status.PublishedKeys[1].KeyID).To(Equal(apikey.ID(second)))
		}).Should(Succeed())
		Eventually(func(g Gomega) { // the grace period ends: unpublish, then remove
			g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(third)}))
			g.Expect(getSecret(g, ns, "acme-api-key").Data).NotTo(HaveKey(octopodsv1alpha1.SecretKeyPreviousAPIKey))
		}).Should(Succeed())

		planted := plantKey(ns, octopodsv1alpha1.SecretKeyAPIKey)
		Eventually(func(g Gomega) {
			fourth := keyIn(getSecret(g, ns, "acme-api-key"))
			g.Expect(fourth).NotTo(BeElementOf(third, planted))
			g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(fourth)}), "a planted key is never published")
		}).Should(Succeed())

		Expect(k8sClient.Delete(ctx, getWorkspace(Default, ns, "acme"))).To(Succeed())
		Eventually(func(g Gomega) {
			isNotFound(g, &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme"}})
		}).Should(Succeed())

		mu.Lock()
		defer mu.Unlock()
		Expect(writes).To(BeNumerically(">=", 5))
		Expect(violations).To(BeEmpty())
	})

	It("fails closed when the manager dies between a grace-0 Secret write and the publish, and re-publishes from the Secret after a restart", func() {
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		leaked := waitForIssuedKey(ns, "acme")
		Eventually(func(g Gomega) { g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(leaked)})) }).Should(Succeed())
		mu.Lock()
		crashOn = "LEAK-9"
		mu.Unlock()
		rotate(ns, "acme", "LEAK-9")
		Eventually(crashed).Should(BeClosed())
		stopHere()

		replaced := keyIn(getSecret(Default, ns, "acme-api-key"))
		Expect(replaced).NotTo(Equal(leaked))
		Expect(published(getKey(Default, ns, "acme"))).To(BeEmpty(), "neither the leaked key nor the unpublished new one")

		startChecking()
		Eventually(func(g Gomega) {
			g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(replaced)}))
		}).Should(Succeed())
		Expect(keyIn(getSecret(Default, ns, "acme-api-key"))).To(Equal(replaced), "the restart rotated nothing")
		mu.Lock()
		defer mu.Unlock()
		Expect(violations).To(BeEmpty())
	})
})

var _ = Describe("What is never published", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
	})

	It("drops a previous-api-key added by hand, whatever its validity says, and never publishes it", func() {
		current := waitForIssuedKey(ns, "acme")
		planted, err := apikey.Generate()
		Expect(err).NotTo(HaveOccurred())
		remember(planted)
		s := getSecret(Default, ns, "acme-api-key")
		s.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey] = []byte(planted)
		s.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation] = "2099-01-01T00:00:00Z"
		s.Annotations[octopodsv1alpha1.PreviousKeyIDAnnotation] = apikey.ID(planted)
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(s.Data).NotTo(HaveKey(octopodsv1alpha1.SecretKeyPreviousAPIKey))
			g.Expect(keyIn(s)).To(Equal(current), "the current key is kept")
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Warning/" + EventUntrustedKeyRemoved)))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(current)}))
		}).Should(Succeed())
	})

	It("unpublishes at once a Secret held in Terminating by someone's finalizer, then issues anew when it is gone", func() {
		held := waitForIssuedKey(ns, "acme")
		s := getSecret(Default, ns, "acme-api-key")
		s.Finalizers = append(s.Finalizers, "example.com/hold")
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Expect(k8sClient.Delete(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			k := getKey(g, ns, "acme")
			g.Expect(published(k)).To(BeEmpty())
			g.Expect(readyCondition(k).Reason).To(Equal(ReasonSecretDeleting))
		}).Should(Succeed())

		s = getSecret(Default, ns, "acme-api-key")
		s.Finalizers = nil
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			fresh := keyIn(getSecret(g, ns, "acme-api-key"))
			g.Expect(fresh).NotTo(Equal(held))
			g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(fresh)}))
		}).Should(Succeed())
	})

	It("rotates nothing when an older token is re-applied (GitOps revert), and makes one key for a hand edit plus a new token", func() {
		waitForIssuedKey(ns, "acme")
		rotate(ns, "acme", "T1")
		var afterT1 string
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(s.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.RotationTokenAnnotation, "T1"))
			afterT1 = keyIn(s)
		}).Should(Succeed())
		rotate(ns, "acme", "T2")
		var afterT2 string
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(s.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.RotationTokenAnnotation, "T2"))
			afterT2 = keyIn(s)
		}).Should(Succeed())
		Expect(afterT2).NotTo(Equal(afterT1))
		rotate(ns, "acme", "T1") // Argo CD self-heals to the older manifest
		Consistently(func(g Gomega) {
			g.Expect(keyIn(getSecret(g, ns, "acme-api-key"))).To(Equal(afterT2))
		}).Should(Succeed())

		// A hand edit and a new token at once: one new key, one event.
		planted := plantKey(ns, octopodsv1alpha1.SecretKeyAPIKey)
		rotate(ns, "acme", "T3")
		var final string
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(s.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.RotationTokenAnnotation, "T3"))
			final = keyIn(s)
			g.Expect(final).NotTo(BeElementOf(afterT2, planted))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(keyIn(getSecret(g, ns, "acme-api-key"))).To(Equal(final))
		}).Should(Succeed())
		reissues := 0
		for _, e := range eventsFor(Default, ns, "acme") {
			if len(e) > 0 && (e[:len("Warning/"+EventKeyReissued)] == "Warning/"+EventKeyReissued) {
				reissues++
			}
		}
		Expect(reissues).To(Equal(1))
	})
})

var _ = Describe("The trimmed Secret cache", func() {
	It("never writes a Secret back from it: data and metadata others added survive a template change", func() {
		ns := newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		key := waitForIssuedKey(ns, "acme")
		s := getSecret(Default, ns, "acme-api-key")
		s.Data["note"] = []byte("added by someone")
		s.Annotations["someone/else"] = "kept"
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		updateKey(ns, "acme", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{Labels: map[string]string{"team": "support"}}
		})
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(s.Labels).To(HaveKeyWithValue("team", "support"))
			g.Expect(s.Data).To(HaveKeyWithValue("note", []byte("added by someone")))
			g.Expect(s.Annotations).To(HaveKeyWithValue("someone/else", "kept"))
			g.Expect(keyIn(s)).To(Equal(key))
		}).Should(Succeed())
	})
})

var _ = Describe("A hand-edited key-id annotation", func() {
	It("is set back, and the working key kept", func() {
		ns := newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		key := waitForIssuedKey(ns, "acme")
		Eventually(func(g Gomega) { g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(key)})) }).Should(Succeed())
		s := getSecret(Default, ns, "acme-api-key")
		s.Annotations[octopodsv1alpha1.KeyIDAnnotation] = "0123456789ab"
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(s.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.KeyIDAnnotation, apikey.ID(key)))
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Normal/" + EventKeyIDRepaired)))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(keyIn(getSecret(g, ns, "acme-api-key"))).To(Equal(key))
		}).Should(Succeed())
		Expect(eventsFor(Default, ns, "acme")).NotTo(ContainElement(HavePrefix("Warning/" + EventKeyReissued)))
	})
})

var _ = Describe("Template metadata the API server refuses", func() {
	It("never keeps a key from being issued or rotated, and says so on Ready", func() {
		ns := newNamespace()
		k := testutil.APIKey(ns, "acme")
		// A label value the CRD schema cannot check (it is a map value).
		k.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{Labels: map[string]string{"team": "support & sales"}}
		create(testutil.Workspace(ns, "acme"), k)
		first := waitForSecretKey(ns)
		Eventually(func(g Gomega) {
			c := readyCondition(getKey(g, ns, "acme"))
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(ReasonSecretWriteFailed))
			g.Expect(c.Message).To(ContainSubstring("spec.secretTemplate could not be applied"))
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Warning/" + ReasonSecretWriteFailed)))
		}).Should(Succeed())

		rotate(ns, "acme", "LEAK-42")
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(keyIn(s)).NotTo(Equal(first))
			g.Expect(s.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.RotationTokenAnnotation, "LEAK-42"))
			g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(keyIn(s))}), "the leaked key is no longer admitted")
		}).Should(Succeed())

		updateKey(ns, "acme", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Spec.SecretTemplate.Labels["team"] = "support"
		})
		Eventually(func(g Gomega) {
			g.Expect(getSecret(g, ns, "acme-api-key").Labels).To(HaveKeyWithValue("team", "support"))
			g.Expect(readyCondition(getKey(g, ns, "acme")).Status).To(Equal(metav1.ConditionTrue))
		}).Should(Succeed())
	})
})

// waitForSecretKey waits for the acme key Secret to hold a key, whatever the
// key's Ready condition says, and returns the key.
func waitForSecretKey(ns string) string {
	var key string
	EventuallyWithOffset(1, func(g Gomega) {
		key = keyIn(getSecret(g, ns, "acme-api-key"))
		g.Expect(apikey.Validate(key)).To(Succeed())
	}).Should(Succeed())
	remember(key)
	return key
}

// fakeClock is a clock a spec moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Serial: it replaces the suite's manager with one on a fake clock.
var _ = Describe("Scheduled rotation", Serial, func() {
	It("rotates once per interval, never twice, across a manager restart", func() {
		clock, restart := onFakeClock()
		ns := newNamespace()
		k := testutil.APIKey(ns, "acme")
		k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Duration: time.Hour}
		create(testutil.Workspace(ns, "acme"), k)
		first := waitForIssuedKey(ns, "acme")
		issued := clock.Now()
		Eventually(func(g Gomega) {
			st := getKey(g, ns, "acme").Status
			g.Expect(st.NextRotationAt).NotTo(BeNil())
			g.Expect(st.NextRotationAt.Time).To(BeTemporally("==", issued.Add(time.Hour)))
		}).Should(Succeed())

		poke := func(n int) { annotate(ns, "acme", map[string]string{"poke": fmt.Sprint(n)}) }
		clock.Add(59 * time.Minute)
		poke(1)
		Consistently(func(g Gomega) { g.Expect(keyIn(getSecret(g, ns, "acme-api-key"))).To(Equal(first)) }).Should(Succeed())

		clock.Add(2 * time.Minute) // due
		poke(2)
		var second string
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			second = keyIn(s)
			g.Expect(second).NotTo(Equal(first))
			g.Expect(s.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.RotationTokenAnnotation, "scheduled-"+issued.Add(time.Hour).UTC().Format(time.RFC3339)))
			g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(second)}))
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(ContainSubstring("on schedule (every 1h0m0s")))
		}).Should(Succeed())
		remember(second)
		poke(3)
		Consistently(func(g Gomega) { g.Expect(keyIn(getSecret(g, ns, "acme-api-key"))).To(Equal(second)) }).Should(Succeed())

		// A restart rotates nothing more.
		restart()
		poke(4)
		Consistently(func(g Gomega) { g.Expect(keyIn(getSecret(g, ns, "acme-api-key"))).To(Equal(second)) }).Should(Succeed())

		// The next interval, counted from the new key's issue time.
		clock.Add(time.Hour)
		poke(5)
		Eventually(func(g Gomega) {
			third := keyIn(getSecret(g, ns, "acme-api-key"))
			g.Expect(third).NotTo(BeElementOf(first, second))
			remember(third)
		}).Should(Succeed())
	})
})

var _ = Describe("Cutting a grace period short", func() {
	It("unpublishes and removes the previous key at once for a new revoke-previous token, each token once", func() {
		ns := newNamespace()
		k := testutil.APIKey(ns, "acme")
		k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: time.Hour}
		create(testutil.Workspace(ns, "acme"), k)
		old := waitForIssuedKey(ns, "acme")
		rotate(ns, "acme", "PLANNED-1")
		Eventually(func(g Gomega) {
			g.Expect(published(getKey(g, ns, "acme"))).To(ContainElement(digest(old)))
		}).Should(Succeed())

		annotate(ns, "acme", map[string]string{octopodsv1alpha1.RevokePreviousAnnotation: "LEAK-2"})
		var current string
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			current = keyIn(s)
			g.Expect(s.Data).NotTo(HaveKey(octopodsv1alpha1.SecretKeyPreviousAPIKey))
			g.Expect(published(getKey(g, ns, "acme"))).To(Equal([]string{digest(current)}))
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Normal/" + EventPreviousKeyRevoked)))
		}).Should(Succeed())

		// The same token re-applied never cuts the next grace period short.
		rotate(ns, "acme", "PLANNED-2")
		Eventually(func(g Gomega) {
			g.Expect(published(getKey(g, ns, "acme"))).To(ContainElement(digest(current)))
		}).Should(Succeed())
		annotate(ns, "acme", map[string]string{"resync": "1", octopodsv1alpha1.RevokePreviousAnnotation: "LEAK-2"})
		Consistently(func(g Gomega) {
			g.Expect(published(getKey(g, ns, "acme"))).To(ContainElement(digest(current)))
		}).Should(Succeed())
	})
})
