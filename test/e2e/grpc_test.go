//go:build e2e

package e2e

import (
	"context"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

var _ = Describe("Envoy's gRPC ext_authz on the local system", func() {
	It("admits a key with the workspace as headers and metadata, and refuses an unknown one", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, testutil.Workspace(ns, "acme"))).To(Succeed())
		Expect(k8sClient.Create(ctx, testutil.BareAPIKey(ns, "acme"))).To(Succeed())
		key := waitIssued(ns, "acme")

		conn, err := grpc.NewClient(env.ProxyGRPCAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = conn.Close() }()
		check := func(key string) *authv3.CheckResponse {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			res, err := authv3.NewAuthorizationClient(conn).Check(cctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Source:  &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "203.0.113.5"}}}},
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/messages", Headers: map[string]string{"x-octopods-auth": key}}},
			}})
			Expect(err).NotTo(HaveOccurred())
			return res
		}
		Eventually(func() int32 { return check(key).GetStatus().GetCode() }, propagationLimit, pollEvery).Should(BeEquivalentTo(codes.OK))
		res := check(key)
		Expect(res.GetDynamicMetadata().GetFields()["workspace"].GetStringValue()).To(Equal("acme"))
		Expect(res.GetOkResponse().GetHeadersToRemove()).To(ContainElement("x-octopods-auth"))
		unknown, err := apikey.Generate()
		Expect(err).NotTo(HaveOccurred())
		Expect(check(unknown).GetDeniedResponse().GetBody()).To(MatchJSON(`{"error":"invalid_key"}`))
	})
})
