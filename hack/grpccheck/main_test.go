package main

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/authproxy"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// The try-it command against a real gRPC server of the proxy.
func TestGRPCCheckTriesThePort(t *testing.T) {
	key, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ix := keyindex.New()
	ix.Set(keyindex.Keys{Namespace: "default", Name: "acme", Workspace: "acme", Current: apikey.DigestOf(key), HasCurrent: true})
	h := authproxy.NewHandler(ix, func() bool { return true }, authproxy.NewMetrics(ix, func() time.Duration { return 0 }, false),
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	gs, hs := authproxy.NewGRPCServer(h)
	hs.SetServingStatus("envoy.service.auth.v3.Authorization", healthpb.HealthCheckResponse_SERVING)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(l) }()
	defer gs.Stop()

	var out strings.Builder
	if err := run(&out, l.Addr().String(), key, "/v1/messages"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"health: SERVING", "check: OK", "set X-Octopods-Workspace: acme", "remove: [x-octopods-auth]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(&out, l.Addr().String(), "", "/v1/messages"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `check: Unauthenticated, HTTP 401 {"error":"missing_key"}`) {
		t.Errorf("without a key:\n%s", out.String())
	}
}
