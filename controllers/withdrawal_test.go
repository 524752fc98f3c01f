package controllers

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/testutil"
)

var _ = Describe("A rotated key", func() {
	It("is refused first by the namespace's withdrawal slice, then by its rewritten slice of keys, and only then leaves the withdrawal slice", func() {
		ns := newNamespace()
		// Other keys in the namespace: the rotated key's slice of keys is
		// not a slice of one.
		for i := range 5 {
			create(testutil.Workspace(ns, fmt.Sprintf("other-%d", i)), testutil.APIKey(ns, fmt.Sprintf("other-%d", i)))
		}
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		old := digest(waitForIssuedKey(ns, "acme"))
		Eventually(func(g Gomega) {
			g.Expect(slicedDigests(ns, octopodsv1alpha1.WorkspaceKey.Kind, "acme")).To(HaveKey(old))
		}).Should(Succeed())

		// Every slice write, in the order the API server made them.
		watcher, err := client.NewWithWatch(restCfg, client.Options{Scheme: k8sClient.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		w, err := watcher.Watch(ctx, &octopodsv1alpha1.KeyDigestSliceList{}, client.InNamespace(ns))
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		rotate(ns, "acme", "LEAK-1") // no grace period
		// What each slice write says of the old key: "withdrawn" (the
		// withdrawal slice lists it), "settled" (the withdrawal slice no
		// longer does), "published" or "revoked" (its slice of keys).
		var says []string
		Eventually(func(g Gomega) {
			for {
				select {
				case ev := <-w.ResultChan():
					g.Expect(ev.Type).NotTo(Equal(watch.Error))
					if s, ok := ev.Object.(*octopodsv1alpha1.KeyDigestSlice); ok {
						says = append(says, whatSliceSays(s, old)...)
					}
					continue
				default:
				}
				break
			}
			g.Expect(says).To(ContainElement("settled"))
		}).Should(Succeed())
		// The watch starts with the slices as they are (the old key
		// published), and a slice may be written again saying the same.
		var story []string
		for _, s := range says {
			if (len(story) == 0 && s == "published") || (len(story) > 0 && story[len(story)-1] == s) {
				continue
			}
			story = append(story, s)
			if s == "settled" {
				break // later writes are not this rotation's
			}
		}
		Expect(story).To(HaveExactElements("withdrawn", "revoked", "settled"),
			"the old key is withdrawn by a small write before its slice of keys is rewritten, and stays withdrawn until that rewrite")
		Expect(slicedDigests(ns, octopodsv1alpha1.WorkspaceKey.Kind, "acme")).NotTo(HaveKey(old))
		withdrawal := &octopodsv1alpha1.KeyDigestSlice{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: octopodsv1alpha1.SliceWithdrawnName}, withdrawal)).To(Succeed())
		Expect(withdrawal.WithdrawnKeys).To(BeEmpty())
		Expect(withdrawal.Keys).To(BeEmpty())
		Expect(withdrawal.Labels).To(HaveKeyWithValue(octopodsv1alpha1.SliceLabel, octopodsv1alpha1.SliceRoleWithdrawn))
	})

	It("writes no withdrawal slice when nothing published goes: issuing keys costs none", func() {
		ns := newNamespace()
		create(testutil.Workspace(ns, "acme"), testutil.APIKey(ns, "acme"))
		key := digest(waitForIssuedKey(ns, "acme"))
		Eventually(func(g Gomega) {
			g.Expect(slicedDigests(ns, octopodsv1alpha1.WorkspaceKey.Kind, "acme")).To(HaveKey(key))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: octopodsv1alpha1.SliceWithdrawnName}, &octopodsv1alpha1.KeyDigestSlice{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no withdrawal slice: %v", err)
		}, "1s").Should(Succeed())
	})
})

// whatSliceSays is what one written slice says of digest, if anything.
func whatSliceSays(s *octopodsv1alpha1.KeyDigestSlice, digest string) []string {
	if s.Labels[octopodsv1alpha1.SliceLabel] == octopodsv1alpha1.SliceRoleWithdrawn {
		for _, w := range s.WithdrawnKeys {
			if w.Digest == digest {
				return []string{"withdrawn"}
			}
		}
		return []string{"settled"}
	}
	var says []string
	for _, e := range s.Keys {
		for _, p := range e.PublishedKeys {
			if p.Digest == digest {
				says = append(says, "published")
			}
		}
		for _, r := range e.RevokedKeys {
			if r.Digest == digest {
				says = append(says, "revoked")
			}
		}
	}
	return says
}
