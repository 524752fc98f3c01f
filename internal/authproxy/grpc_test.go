package authproxy

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
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/octopods/octopods-operator/internal/apikey"
)

// grpcCheck asks a proxy's gRPC ext_authz service, as Envoy would, with a
// real gRPC client (go-control-plane's generated one).
func grpcCheck(p *Proxy, headers map[string]string) *authv3.CheckResponse {
	conn, err := grpc.NewClient(p.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:  &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "198.51.100.4"}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/messages", Headers: headers}},
	}})
	Expect(err).NotTo(HaveOccurred())
	return res
}

func grpcCode(p *Proxy, key string) codes.Code {
	return codes.Code(grpcCheck(p, map[string]string{"x-octopods-auth": key}).GetStatus().GetCode())
}

var _ = Describe("gRPC ext_authz through the real proxy", func() {
	It("admits, refuses, and follows rotation and revocation within 1s", func() {
		ns, key := newNamespace(), newKey()
		wak := publishKey(k8sClient, ns, "acme", key)
		added := timeUntil(func() bool { return grpcCode(forwardProxy, key) == codes.OK }, propagationLimit)

		res := grpcCheck(forwardProxy, map[string]string{"x-octopods-auth": key, "x_octopods_workspace": "victim"})
		ok := res.GetOkResponse()
		Expect(ok).NotTo(BeNil())
		Expect(ok.GetHeadersToRemove()).To(ConsistOf("x-octopods-auth", "x_octopods_workspace"))
		Expect(res.GetDynamicMetadata().GetFields()["workspace"].GetStringValue()).To(Equal("acme"))
		Expect(res.GetDynamicMetadata().GetFields()["namespace"].GetStringValue()).To(Equal(ns))
		Expect(res.GetDynamicMetadata().GetFields()["keyID"].GetStringValue()).To(Equal(apikey.ID(key)))

		refused := grpcCheck(forwardProxy, map[string]string{"x-octopods-auth": key + "," + key})
		Expect(refused.GetDeniedResponse().GetStatus().GetCode()).To(BeEquivalentTo(http.StatusUnauthorized))
		Expect(refused.GetDeniedResponse().GetBody()).To(MatchJSON(`{"error":"invalid_key"}`))
		missing := grpcCheck(forwardProxy, map[string]string{})
		Expect(missing.GetDeniedResponse().GetBody()).To(MatchJSON(`{"error":"missing_key"}`))

		second := newKey()
		republish(wak, second, "", time.Time{})
		rotated := timeUntil(func() bool { return grpcCode(forwardProxy, key) == codes.Unauthenticated }, propagationLimit)
		Expect(grpcCode(forwardProxy, second)).To(Equal(codes.OK))

		Expect(k8sClient.Delete(ctx, wak)).To(Succeed())
		revoked := timeUntil(func() bool { return grpcCode(forwardProxy, second) == codes.Unauthenticated }, propagationLimit)
		figures.Add("gRPC ext_authz propagation: new key admitted %s, rotated-away key refused %s, revoked key refused %s (limit 1s)",
			added.Round(10*time.Microsecond), rotated.Round(10*time.Microsecond), revoked.Round(10*time.Microsecond))
		Expect(counter(forwardProxy, "octopods_auth_proxy_requests_total", "interface", "grpc", "outcome", "allowed")).To(BeNumerically(">=", 2))
	})

	It("counts gRPC admissions in lastUsedTime", func() {
		ns, key := newNamespace(), newKey()
		wak := publishKey(k8sClient, ns, "acme", key)
		Eventually(func() codes.Code { return grpcCode(reverseProxy, key) }, propagationLimit, pollEvery).Should(Equal(codes.OK))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(wak), wak)).To(Succeed())
			g.Expect(wak.Status.LastUsedTime).NotTo(BeNil())
		}, flushDeadline, pollEvery).Should(Succeed())
	})

	It("answers 503 not_ready and NOT_SERVING health before the first sync", func() {
		unreachable := rest.CopyConfig(restCfg)
		unreachable.Host = "https://127.0.0.1:1"
		pctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := startProxy(pctx, unreachable, "")
		res := grpcCheck(p, map[string]string{"x-octopods-auth": newKey()})
		Expect(res.GetStatus().GetCode()).To(BeEquivalentTo(codes.Unavailable))
		Expect(res.GetDeniedResponse().GetStatus().GetCode()).To(BeEquivalentTo(http.StatusServiceUnavailable))
		Expect(res.GetDeniedResponse().GetBody()).To(MatchJSON(`{"error":"not_ready"}`))
		Expect(grpcHealth(p)).To(Equal(healthpb.HealthCheckResponse_NOT_SERVING))
		Expect(grpcHealth(forwardProxy)).To(Equal(healthpb.HealthCheckResponse_SERVING))
	})
})

func grpcHealth(p *Proxy) healthpb.HealthCheckResponse_ServingStatus {
	conn, err := grpc.NewClient(p.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = conn.Close() }()
	res, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: authv3.Authorization_ServiceDesc.ServiceName})
	Expect(err).NotTo(HaveOccurred())
	return res.GetStatus()
}
