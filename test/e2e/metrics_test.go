//go:build e2e

package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
)

var _ = Describe("Manager metrics", func() {
	It("are served over HTTPS only to callers allowed to read /metrics", func() {
		data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "metrics_reader_role.yaml"))
		Expect(err).NotTo(HaveOccurred())
		applyYAML(data, false, func(schema.GroupVersionKind) bool { return false })

		ns := newNamespace()
		cs, err := kubernetes.NewForConfig(env.Config)
		Expect(err).NotTo(HaveOccurred())
		token := func(sa string) string {
			_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			return tr.Status.Token
		}
		prometheus, stranger := token("prometheus"), token("stranger")
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "prometheus-" + ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "prometheus"}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		// The certificate is the manager's own self-signed one, as in a cluster.
		insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed by design
		scrape := func(token string) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, "https://"+env.ManagerMetricsAddress+"/metrics", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := insecure.Do(req)
			if err != nil {
				// The metrics listener may still be starting (after the crash
				// spec restarted the manager): answer "no status" and retry.
				return 0, err.Error()
			}
			defer func() { _ = res.Body.Close() }()
			body, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(body)
		}
		Eventually(func() int { code, _ := scrape(prometheus); return code }, issueTimeout, 200*time.Millisecond).Should(Equal(http.StatusOK))
		_, body := scrape(prometheus)
		Expect(body).To(ContainSubstring("controller_runtime_reconcile_total"))
		for _, prefix := range []string{"opk_", "opc_", "opw_"} {
			Expect(strings.Contains(body, prefix)).To(BeFalse(), "no key of any type in metrics")
		}
		code, _ := scrape(stranger)
		Expect(code).To(Equal(http.StatusForbidden))
		code, _ = scrape("")
		Expect(code).To(Equal(http.StatusUnauthorized))
	})
})
