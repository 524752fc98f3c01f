package controllers

import (
	"context"
	"sync"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

var ctx = context.Background()

// issuedKeys collects every key value a spec has read, so the suite can prove
// none of them ever reached a log, an event or a status.
var issuedKeys = struct {
	sync.Mutex
	values map[string]bool
}{values: map[string]bool{}}

func remember(keys ...string) {
	issuedKeys.Lock()
	defer issuedKeys.Unlock()
	for _, k := range keys {
		if k != "" {
			issuedKeys.values[k] = true
		}
	}
}

func create(objs ...client.Object) {
	for _, o := range objs {
		ExpectWithOffset(1, k8sClient.Create(ctx, o)).To(Succeed())
	}
}

func getSecret(g Gomega, ns, name string) *corev1.Secret {
	s := &corev1.Secret{}
	g.ExpectWithOffset(1, k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s)).To(Succeed())
	remember(string(s.Data[octopodsv1alpha1.SecretKeyAPIKey]), string(s.Data[octopodsv1alpha1.SecretKeyPreviousAPIKey]))
	return s
}

func getKey(g Gomega, ns, name string) *octopodsv1alpha1.WorkspaceAPIKey {
	return testutil.GetKey(g, k8sClient, ns, name)
}

func getWorkspace(g Gomega, ns, name string) *octopodsv1alpha1.Workspace {
	w := &octopodsv1alpha1.Workspace{}
	g.ExpectWithOffset(1, k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, w)).To(Succeed())
	return w
}

func keyIn(s *corev1.Secret) string { return string(s.Data[octopodsv1alpha1.SecretKeyAPIKey]) }

// waitForIssuedKey waits until the key is Ready with a well-formed key in its
// Secret whose ID matches the status, and returns the key value.
func waitForIssuedKey(ns, name string) string {
	var value string
	EventuallyWithOffset(1, func(g Gomega) {
		k := getKey(g, ns, name)
		g.Expect(meta.IsStatusConditionTrue(k.Status.Conditions, ConditionReady)).To(BeTrue(), "Ready")
		s := getSecret(g, ns, k.EffectiveSecretName())
		value = keyIn(s)
		g.Expect(apikey.Validate(value)).To(Succeed())
		g.Expect(k.Status.KeyID).To(Equal(apikey.ID(value)))
	}).Should(Succeed())
	return value
}

func readyCondition(k *octopodsv1alpha1.WorkspaceAPIKey) metav1.Condition {
	c := meta.FindStatusCondition(k.Status.Conditions, ConditionReady)
	if c == nil {
		return metav1.Condition{}
	}
	return *c
}

// updateKey changes a WorkspaceAPIKey as a user would, retrying on conflicts
// with the operator's own writes.
func updateKey(ns, name string, change func(k *octopodsv1alpha1.WorkspaceAPIKey)) {
	EventuallyWithOffset(2, func() error {
		k := &octopodsv1alpha1.WorkspaceAPIKey{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, k); err != nil {
			return err
		}
		change(k)
		return k8sClient.Update(ctx, k)
	}).Should(Succeed())
}

// annotate sets annotations on a WorkspaceAPIKey, as kubectl annotate does.
func annotate(ns, name string, kv map[string]string) {
	updateKey(ns, name, func(k *octopodsv1alpha1.WorkspaceAPIKey) {
		if k.Annotations == nil {
			k.Annotations = map[string]string{}
		}
		for key, v := range kv {
			k.Annotations[key] = v
		}
	})
}

func rotate(ns, name, token string) {
	annotate(ns, name, map[string]string{octopodsv1alpha1.RotateAnnotation: token})
}

func isNotFound(g Gomega, obj client.Object) {
	err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	g.ExpectWithOffset(1, apierrors.IsNotFound(err)).To(BeTrue(), "expected %s to be gone, got %v", obj.GetName(), err)
}

// events returns the events.k8s.io Events about one object.
func eventsFor(g Gomega, ns, name string) []string {
	list := &eventsv1.EventList{}
	g.ExpectWithOffset(1, k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e.Type+"/"+e.Reason+": "+e.Note)
		}
	}
	return out
}

// plantKey writes a fresh key into the data field of the acme key Secret
// by hand, as someone with Secret access could, and returns it.
func plantKey(ns, field string) string {
	planted, err := apikey.Generate()
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	remember(planted)
	s := getSecret(Default, ns, "acme-api-key")
	s.Data[field] = []byte(planted)
	ExpectWithOffset(1, k8sClient.Update(ctx, s)).To(Succeed())
	return planted
}

// apiServerWrites reads the API server's own write counters.
func apiServerWrites() testutil.WriteCounts {
	w, err := testutil.APIServerWrites(ctx, restCfg)
	Expect(err).NotTo(HaveOccurred())
	return w
}
