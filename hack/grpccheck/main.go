// Command grpccheck asks the auth proxy's gRPC port what Envoy would: its
// health, then one Check with the key given, and prints the answer. The
// proxy serves no reflection, so grpcurl cannot; this is the way to try it.
//
//	go run ./hack/grpccheck -key "$KEY"                 # 127.0.0.1:9001, as run-local serves it
//	go run ./hack/grpccheck -addr 127.0.0.1:9001 -path /v1/messages -key "$KEY"
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "The proxy's --grpc-bind-address.")
	key := flag.String("key", "", "The X-Octopods-Auth value to send (empty: none).")
	path := flag.String("path", "/v1/messages", "The request path Envoy would report.")
	flag.Parse()
	if err := run(os.Stdout, *addr, *key, *path); err != nil {
		fmt.Fprintln(os.Stderr, "grpccheck:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, addr, key, path string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: authv3.Authorization_ServiceDesc.ServiceName})
	if err != nil {
		return fmt.Errorf("health of %s: %w (is the proxy running with --grpc-bind-address?)", addr, err)
	}
	_, _ = fmt.Fprintln(out, "health:", health.GetStatus())
	headers := map[string]string{}
	if key != "" {
		headers["x-octopods-auth"] = key
	}
	res, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1"}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: path, Headers: headers}},
	}})
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if codes.Code(res.GetStatus().GetCode()) == codes.OK {
		_, _ = fmt.Fprintln(out, "check: OK")
		for _, h := range res.GetOkResponse().GetHeaders() {
			_, _ = fmt.Fprintf(out, "  set %s: %s\n", h.GetHeader().GetKey(), h.GetHeader().GetValue())
		}
		_, _ = fmt.Fprintln(out, "  remove:", res.GetOkResponse().GetHeadersToRemove())
		return nil
	}
	d := res.GetDeniedResponse()
	_, _ = fmt.Fprintf(out, "check: %s, HTTP %d %s", codes.Code(res.GetStatus().GetCode()), d.GetStatus().GetCode(), d.GetBody())
	return nil
}
