//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/testutil"
)

var ctx = context.Background()

func newNamespace() string { return testutil.NewNamespace(k8sClient, "e2e-") }

func secretOf(g Gomega, ns, workspace string) *corev1.Secret {
	s := &corev1.Secret{}
	g.ExpectWithOffset(1, k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: workspace + "-api-key"}, s)).To(Succeed())
	return s
}

func keyOf(g Gomega, ns, name string) *octopodsv1alpha1.WorkspaceAPIKey {
	return testutil.GetKey(g, k8sClient, ns, name)
}

// waitIssued waits for a Ready key whose Secret holds a valid key, returns it.
func waitIssued(ns, name string) string {
	return testutil.IssuedKey(k8sClient, ns, name, issueTimeout, pollEvery)
}

func rotate(ns, name, token string) {
	EventuallyWithOffset(1, func() error {
		k := &octopodsv1alpha1.WorkspaceAPIKey{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, k); err != nil {
			return err
		}
		patch := client.MergeFrom(k.DeepCopy())
		if k.Annotations == nil {
			k.Annotations = map[string]string{}
		}
		k.Annotations[octopodsv1alpha1.RotateAnnotation] = token
		return k8sClient.Patch(ctx, k, patch)
	}, issueTimeout, pollEvery).Should(Succeed())
}

// echoed is what the echo upstream saw.
type echoed struct {
	Headers http.Header `json:"headers"`
}

// call sends a request through the auth proxy; key "" sends no header.
func call(key string) (int, echoed, string) {
	return request(http.MethodGet, "/v1/messages", key, nil)
}

// request sends method path through the auth proxy with key ("": none)
// and header, and decodes what the echo upstream saw of an admitted one.
func request(method, path, key string, header http.Header) (int, echoed, string) {
	req, _ := http.NewRequest(method, "http://"+env.ProxyAddress+path, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	if key != "" {
		req.Header.Set("X-Octopods-Auth", key)
	}
	res, err := httpClient.Do(req)
	ExpectWithOffset(2, err).NotTo(HaveOccurred())
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	var e echoed
	if res.StatusCode == http.StatusOK {
		ExpectWithOffset(2, json.Unmarshal(body, &e)).To(Succeed())
	}
	return res.StatusCode, e, string(body)
}

func status(key string) int {
	code, _, _ := call(key)
	return code
}

func clientNegotiator() runtime.NegotiatedSerializer {
	s := runtime.NewScheme()
	utilruntime.Must(metav1.AddMetaToScheme(s))
	metav1.AddToGroupVersion(s, metav1.SchemeGroupVersion)
	return serializer.NewCodecFactory(s).WithoutConversion()
}

func metav1ListOptions() metav1.ListOptions {
	return metav1.ListOptions{FieldSelector: "type=" + octopodsv1alpha1.SecretType}
}
