//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// callPath POSTs to path through the auth proxy with key, and a forged
// X-Octopods-Channel that must never reach the upstream.
func callPath(key, path string) (int, echoed, string) {
	return request(http.MethodPost, path, key, http.Header{"X-Octopods-Channel": {"forged"}})
}

// The three key types through run-local's real binaries: the manager
// issues each through the admission webhooks, the auth proxy admits each on
// its own endpoint family only, with its identity, over HTTP and gRPC, and
// answers a rotated key with Octopods' DEPRECATED_API_KEY.
var _ = Describe("Three key types on the local system", func() {
	It("admits each key on its own family, refuses it elsewhere, and answers a rotated channel key DEPRECATED_API_KEY", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.Channel(ns, "sms-1", "acme", octopodsv1alpha1.ChannelSMS))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.WhatsAppBusinessAccount(ns, "waba", "acme"))).To(Succeed())
		// What `kubectl create` with a name sends: the webhooks fill the rest.
		channelKey := &octopodsv1alpha1.ChannelAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sms-1"}}
		whatsAppKey := &octopodsv1alpha1.WhatsAppAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "waba"}}
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, channelKey)).To(Succeed())
		Expect(k8sClient.Create(ctx, whatsAppKey)).To(Succeed())
		workspace := waitIssued(ns, "acme")
		sms := testutil.IssuedKeyOf(k8sClient, channelKey, issueTimeout, pollEvery)
		wa := testutil.IssuedKeyOf(k8sClient, whatsAppKey, issueTimeout, pollEvery)
		Expect(sms).To(HavePrefix("opc_"))
		Expect(wa).To(HavePrefix("opw_"))
		Expect(channelKey.Spec.SecretName).To(Equal("sms-1-channel-api-key"), "defaulted by the webhook")
		Expect(metav1.GetControllerOf(channelKey).Kind).To(Equal("Channel"), "owned from its creation")

		type want struct {
			key, path string
			status    int
			headers   map[string]string
		}
		smsIdentity := map[string]string{"X-Octopods-Key-Type": "channel", "X-Octopods-Channel": "sms-1", "X-Octopods-Channel-Type": "SMS",
			"X-Octopods-Workspace": "acme", "X-Octopods-Workspace-Namespace": ns, "X-Octopods-Key-Id": apikey.ID(sms)}
		waIdentity := map[string]string{"X-Octopods-Key-Type": "whatsapp", "X-Octopods-Whatsapp-Business-Account": "waba", "X-Octopods-Channel": "",
			"X-Octopods-Workspace": "acme", "X-Octopods-Workspace-Namespace": ns, "X-Octopods-Key-Id": apikey.ID(wa)}
		wsIdentity := map[string]string{"X-Octopods-Key-Type": "workspace", "X-Octopods-Channel": "", "X-Octopods-Workspace": "acme", "X-Octopods-Key-Id": apikey.ID(workspace)}
		cases := []want{
			{sms, "/api/v1/sms/messages", http.StatusOK, smsIdentity},
			{sms, "/api/v1/whatsapp/messages", http.StatusForbidden, nil},
			{sms, "/api/v1/sms/..%2Fwhatsapp/messages", http.StatusForbidden, nil},
			{wa, "/api/v1/whatsapp/messages", http.StatusOK, waIdentity},
			{wa, "/api/v1/sms/messages", http.StatusForbidden, nil},
			{workspace, "/api/v1/sms/messages", http.StatusOK, wsIdentity},
			{workspace, "/api/v1/whatsapp/messages", http.StatusForbidden, nil},
		}
		for _, c := range cases {
			Eventually(func(g Gomega) {
				code, e, body := callPath(c.key, c.path)
				g.Expect(code).To(Equal(c.status), "%s with a %s key: %s", c.path, c.key[:4], body)
				if c.status == http.StatusForbidden {
					g.Expect(body).To(ContainSubstring(`"error":"key_scope_mismatch"`))
					g.Expect(body).To(ContainSubstring("this path takes a"))
				}
				for name, v := range c.headers {
					g.Expect(e.Headers.Get(name)).To(Equal(v), "upstream's %s", name)
				}
			}, propagationLimit, pollEvery).Should(Succeed())
		}

		// The same decisions through gRPC Check.
		conn, err := grpc.NewClient(env.ProxyGRPCAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = conn.Close() }()
		check := func(key, path string) *authv3.CheckResponse {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			res, err := authv3.NewAuthorizationClient(conn).Check(cctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Source:  &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "203.0.113.5"}}}},
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: path, Headers: map[string]string{"x-octopods-auth": key}}},
			}})
			Expect(err).NotTo(HaveOccurred())
			return res
		}
		for _, c := range cases {
			res := check(c.key, c.path)
			if c.status == http.StatusOK {
				Expect(res.GetStatus().GetCode()).To(BeEquivalentTo(codes.OK), c.path)
				headers := map[string]string{}
				for _, h := range res.GetOkResponse().GetHeaders() {
					headers[http.CanonicalHeaderKey(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
				}
				for name, v := range c.headers {
					Expect(headers[name]).To(Equal(v), "gRPC %s", name)
				}
				Expect(res.GetDynamicMetadata().GetFields()["keyType"].GetStringValue()).To(Equal(c.headers["X-Octopods-Key-Type"]))
				continue
			}
			Expect(int(res.GetDeniedResponse().GetStatus().GetCode())).To(Equal(http.StatusForbidden), c.path)
			Expect(res.GetDeniedResponse().GetBody()).To(ContainSubstring(`"error":"key_scope_mismatch"`))
		}

		// A rotated channel key: DEPRECATED_API_KEY, as Octopods' API answers.
		patch := client.MergeFrom(channelKey.DeepCopy())
		channelKey.Annotations[octopodsv1alpha1.RotateAnnotation] = "LEAK-1" // beside the webhook's stamps
		Expect(k8sClient.Patch(ctx, channelKey, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			code, _, body := callPath(sms, "/api/v1/sms/messages")
			g.Expect(code).To(Equal(http.StatusBadRequest))
			g.Expect(body).To(MatchJSON(`{"error":"DEPRECATED_API_KEY"}`))
		}, propagationLimit, pollEvery).Should(Succeed())
		Expect(check(sms, "/api/v1/sms/messages").GetDeniedResponse().GetStatus().GetCode()).To(BeEquivalentTo(http.StatusBadRequest))
		fresh := testutil.IssuedKeyOf(k8sClient, channelKey, issueTimeout, pollEvery)
		Eventually(func() int { code, _, _ := callPath(fresh, "/api/v1/sms/messages"); return code }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		unknown, err := apikey.GenerateWith(apikey.PrefixChannel)
		Expect(err).NotTo(HaveOccurred())
		code, _, body := callPath(unknown, "/api/v1/sms/messages")
		Expect(code).To(Equal(http.StatusUnauthorized))
		Expect(body).To(MatchJSON(`{"error":"invalid_key"}`))
	})
})
