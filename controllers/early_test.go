package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/keysecret"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// beforeKeyStatusWrites calls before with every status write of a
// WorkspaceAPIKey the key reconciler makes, at its instant, and after with
// its outcome.
func beforeKeyStatusWrites(before func(*octopodsv1alpha1.WorkspaceAPIKey), after func(*octopodsv1alpha1.WorkspaceAPIKey, error)) func(client.Client) client.Client {
	return func(c client.Client) client.Client {
		return interceptor.NewClient(watchless{c}, interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				key, ok := obj.(*octopodsv1alpha1.WorkspaceAPIKey)
				if ok {
					before(key)
				}
				err := c.SubResource(sub).Patch(ctx, obj, patch, opts...)
				if ok {
					after(key, err)
				}
				return err
			},
		})
	}
}

// Serial: it replaces the suite's manager with one whose key reconciler's
// status writes are watched.
var _ = Describe("A new key", Serial, func() {
	It("is in a slice before the status write that publishes it, and its own writes never conflict with its cache", func() {
		ns := newNamespace()
		var (
			mu        sync.Mutex
			ahead     []string // per status write publishing a new digest: whether a slice held it already
			conflicts []string
		)
		stopManager()
		stopHere := startManager(Options{MaxConcurrentReconciles: 4, wrapClient: beforeKeyStatusWrites(
			func(next *octopodsv1alpha1.WorkspaceAPIKey) {
				if next.Namespace != ns {
					return
				}
				// The status the API server holds now, before this write.
				now := &octopodsv1alpha1.WorkspaceAPIKey{}
				Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(next), now)).To(Succeed())
				sliced := slicedDigests(ns, octopodsv1alpha1.WorkspaceKey.Kind, next.Name)
				mu.Lock()
				defer mu.Unlock()
				for _, p := range next.Status.PublishedKeys {
					if !keysecret.Publishes(now.Status.PublishedKeys, p.Digest) {
						_, held := sliced[p.Digest]
						ahead = append(ahead, fmt.Sprintf("%s sliced before its status: %t", next.Name, held))
					}
				}
			},
			func(next *octopodsv1alpha1.WorkspaceAPIKey, err error) {
				if next.Namespace == ns && apierrors.IsConflict(err) {
					mu.Lock()
					defer mu.Unlock()
					conflicts = append(conflicts, next.Name)
				}
			})})
		DeferCleanup(func() {
			stopHere()
			stopManager = startManager(Options{MaxConcurrentReconciles: 4})
		})

		// One at a time, as a person creates them: a burst is batched.
		names := []string{"acme", "globex", "initech"}
		for _, name := range names {
			create(testutil.Workspace(ns, name), testutil.APIKey(ns, name))
			key := waitForIssuedKey(ns, name)
			Eventually(func(g Gomega) { g.Expect(published(getKey(g, ns, name))).To(Equal([]string{digest(key)})) }).Should(Succeed())
		}
		mu.Lock()
		defer mu.Unlock()
		Expect(ahead).To(HaveLen(len(names)))
		Expect(ahead).To(HaveEach(HaveSuffix("true")))
		Expect(conflicts).To(BeEmpty(), "status writes of a reconcile that read its own outdated write")
	})
})

// Serial: it replaces the suite's manager with one whose key reconciler's
// status writes are watched.
var _ = Describe("A key admitted ahead of a status write that then conflicts", Serial, func() {
	It("stays admitted, as the previous key, through a rotation with grace that comes before its status is written", func() {
		ns := newNamespace()
		var (
			mu        sync.Mutex
			person    bool // the person's edit landed between the slice write and the status write
			conflicts int
		)
		stopManager()
		stopHere := startManager(Options{MaxConcurrentReconciles: 4, wrapClient: beforeKeyStatusWrites(
			func(next *octopodsv1alpha1.WorkspaceAPIKey) {
				mu.Lock()
				defer mu.Unlock()
				if next.Namespace != ns || person || len(next.Status.PublishedKeys) == 0 {
					return
				}
				// The slices admit the new key now; a person who sees it
				// admitted asks for a rotation with grace before the
				// status write that publishes it.
				person = true
				updateKey(ns, "acme", func(k *octopodsv1alpha1.WorkspaceAPIKey) {
					k.Spec.RotationGracePeriod = &octopodsv1alpha1.Duration{Duration: time.Hour}
					if k.Annotations == nil {
						k.Annotations = map[string]string{}
					}
					k.Annotations[octopodsv1alpha1.RotateAnnotation] = "PLANNED-1"
				})
			},
			func(next *octopodsv1alpha1.WorkspaceAPIKey, err error) {
				if next.Namespace == ns && apierrors.IsConflict(err) {
					mu.Lock()
					defer mu.Unlock()
					conflicts++
				}
			})})
		DeferCleanup(func() {
			stopHere()
			stopManager = startManager(Options{MaxConcurrentReconciles: 4})
		})

		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		var first, second string
		Eventually(func(g Gomega) {
			s := getSecret(g, ns, "acme-api-key")
			g.Expect(s.Annotations).To(HaveKeyWithValue(octopodsv1alpha1.RotationTokenAnnotation, "PLANNED-1"))
			first, second = string(s.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey]), keyIn(s)
			g.Expect(first).NotTo(BeEmpty(), "the first key is kept for the grace period")
			g.Expect(published(getKey(g, ns, "acme"))).To(ConsistOf(digest(second), digest(first)))
		}).Should(Succeed())
		mu.Lock()
		Expect(person).To(BeTrue())
		Expect(conflicts).To(BeNumerically(">", 0), "the status write that publishes the first key conflicted with the person's edit")
		mu.Unlock()
		Consistently(func(g Gomega) {
			admitted := slicedDigests(ns, octopodsv1alpha1.WorkspaceKey.Kind, "acme")
			g.Expect(admitted).To(HaveKey(digest(first)), "the first key, within its grace period")
			g.Expect(admitted).To(HaveKey(digest(second)))
		}, "2s").Should(Succeed())
	})
})
