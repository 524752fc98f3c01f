package authproxy

import (
	"context"
	"crypto/tls"
	"runtime"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// gRPC settings for a fleet of Envoy sidecars, each holding a few long-lived
// HTTP/2 connections with many concurrent Checks.
const (
	grpcMaxConcurrentStreams = 1024
	// Pings keep idle connections through NATs and load balancers, and find
	// dead peers; clients may ping as often as every 10s (Envoy's default
	// keepalive is slower).
	grpcKeepaliveTime    = 30 * time.Second
	grpcKeepaliveTimeout = 10 * time.Second
	grpcMinClientPing    = 10 * time.Second
	// A connection is recycled now and then so that new replicas get load.
	grpcMaxConnectionAge      = 30 * time.Minute
	grpcMaxConnectionAgeGrace = 30 * time.Second
	readyPollInterval         = 100 * time.Millisecond
	// DefaultGRPCMaxReceiveMessageBytes bounds one Check request. Envoy
	// sends the request's headers (at most 60 KiB by default,
	// max_request_headers_kb) and a few attributes; gRPC's own default,
	// 4 MiB, let unauthenticated callers hold megabytes per stream. Users
	// who forward bodies (with_request_body) raise it with the flag.
	DefaultGRPCMaxReceiveMessageBytes = 256 << 10
)

// grpcServing is the running gRPC server; nil when --grpc-bind-address is empty.
type grpcServing struct {
	server *grpc.Server
	health *health.Server
}

// NewGRPCServer is a gRPC server with the proxy's settings, serving the
// handler's ext_authz Check and gRPC health (NOT_SERVING until set).
func NewGRPCServer(h *Handler, extra ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	opts := append([]grpc.ServerOption{
		grpc.MaxConcurrentStreams(grpcMaxConcurrentStreams),
		grpc.MaxRecvMsgSize(DefaultGRPCMaxReceiveMessageBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time: grpcKeepaliveTime, Timeout: grpcKeepaliveTimeout,
			MaxConnectionAge: grpcMaxConnectionAge, MaxConnectionAgeGrace: grpcMaxConnectionAgeGrace,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: grpcMinClientPing, PermitWithoutStream: true}),
		// A fixed pool of stream workers instead of a goroutine per Check.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		grpc.ForceServerCodecV2(newVTCodec()),
	}, extra...)
	server, hs := grpc.NewServer(opts...), health.NewServer()
	authv3.RegisterAuthorizationServer(server, h.ExtAuthz())
	healthpb.RegisterHealthServer(server, hs)
	g := grpcServing{server: server, health: hs}
	g.setServing(healthpb.HealthCheckResponse_NOT_SERVING)
	return server, hs
}

// serveGRPC serves ext_authz Check and gRPC health on p.grpc. Health says
// SERVING only while /readyz would: once the first sync is done, not while
// the view is stale, and NOT_SERVING from shutdown on.
func (p *Proxy) serveGRPC(ctx context.Context, errs chan<- error) *grpcServing {
	var extra []grpc.ServerOption
	if p.cfg.GRPCMaxReceiveMessageBytes > 0 {
		extra = append(extra, grpc.MaxRecvMsgSize(p.cfg.GRPCMaxReceiveMessageBytes))
	}
	if p.cert != nil {
		extra = append(extra, grpc.Creds(credentials.NewTLS(p.grpcTLSConfig())))
	}
	g := &grpcServing{}
	g.server, g.health = NewGRPCServer(p.handler, extra...)
	go func() {
		// Health follows readiness: SERVING once synced, NOT_SERVING while
		// the view is staler than --max-key-staleness.
		serving := false
		for {
			if ok, _ := p.ready(); ok != serving {
				serving = ok
				g.setServing(map[bool]healthpb.HealthCheckResponse_ServingStatus{
					true: healthpb.HealthCheckResponse_SERVING, false: healthpb.HealthCheckResponse_NOT_SERVING}[ok])
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(readyPollInterval):
			}
		}
	}()
	go func() {
		if err := g.server.Serve(p.grpc); err != nil {
			errs <- err
		}
	}()
	return g
}

// grpcTLSConfig serves the proxy's certificate and, with
// --grpc-client-ca-file, admits only clients whose certificate chains to
// the CA file's current content.
func (p *Proxy) grpcTLSConfig() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCertificate(p.cert)}
	if p.clientCA == nil {
		return cfg
	}
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCertificate(p.cert),
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.clientCA.current.Load(), NextProtos: []string{"h2"}}, nil
	}
	return cfg
}

func (g *grpcServing) setServing(status healthpb.HealthCheckResponse_ServingStatus) {
	g.health.SetServingStatus("", status)
	g.health.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, status)
}

// stop drains in-flight Checks until ctx ends, then closes what is left.
func (g *grpcServing) stop(ctx context.Context) {
	if g == nil {
		return
	}
	g.health.Shutdown()
	done := make(chan struct{})
	go func() { g.server.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.server.Stop()
	}
}
