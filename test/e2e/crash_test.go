//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// keyHistory records every distinct key value each workspace's Secret has
// held, from a watch started before anything was created.
type keyHistory struct {
	mu     sync.Mutex
	values map[string][]string
}

func (h *keyHistory) record(s *corev1.Secret) {
	v := string(s.Data[octopodsv1alpha1.SecretKeyAPIKey])
	ws := s.Labels[octopodsv1alpha1.WorkspaceLabel]
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, seen := range h.values[ws] {
		if seen == v {
			return
		}
	}
	h.values[ws] = append(h.values[ws], v)
}

func (h *keyHistory) of(ws string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.values[ws]...)
}

var _ = Describe("Manager crashes in the middle of a batch", Serial, func() {
	It("never loses, duplicates or changes a key without a token", func() {
		const n, rotated, workers = 200, 100, 16
		ns := newNamespace()
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("ws-%03d", i)
		}
		cs, err := kubernetes.NewForConfig(env.Config)
		Expect(err).NotTo(HaveOccurred())
		w, err := cs.CoreV1().Secrets(ns).Watch(ctx, metav1ListOptions())
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		history := &keyHistory{values: map[string][]string{}}
		go func() {
			for ev := range w.ResultChan() {
				if s, ok := ev.Object.(*corev1.Secret); ok && ev.Type != watch.Deleted {
					history.record(s)
				}
			}
		}()

		countTokens := func(token string) (issued, withToken int) {
			list := &corev1.SecretList{}
			Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			for _, s := range list.Items {
				issued++
				if s.Annotations[octopodsv1alpha1.RotationTokenAnnotation] == token && token != "" {
					withToken++
				}
			}
			return issued, withToken
		}
		crashWhen := func(reached func() bool, progress func() int) int {
			Eventually(reached, issueTimeout, 5*time.Millisecond).Should(BeTrue())
			Expect(env.KillManager()).To(Succeed())
			at := progress()
			Expect(env.StartManager()).To(Succeed())
			return at
		}
		issuedNow := func() int { issued, _ := countTokens(""); return issued }
		rotatedNow := func() int { _, done := countTokens("R1"); return done }

		// Issuance of 200, with a crash after about a third.
		start := time.Now()
		testutil.Parallel(n, workers, func(i int) {
			Expect(k8sClient.Create(ctx, testutil.Workspace(ns, names[i]))).To(Succeed())
			Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, names[i]))).To(Succeed())
		})
		crashedAt := crashWhen(func() bool { return issuedNow() >= n/3 }, issuedNow)
		Eventually(func() int { issued, _ := countTokens(""); return issued }, 2*time.Minute, 50*time.Millisecond).Should(Equal(n))
		issuing := time.Since(start)
		for _, name := range names {
			waitIssued(ns, name)
		}
		figure("%d keys issued in %s with a manager crash (SIGKILL, at %d/%d issued) and restart: %.0f keys/s",
			n, issuing.Round(time.Millisecond), crashedAt, n, float64(n)/issuing.Seconds())

		// Rotation of 100 with one token each, with a crash in the middle.
		testutil.Parallel(rotated, workers, func(i int) { rotate(ns, names[i], "R1") })
		rotatedAt := crashWhen(func() bool { return rotatedNow() >= rotated/3 }, rotatedNow)
		figure("rotation batch of %d: manager crashed at %d/%d rotated", rotated, rotatedAt, rotated)
		Eventually(func() int { _, done := countTokens("R1"); return done }, 2*time.Minute, 50*time.Millisecond).Should(Equal(rotated))

		// The same token applied again (a GitOps re-sync) across a restart.
		testutil.Parallel(rotated, workers, func(i int) { rotate(ns, names[i], "R1") })
		Expect(env.KillManager()).To(Succeed())
		Expect(env.StartManager()).To(Succeed())
		time.Sleep(3 * time.Second) // what would happen, has had time to happen

		for i, name := range names {
			want := 1
			if i < rotated {
				want = 2
			}
			Expect(history.of(name)).To(HaveLen(want), "%s held %d distinct keys", name, len(history.of(name)))
			s := secretOf(Default, ns, name)
			current := string(s.Data[octopodsv1alpha1.SecretKeyAPIKey])
			Expect(current).To(Equal(history.of(name)[want-1]), "the last key recorded is the one in place")
			Expect(keyOf(Default, ns, name).Status.KeyID).To(Equal(apikey.ID(current)))
		}
		issued, _ := countTokens("")
		Expect(issued).To(Equal(n), "exactly one Secret per workspace")
		for i := 0; i < n; i += 20 {
			key := history.of(names[i])[len(history.of(names[i]))-1]
			Eventually(func() int { return status(key) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		}
	})
})
