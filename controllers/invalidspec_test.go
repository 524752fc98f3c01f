package controllers

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	octotest "github.com/octopods/octopods-operator/internal/testutil"
)

// Go refuses these; the OpenAPI "duration" format took some of them.
var goRefusedDurations = []string{"1 hour", "30d", "1w", "P1D", "PT1H", "1h 30m", "1H", "1y"}

var _ = Describe("Durations the operator cannot read", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	for _, field := range []string{"rotationInterval", "rotationGracePeriod"} {
		DescribeTable("are refused by the API server on create and on update, naming the value and the fix: spec."+field,
			func(value string) {
				set := func(k *octopodsv1alpha1.WorkspaceAPIKey) {
					if field == "rotationInterval" {
						k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Invalid: value}
					} else {
						k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Invalid: value}
					}
				}
				want := fmt.Sprintf("spec.%s: Invalid value: %q: %q is not a duration: use h, m or s", field, value, value)
				k := octotest.APIKey(ns, "acme")
				set(k)
				Expect(k8sClient.Create(ctx, k)).To(MatchError(ContainSubstring(want)))

				k = octotest.APIKey(ns, "acme")
				Expect(k8sClient.Create(ctx, k)).To(Succeed())
				patch := client.MergeFrom(k.DeepCopy())
				set(k)
				Expect(k8sClient.Patch(ctx, k, patch)).To(MatchError(ContainSubstring(want)))
			},
			func(value string) string { return fmt.Sprintf("%q", value) },
			Entry(nil, goRefusedDurations[0]), Entry(nil, goRefusedDurations[1]), Entry(nil, goRefusedDurations[2]),
			Entry(nil, goRefusedDurations[3]), Entry(nil, goRefusedDurations[4]), Entry(nil, goRefusedDurations[5]),
			Entry(nil, goRefusedDurations[6]), Entry(nil, goRefusedDurations[7]),
		)
	}

	DescribeTable("the limits of this wave are refused by the API server naming the field, the value and the fix",
		func(set func(k *octopodsv1alpha1.WorkspaceAPIKey), want string) {
			k := octotest.BareAPIKey(ns, "acme")
			set(k)
			err := k8sClient.Create(ctx, k)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(want))
		},
		Entry("an address without a prefix length", func(k *octopodsv1alpha1.WorkspaceAPIKey) { k.Spec.AllowedSourceRanges = []string{"203.0.113.7"} },
			`spec.allowedSourceRanges[0]: Invalid value: "203.0.113.7": "203.0.113.7" is not a CIDR: write an address and a prefix length, for example 203.0.113.0/24`),
		Entry("a zero rate", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Spec.RateLimit = &octopodsv1alpha1.RateLimit{RequestsPerSecond: 0}
		}, `spec.rateLimit.requestsPerSecond: Invalid value: 0: spec.rateLimit.requestsPerSecond in body should be greater than or equal to 1`),
		Entry("an unknown leak response", func(k *octopodsv1alpha1.WorkspaceAPIKey) { k.Spec.LeakResponse = "Ignore" },
			`spec.leakResponse: Unsupported value: "Ignore": supported values: "Rotate", "Report"`),
	)

	It("stored anyway (by a schema change), stops nothing else: the bad key says why, and keys elsewhere are issued, rotated and revoked", func() {
		bad := storeBehindTheSchema(ns, "acme", "30d")
		Eventually(func(g Gomega) {
			k := getKey(g, ns, bad.Name)
			c := readyCondition(k)
			g.Expect(c.Reason).To(Equal(ReasonInvalidSpec))
			g.Expect(c.Message).To(HavePrefix(`spec.rotationInterval: "30d" is not a duration: use h, m or s, for example 720h for 30 days`))
			g.Expect(eventsFor(g, ns, bad.Name)).To(ContainElement(HavePrefix("Warning/" + ReasonInvalidSpec + `: spec.rotationInterval: "30d"`)))
			g.Expect(invalidObjects()).To(BeNumerically(">=", 1))
		}).Should(Succeed())

		// Two other namespaces go on: issue, rotate, revoke.
		other, third := newNamespace(), newNamespace()
		start := time.Now()
		create(octotest.Workspace(other, "globex"), octotest.APIKey(other, "globex"))
		first := waitForIssuedKey(other, "globex")
		issued := time.Since(start)
		create(octotest.Workspace(third, "initech"), octotest.APIKey(third, "initech"))
		waitForIssuedKey(third, "initech")
		start = time.Now()
		rotate(other, "globex", "LEAK-1")
		Eventually(func(g Gomega) {
			g.Expect(keyIn(getSecret(g, other, "globex-api-key"))).NotTo(Equal(first))
		}).Should(Succeed())
		rotated := time.Since(start)
		start = time.Now()
		Expect(k8sClient.Delete(ctx, &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: third, Name: "initech"}})).To(Succeed())
		Eventually(func(g Gomega) {
			isNotFound(g, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: third, Name: "initech-api-key"}})
		}).Should(Succeed())
		revoked := time.Since(start)
		figures.Add("one undecodable key stored in another namespace: a key issued in %s, rotated in %s, revoked in %s",
			issued.Round(time.Millisecond), rotated.Round(time.Millisecond), revoked.Round(time.Millisecond))

		// Fixed, it is issued.
		updateKey(ns, bad.Name, func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Duration: 720 * time.Hour}
		})
		waitForIssuedKey(ns, bad.Name)
	})
})

var _ = Describe("A rotation token put back", func() {
	It("rotates nothing, and says so once in a Normal event", func() {
		ns := newNamespace()
		create(octotest.Workspace(ns, "acme"), octotest.APIKey(ns, "acme"))
		waitForIssuedKey(ns, "acme")
		for _, token := range []string{"T1", "T2"} {
			rotate(ns, "acme", token)
			Eventually(func(g Gomega) { g.Expect(getKey(g, ns, "acme").Status.LastRotationToken).To(Equal(token)) }).Should(Succeed())
		}
		key := keyIn(getSecret(Default, ns, "acme-api-key"))
		emitted := func() float64 { return eventsEmitted(EventRotationTokenAlreadyUsed) }
		before := emitted()
		rotate(ns, "acme", "T1") // a GitOps tool reverting to an older manifest
		reported := func(g Gomega) []string {
			var out []string
			for _, e := range eventsFor(g, ns, "acme") {
				if strings.HasPrefix(e, "Normal/"+EventRotationTokenAlreadyUsed+":") {
					out = append(out, e)
				}
			}
			return out
		}
		Eventually(func(g Gomega) {
			g.Expect(reported(g)).To(ConsistOf(ContainSubstring(`token "T1" was already used for this key`)))
		}).Should(Succeed())
		annotate(ns, "acme", map[string]string{"poke": "1"})
		Consistently(func(g Gomega) {
			g.Expect(emitted()-before).To(BeEquivalentTo(1), "emitted once, not at every reconcile")
			g.Expect(keyIn(getSecret(g, ns, "acme-api-key"))).To(Equal(key))
		}, 2*time.Second).Should(Succeed())
	})
})

// storeBehindTheSchema stores a key whose spec.rotationInterval Go cannot
// parse, as one stored before the schema refused it.
func storeBehindTheSchema(ns, name, interval string) *octopodsv1alpha1.WorkspaceAPIKey {
	create(octotest.Workspace(ns, name))
	k, probe := octotest.APIKey(ns, name), octotest.APIKey(ns, "probe")
	k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Invalid: interval}
	probe.Spec.RotationInterval = &octopodsv1alpha1.Duration{Invalid: interval}
	octotest.StoreBehindTheSchema(ctx, k8sClient, "workspaceapikeys.octopods.io", "rotationInterval", k, probe)
	return k
}

func invalidObjects() float64 {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != "octopods_operator_invalid_objects" {
			continue
		}
		for _, m := range f.GetMetric() { // one series per key kind
			if m.GetLabel()[0].GetValue() == octopodsv1alpha1.WorkspaceKey.Kind {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// eventsEmitted is octopods_operator_key_events_total for reason.
func eventsEmitted(reason string) float64 {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != "octopods_operator_key_events_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
