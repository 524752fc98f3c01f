package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

var _ = Describe("Key issuance", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("issues one well-formed key into a Secret with the contract's shape", func() {
		key := testutil.APIKey(ns, "acme")
		key.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{
			Labels:      map[string]string{"team": "support"},
			Annotations: map[string]string{"reloader.stakater.com/match": "true"},
		}
		create(testutil.Workspace(ns, "acme"), key)
		value := waitForIssuedKey(ns, "acme")

		Eventually(func(g Gomega) {
			k := getKey(g, ns, "acme")
			s := getSecret(g, ns, "acme-api-key")
			ws := getWorkspace(g, ns, "acme")

			g.Expect(s.Type).To(Equal(corev1.SecretType(octopodsv1alpha1.SecretType)))
			g.Expect(s.Data).To(HaveLen(1))
			g.Expect(value).To(MatchRegexp(`^opk_[0-9A-Za-z]{49}$`))
			g.Expect(s.Labels).To(Equal(map[string]string{
				octopodsv1alpha1.WorkspaceLabel: "acme",
				octopodsv1alpha1.ManagedByLabel: octopodsv1alpha1.ManagedByValue,
				"team":                          "support",
			}))
			g.Expect(s.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.KeyIDAnnotation, apikey.ID(value)))
			g.Expect(s.Annotations).To(HaveKeyWithValue("reloader.stakater.com/match", "true"))
			g.Expect(s.Annotations).NotTo(HaveKey(octopodsv1alpha1.RotationTokenAnnotation))
			g.Expect(metav1.IsControlledBy(s, k)).To(BeTrue(), "Secret controlled by its WorkspaceAPIKey")
			g.Expect(metav1.IsControlledBy(k, ws)).To(BeTrue(), "WorkspaceAPIKey controlled by its Workspace")
			g.Expect(k.Finalizers).To(ContainElement(RevokeFinalizer))

			g.Expect(k.Spec.RotationGracePeriod.Duration).To(BeZero(), "grace period defaults to 0s")
			g.Expect(k.Status.SecretName).To(Equal("acme-api-key"))
			g.Expect(k.Status.IssuedAt).NotTo(BeNil())
			g.Expect(k.Status.RotatedAt).To(BeNil())
			g.Expect(k.Status.ObservedGeneration).To(Equal(k.Generation))
			g.Expect(readyCondition(k).ObservedGeneration).To(Equal(k.Generation))
			g.Expect(readyCondition(k).Reason).To(Equal(ReasonKeyIssued))

			g.Expect(ws.Status.APIKey).To(Equal("acme-api-key (key " + apikey.ID(value) + ")"))
			g.Expect(ws.Status.KeyID).To(Equal(apikey.ID(value)))
			g.Expect(ws.Status.ObservedGeneration).To(Equal(ws.Generation))
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Normal/" + ReasonKeyIssued)))
		}).Should(Succeed())
	})

	It("makes the Secret follow secretTemplate edits, key unchanged, others' metadata kept", func() {
		key := testutil.APIKey(ns, "acme")
		key.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{
			Labels:      map[string]string{"team": "support", "tier": "gold"},
			Annotations: map[string]string{"reloader.stakater.com/match": "true"},
		}
		create(testutil.Workspace(ns, "acme"), key)
		value := waitForIssuedKey(ns, "acme")
		s := getSecret(Default, ns, "acme-api-key")
		s.Labels["backup"] = "daily" // someone else's label
		Expect(k8sClient.Update(ctx, s)).To(Succeed())

		updateKey(ns, "acme", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{Labels: map[string]string{"team": "billing"}}
		})
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(s.Labels).To(Equal(map[string]string{
				octopodsv1alpha1.WorkspaceLabel: "acme",
				octopodsv1alpha1.ManagedByLabel: octopodsv1alpha1.ManagedByValue,
				"team":                          "billing",
				"backup":                        "daily",
			}))
			g.Expect(s.Annotations).NotTo(HaveKey("reloader.stakater.com/match"))
			g.Expect(keyIn(s)).To(Equal(value))
		}).Should(Succeed())
	})

	It("honours spec.secretName", func() {
		key := testutil.APIKey(ns, "acme")
		key.Spec.SecretName = "integrations-octopods"
		create(testutil.Workspace(ns, "acme"), key)
		waitForIssuedKey(ns, "acme")
		Eventually(func(g Gomega) { getSecret(g, ns, "integrations-octopods") }).Should(Succeed())
	})

	It("shows 'No API key generated' for a workspace without a key, from its creation on", func() {
		create(testutil.Workspace(ns, "acme"))
		// At once, before any status write: the settings table never shows a blank.
		Expect(getWorkspace(Default, ns, "acme").Status.APIKey).To(Equal(octopodsv1alpha1.NoAPIKeySummary))
		Eventually(func(g Gomega) {
			ws := getWorkspace(g, ns, "acme")
			g.Expect(ws.Status.APIKey).To(Equal(octopodsv1alpha1.NoAPIKeySummary))
			g.Expect(ws.Status.Conditions).To(ContainElement(And(
				HaveField("Type", ConditionReady), HaveField("Status", metav1.ConditionFalse), HaveField("Reason", ReasonNoAPIKey))))
		}).Should(Succeed())
	})

	It("keeps a key waiting for its Workspace, then issues it when the Workspace appears", func() {
		create(testutil.APIKey(ns, "acme"))
		Eventually(func(g Gomega) {
			c := readyCondition(getKey(g, ns, "acme"))
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(ReasonWorkspaceNotFound))
			g.Expect(c.Message).To(ContainSubstring(`Workspace "acme"`))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme-api-key"}, &corev1.Secret{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		}).Should(Succeed())

		create(testutil.Workspace(ns, "acme"))
		waitForIssuedKey(ns, "acme")
	})

	It("yields exactly one Secret from 50 concurrent creates of the same key", func() {
		create(testutil.Workspace(ns, "acme"))
		var created, conflicts atomic.Int32
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				defer GinkgoRecover()
				key := testutil.APIKey(ns, "acme")
				key.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{Labels: map[string]string{"attempt": string(rune('a' + i%26))}}
				switch err := k8sClient.Create(ctx, key); {
				case err == nil:
					created.Add(1)
				case apierrors.IsAlreadyExists(err):
					conflicts.Add(1)
				default:
					Fail("unexpected error: " + err.Error())
				}
			})
		}
		wg.Wait()
		Expect(created.Load()).To(Equal(int32(1)))
		Expect(conflicts.Load()).To(Equal(int32(49)))
		waitForIssuedKey(ns, "acme")
		Consistently(func(g Gomega) {
			list := &corev1.SecretList{}
			g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{octopodsv1alpha1.WorkspaceLabel: "acme"})).To(Succeed())
			g.Expect(list.Items).To(HaveLen(1))
		}).Should(Succeed())
	})
})

var _ = Describe("API validation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	DescribeTable("refuses invalid objects with a message that says why",
		func(obj func(ns string) client.Object, message string) {
			err := k8sClient.Create(ctx, obj(ns))
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("a key named after another workspace", func(ns string) client.Object {
			k := testutil.APIKey(ns, "acme")
			k.Spec.WorkspaceName = "globex"
			return k
		}, "spec.workspaceName: Invalid value: spec.workspaceName must equal metadata.name"),
		Entry("an unknown provider, listing the allowed ones", func(ns string) client.Object {
			w := testutil.Workspace(ns, "acme")
			w.Spec.Provider = "Zendesk"
			return w
		}, `supported values: "Intercom", "HubSpot"`),
		Entry("an empty display name", func(ns string) client.Object {
			w := testutil.Workspace(ns, "acme")
			w.Spec.DisplayName = ""
			return w
		}, "spec.displayName"),
		Entry("a grace period over 24h", func(ns string) client.Object {
			k := testutil.APIKey(ns, "acme")
			k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: 25 * time.Hour}
			return k
		}, "rotationGracePeriod must be between 0s and 24h"),
		Entry("a negative grace period", func(ns string) client.Object {
			k := testutil.APIKey(ns, "acme")
			k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: -time.Second}
			return k
		}, "rotationGracePeriod must be between 0s and 24h"),
		Entry("a secret name that is not a DNS name", func(ns string) client.Object {
			k := testutil.APIKey(ns, "acme")
			k.Spec.SecretName = "Not_A_Name"
			return k
		}, "spec.secretName"),
		Entry("a rotation interval under 1h", func(ns string) client.Object {
			k := testutil.APIKey(ns, "acme")
			k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Duration: 30 * time.Minute}
			return k
		}, "spec.rotationInterval: Invalid value: \"30m0s\": rotationInterval must be between 1h and 8760h (365 days), for example 720h for 30 days"),
		Entry("a rotation interval over a year", func(ns string) client.Object {
			k := testutil.APIKey(ns, "acme")
			k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Duration: 8761 * time.Hour}
			return k
		}, "rotationInterval must be between 1h and 8760h"),
		Entry("a workspace name over 63 characters", func(ns string) client.Object {
			return testutil.Workspace(ns, strings.Repeat("a", 64))
		}, "a Workspace name is at most 63 characters"),
		Entry("a key for a workspace name over 63 characters", func(ns string) client.Object {
			return testutil.APIKey(ns, strings.Repeat("a", 64))
		}, "spec.workspaceName (the Workspace's name) is at most 63 characters"),
		Entry("a template label key that is not a label key, named", func(ns string) client.Object {
			k := testutil.APIKey(ns, "acme")
			k.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{Labels: map[string]string{"team": "a", "bad key!": "x"}}
			return k
		}, "label key bad key! is not a valid label key"),
		Entry("a template label reserved to the operator", func(ns string) client.Object {
			k := testutil.APIKey(ns, "acme")
			k.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{Labels: map[string]string{"octopods.io/workspace": "globex"}}
			return k
		}, "label octopods.io/workspace is set by the operator itself"),
		Entry("a template annotation key that is not an annotation key", func(ns string) client.Object {
			k := testutil.APIKey(ns, "acme")
			k.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{Annotations: map[string]string{"-bad": "x"}}
			return k
		}, "annotation key -bad is not a valid annotation key"),
		Entry("a template annotation reserved to the operator", func(ns string) client.Object {
			k := testutil.APIKey(ns, "acme")
			k.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{Annotations: map[string]string{"octopods.io/key-id": "forged"}}
			return k
		}, "annotation octopods.io/key-id is set by the operator itself"),
	)

	It("accepts a template with valid prefixed keys", func() {
		k := testutil.APIKey(ns, "acme")
		k.Spec.SecretTemplate = &octopodsv1alpha1.SecretTemplate{
			Labels:      map[string]string{"example.com/team": "support_1.a", "tier": ""},
			Annotations: map[string]string{"reloader.stakater.com/match": "true, with any value"},
		}
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
	})

	DescribeTable("refuses changes to immutable fields",
		func(change func(k *octopodsv1alpha1.WorkspaceAPIKey), message string) {
			create(testutil.APIKey(ns, "acme"))
			// The manager adds its finalizer meanwhile: retry conflicts,
			// as kubectl does, until the API server judges the change.
			var err error
			Eventually(func() bool {
				k := getKey(Default, ns, "acme")
				change(k)
				err = k8sClient.Update(ctx, k)
				return !apierrors.IsConflict(err)
			}).Should(BeTrue())
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("secretName", func(k *octopodsv1alpha1.WorkspaceAPIKey) { k.Spec.SecretName = "elsewhere" },
			"spec.secretName: Forbidden: secretName is immutable: delete the WorkspaceAPIKey and create it again with the new spec.secretName"),
		Entry("workspaceName", func(k *octopodsv1alpha1.WorkspaceAPIKey) { k.Spec.WorkspaceName = "globex" }, "workspaceName is immutable"),
	)

	It("accepts writing out the default secretName", func() {
		create(testutil.APIKey(ns, "acme"))
		updateKey(ns, "acme", func(k *octopodsv1alpha1.WorkspaceAPIKey) { k.Spec.SecretName = "acme-api-key" })
		Expect(getKey(Default, ns, "acme").Spec.SecretName).To(Equal("acme-api-key"))
	})
})

var _ = Describe("Rotation", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
	})

	It("rotates once per new token, and never for a re-applied one", func() {
		first := waitForIssuedKey(ns, "acme")
		rotate(ns, "acme", "TICKET-1")
		var second string
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			second = keyIn(s)
			g.Expect(second).NotTo(Equal(first))
			g.Expect(s.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.RotationTokenAnnotation, "TICKET-1"))
			g.Expect(s.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.KeyIDAnnotation, apikey.ID(second)))
			g.Expect(s.Data).NotTo(HaveKey(octopodsv1alpha1.SecretKeyPreviousAPIKey), "no grace: the old key is gone at once")
			k := getKey(g, ns, "acme")
			g.Expect(k.Status.LastRotationToken).To(Equal("TICKET-1"))
			g.Expect(k.Status.KeyID).To(Equal(apikey.ID(second)))
			g.Expect(k.Status.RotatedAt).NotTo(BeNil())
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Normal/" + EventKeyRotated)))
		}).Should(Succeed())

		// A GitOps re-sync writes the same token again alongside other changes.
		rotate(ns, "acme", "TICKET-1")
		annotate(ns, "acme", map[string]string{"resync": "1"})
		Consistently(func(g Gomega) {
			g.Expect(keyIn(getSecret(g, ns, "acme-api-key"))).To(Equal(second))
		}).Should(Succeed())

		rotate(ns, "acme", "TICKET-2")
		Eventually(func(g Gomega) {
			third := keyIn(getSecret(g, ns, "acme-api-key"))
			g.Expect(third).NotTo(BeElementOf(first, second))
		}).Should(Succeed())
	})

	It("keeps the previous key for the grace period, then removes it", func() {
		old := waitForIssuedKey(ns, "acme")
		updateKey(ns, "acme", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
			k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: 3 * time.Second}
		})

		rotate(ns, "acme", "leak-2026-11-26")
		var current string
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			current = keyIn(s)
			g.Expect(current).NotTo(Equal(old))
			g.Expect(string(s.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey])).To(Equal(old))
			until, err := time.Parse(time.RFC3339, s.Annotations[octopodsv1alpha1.PreviousValidUntilAnnotation])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(until).To(BeTemporally("~", time.Now().Add(3*time.Second), 3*time.Second))
			st := getKey(g, ns, "acme").Status
			g.Expect(st.PreviousKeyID).To(Equal(apikey.ID(old)))
			g.Expect(st.PreviousValidUntil).NotTo(BeNil())
		}).Should(Succeed())

		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(s.Data).NotTo(HaveKey(octopodsv1alpha1.SecretKeyPreviousAPIKey))
			g.Expect(s.Annotations).NotTo(HaveKey(octopodsv1alpha1.PreviousValidUntilAnnotation))
			g.Expect(keyIn(s)).To(Equal(current), "expiry removes only the previous key")
			g.Expect(getKey(g, ns, "acme").Status.PreviousKeyID).To(BeEmpty())
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Normal/" + EventPreviousKeyExpired)))
		}).Should(Succeed())
	})
})

// Serial: it replaces the suite's manager with one that crashes.
var _ = Describe("Rotation across a manager crash", Serial, func() {
	It("rotates exactly once when the manager dies between the Secret write and the status write", func() {
		ns := newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		original := waitForIssuedKey(ns, "acme")

		stopManager()
		restarted := false
		DeferCleanup(func() { // whatever happens below, the suite gets its manager back
			if !restarted {
				stopManager = startManager(Options{MaxConcurrentReconciles: 4})
			}
		})
		var crashOnce sync.Once
		crashed := make(chan struct{})
		var stopCrashing func()
		crashCtx, crash := context.WithCancel(context.Background())
		stopCrashing = startManagerWithContext(crashCtx, Options{wrapClient: afterSecretWrites(func(_ context.Context, s *corev1.Secret) bool {
			if s.Namespace != ns || s.Annotations[octopodsv1alpha1.RotationTokenAnnotation] != "TICKET-9" {
				return false
			}
			// Die right after the Secret write: nothing this manager
			// would write after it lands, the status write included.
			crashOnce.Do(func() { crash(); close(crashed) })
			return true
		})})
		rotate(ns, "acme", "TICKET-9")
		Eventually(crashed).Should(BeClosed())
		stopCrashing()

		// The crash left the state we want to recover from: a rotated
		// Secret, and a status that still describes the old key.
		rotated := keyIn(getSecret(Default, ns, "acme-api-key"))
		Expect(rotated).NotTo(Equal(original))
		k := getKey(Default, ns, "acme")
		Expect(k.Status.LastRotationToken).To(BeEmpty())
		Expect(k.Status.KeyID).To(Equal(apikey.ID(original)))

		stopManager, restarted = startManager(Options{MaxConcurrentReconciles: 4}), true
		Eventually(func(g Gomega) {
			k := getKey(g, ns, "acme")
			g.Expect(k.Status.LastRotationToken).To(Equal("TICKET-9"))
			g.Expect(k.Status.KeyID).To(Equal(apikey.ID(rotated)))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(keyIn(getSecret(g, ns, "acme-api-key"))).To(Equal(rotated))
		}).Should(Succeed())
	})
})

var _ = Describe("Re-issue", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
	})

	It("re-issues a deleted Secret with a fresh key and a Warning", func() {
		old := waitForIssuedKey(ns, "acme")
		Expect(k8sClient.Delete(ctx, getSecret(Default, ns, "acme-api-key"))).To(Succeed())
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(apikey.Validate(keyIn(s))).To(Succeed())
			g.Expect(keyIn(s)).NotTo(Equal(old))
			g.Expect(getKey(g, ns, "acme").Status.KeyID).To(Equal(apikey.ID(keyIn(s))))
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Warning/" + EventKeyReissued)))
		}).Should(Succeed())
	})

	It("re-issues a hand-edited Secret with a fresh key and a Warning", func() {
		old := waitForIssuedKey(ns, "acme")
		planted, err := apikey.Generate()
		Expect(err).NotTo(HaveOccurred())
		s := getSecret(Default, ns, "acme-api-key")
		s.Data[octopodsv1alpha1.SecretKeyAPIKey] = []byte(planted)
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		remember(planted)
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(keyIn(s)).NotTo(BeElementOf(old, planted))
			g.Expect(apikey.Validate(keyIn(s))).To(Succeed())
			g.Expect(s.Annotations[octopodsv1alpha1.KeyIDAnnotation]).To(Equal(apikey.ID(keyIn(s))))
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Warning/" + EventKeyReissued)))
		}).Should(Succeed())
	})

	It("changes nothing on an unrelated edit of the Secret", func() {
		old := waitForIssuedKey(ns, "acme")
		s := getSecret(Default, ns, "acme-api-key")
		s.Labels["added-by"] = "someone"
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(keyIn(getSecret(g, ns, "acme-api-key"))).To(Equal(old))
		}).Should(Succeed())
	})
})

var _ = Describe("Revocation", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		waitForIssuedKey(ns, "acme")
	})

	It("revokes the key when the WorkspaceAPIKey is deleted", func() {
		Expect(k8sClient.Delete(ctx, testutil.APIKey(ns, "acme"))).To(Succeed())
		Eventually(func(g Gomega) {
			isNotFound(g, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-api-key"}})
			isNotFound(g, testutil.APIKey(ns, "acme"))
			g.Expect(getWorkspace(g, ns, "acme").Status.APIKey).To(Equal(octopodsv1alpha1.NoAPIKeySummary))
		}).Should(Succeed())
	})

	It("revokes the key when the Workspace is deleted, with no garbage collector running", func() {
		Expect(k8sClient.Delete(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Eventually(func(g Gomega) {
			isNotFound(g, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-api-key"}})
			isNotFound(g, testutil.APIKey(ns, "acme"))
			isNotFound(g, testutil.Workspace(ns, "acme"))
		}).Should(Succeed())
	})
})

var _ = Describe("A foreign Secret in the way", func() {
	DescribeTable("is never taken over, changed or revealed",
		func(secretType corev1.SecretType) {
			ns := newNamespace()
			foreign := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-api-key", Labels: map[string]string{"owner": "billing"}},
				Type:       secretType,
				Data:       map[string][]byte{"password": []byte("billing-db-password")},
			}
			create(foreign, testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
			Eventually(func(g Gomega) {
				k := getKey(g, ns, "acme")
				g.Expect(readyCondition(k).Reason).To(Equal(ReasonSecretConflict))
				g.Expect(readyCondition(k).Message).To(Equal(`Secret "acme-api-key" exists and is not managed by octopods-operator: it is left untouched; delete that Secret, or delete this WorkspaceAPIKey and create it again with another spec.secretName (checked again every minute)`))
				g.Expect(k.Status.KeyID).To(BeEmpty())
				g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Warning/" + ReasonSecretConflict)))
			}).Should(Succeed())
			Consistently(func(g Gomega) {
				s := &corev1.Secret{}
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), s)).To(Succeed())
				g.Expect(s.ResourceVersion).To(Equal(foreign.ResourceVersion), "the foreign Secret is not written")
				g.Expect(s.OwnerReferences).To(BeEmpty())
			}).Should(Succeed())

			// Deleting the key must not delete someone else's Secret either.
			Expect(k8sClient.Delete(ctx, testutil.APIKey(ns, "acme"))).To(Succeed())
			Eventually(func(g Gomega) { isNotFound(g, testutil.APIKey(ns, "acme")) }).Should(Succeed())
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), &corev1.Secret{})).To(Succeed())
		},
		Entry("an Opaque Secret", corev1.SecretTypeOpaque),
		Entry("a key-typed Secret that this key does not own", corev1.SecretType(octopodsv1alpha1.SecretType)),
	)
})

var _ = Describe("Key confidentiality", func() {
	It("never puts a key in a status, an event or the manager's logs", func() {
		ns := newNamespace()
		key := testutil.APIKey(ns, "acme")
		key.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: time.Hour}
		create(testutil.Workspace(ns, "acme"), key)
		waitForIssuedKey(ns, "acme")
		rotate(ns, "acme", "t1")
		Eventually(func(g Gomega) {
			g.Expect(getSecret(g, ns, "acme-api-key").Data).To(HaveKey(octopodsv1alpha1.SecretKeyPreviousAPIKey))
		}).Should(Succeed())
		Expect(k8sClient.Delete(ctx, getSecret(Default, ns, "acme-api-key"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(eventsFor(g, ns, "acme")).To(ContainElement(HavePrefix("Warning/" + EventKeyReissued)))
		}).Should(Succeed())
		current := waitForIssuedKey(ns, "acme")

		issuedKeys.Lock()
		keys := make([]string, 0, len(issuedKeys.values))
		for k := range issuedKeys.values {
			keys = append(keys, k)
		}
		issuedKeys.Unlock()
		Expect(len(keys)).To(BeNumerically(">=", 3))

		// Everything outside the Secrets, across the whole suite so far.
		var outside strings.Builder
		for _, list := range []client.ObjectList{&octopodsv1alpha1.WorkspaceAPIKeyList{}, &octopodsv1alpha1.WorkspaceList{}, &octopodsv1alpha1.KeyDigestSliceList{}, &eventsv1.EventList{}, &corev1.EventList{}} {
			Expect(k8sClient.List(ctx, list)).To(Succeed())
			b, err := json.Marshal(list)
			Expect(err).NotTo(HaveOccurred())
			outside.Write(b)
		}
		logs := managerLogs.String()
		// The capture works: the public key ID is logged (with the events).
		Eventually(managerLogs.String).Should(ContainSubstring(apikey.ID(current)))
		for _, k := range keys {
			Expect(outside.String()).NotTo(ContainSubstring(k[4:]), "a key reached a status or an event")
			Expect(logs).NotTo(ContainSubstring(k[4:]), "a key reached the manager's logs")
		}
		// client-go logs whole bodies at V(8), a Secret's as a hex dump in
		// which no key reads as a string: no body may be logged at all.
		Expect(logs).NotTo(ContainSubstring("Request Body"))
		Expect(logs).NotTo(ContainSubstring("Response Body"))
	})
})

var _ = Describe("Scale", Serial, func() {
	It("issues exactly one valid key to each of 300 workspaces applied at once", func() {
		const n, workers = 300, 16
		ns := newNamespace()
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("ws-%03d", i)
		}

		// Baseline: the same API server creating 300 plain Secrets, one client.
		baseNS := newNamespace()
		started := time.Now()
		testutil.Parallel(n, workers, func(i int) {
			create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: baseNS, Name: names[i]}, StringData: map[string]string{"k": "v"}})
		})
		baseline := time.Since(started)

		writesBefore := apiServerWrites()
		started = time.Now()
		testutil.Parallel(n, workers, func(i int) { create(testutil.Workspace(ns, names[i]), testutil.APIKey(ns, names[i])) })
		Eventually(func(g Gomega) {
			keys := &octopodsv1alpha1.WorkspaceAPIKeyList{}
			g.Expect(k8sClient.List(ctx, keys, client.InNamespace(ns))).To(Succeed())
			ready := 0
			for _, k := range keys.Items {
				if readyCondition(&k).Status == metav1.ConditionTrue {
					ready++
				}
			}
			g.Expect(ready).To(Equal(n))
		}, bulkTimeout, 200*time.Millisecond).Should(Succeed())
		issued := time.Since(started)
		Consistently(func(Gomega) {}).Should(Succeed()) // let the last status and event writes land
		writes := apiServerWrites().Minus(writesBefore)
		writes["POST workspaces"] -= n // the test's own creates
		writes["POST workspaceapikeys"] -= n
		figures.Add("writes to issue %d keys without webhooks, from the API server's request metrics: %d in all, %.2f per key (%s)", n, writes.Total(), float64(writes.Total())/n, writes)
		figures.Add("300 plain Secrets created (16 workers, one client): %.2fs", baseline.Seconds())
		figures.Add("300 Workspaces+WorkspaceAPIKeys applied until all keys Ready (16 workers): %.2fs (%.1fx the plain Secrets)", issued.Seconds(), issued.Seconds()/baseline.Seconds())

		secrets := &corev1.SecretList{}
		Expect(k8sClient.List(ctx, secrets, client.InNamespace(ns))).To(Succeed())
		Expect(secrets.Items).To(HaveLen(n))
		seen := map[string]bool{}
		for _, s := range secrets.Items {
			v := keyIn(&s)
			Expect(apikey.Validate(v)).To(Succeed())
			Expect(seen[v]).To(BeFalse(), "duplicate key")
			seen[v] = true
			Expect(s.Annotations[octopodsv1alpha1.KeyIDAnnotation]).To(Equal(apikey.ID(v)))
			remember(v)
		}
	})
})
