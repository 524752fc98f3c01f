package authproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/octopods/octopods-operator/internal/keyindex"
	"github.com/octopods/octopods-operator/internal/scope"
	"github.com/octopods/octopods-operator/internal/throttle"
)

// Server limits: a proxy in front of an API must not be held open or fed
// unbounded headers by a slow or hostile client.
const (
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds a whole request, body included: far above any
	// API call's upload, it only ends a body trickled in to hold a
	// connection (a refused request's body is never read at all).
	readTimeout     = 5 * time.Minute
	idleTimeout     = 120 * time.Second
	maxHeaderBytes  = 64 << 10
	shutdownTimeout = 25 * time.Second
)

// Config is what the auth-proxy flags set.
type Config struct {
	ListenAddress string
	Upstream      string // empty: forward-auth mode
	// GRPCAddress serves Envoy's ext_authz Check and gRPC health; empty: off.
	GRPCAddress string
	// GRPCMaxReceiveMessageBytes bounds one Check request (0: the default,
	// DefaultGRPCMaxReceiveMessageBytes).
	GRPCMaxReceiveMessageBytes int
	// GRPCClientCAFile, when set, makes the gRPC port require a client
	// certificate signed by one of its CAs (Envoy's ext_authz TLS).
	GRPCClientCAFile string
	Namespaces       []string
	// SlicesBuiltMarker is the KeyDigestSlice the manager writes once the
	// slices are built; the proxy is not ready before it exists (empty
	// name: no wait).
	SlicesBuiltMarker types.NamespacedName
	// LastUsedWritesPerSecond bounds each flush's usage writes (0: none).
	LastUsedWritesPerSecond float64
	HealthProbeAddress      string
	MetricsAddress          string
	TLSCertFile             string
	TLSKeyFile              string
	// TLSCheckInterval is how often the certificate files are checked for
	// a renewal; zero means DefaultCertCheckInterval.
	TLSCheckInterval      time.Duration
	LastUsedFlushInterval time.Duration
	// LastUsedRefreshInterval coarsens lastUsedTime of keys in constant use
	// (0: DefaultLastUsedRefreshInterval; negative: every flush).
	LastUsedRefreshInterval time.Duration
	// ListPageSize is the KeyDigestSlices per list request (0: default).
	ListPageSize int64
	// MetricsPerKey adds a series per key ID to the per-workspace ones.
	MetricsPerKey bool
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// in the refusal log (--trusted-proxy-cidrs); none by default.
	TrustedProxies []netip.Prefix
	// ShutdownDelay keeps serving, with /readyz failing, so load balancers
	// stop sending traffic before the listener closes.
	ShutdownDelay time.Duration
	// MaxKeyStaleness: once the view of published keys has not been
	// confirmed for this long, /readyz fails and gRPC health says
	// NOT_SERVING (requests that still arrive are answered from the last
	// keys known). 0: DefaultMaxKeyStaleness; negative: never.
	MaxKeyStaleness time.Duration
	// SecretScanningAddress serves GitHub's secret scanning partner reports
	// (POST /secret-scanning); empty: off. SecretScanningPublicKeysFile is
	// GitHub's public keys document, reloaded when it changes.
	SecretScanningAddress        string
	SecretScanningPublicKeysFile string
	// Throttle answers 429 to a source after too many refused attempts
	// (Failures 0: off).
	Throttle throttle.Config
	// PeersService, with PeersNamespace, is the proxy's own Service: rate
	// limits are shared among its ready endpoints (Peers). Empty: each
	// replica enforces the whole limit.
	PeersService, PeersNamespace string
	// ScopeRulesFile (--scope-rules) replaces the built-in scope rules,
	// which mirror Octopods' API; empty: the built-in ones.
	ScopeRulesFile string
}

// idleBucketSweep is how often the rate-limit buckets of objects not
// limited right now are dropped: memory follows the objects in use.
const idleBucketSweep = time.Minute

// DefaultMaxKeyStaleness is how long a proxy may go without confirming its
// view before it reports itself not ready: past it, a revoked key may still
// be admitted and a new one refused, and the platform must know. Well above
// a watch's reconnects and an API server's rolling restart.
const DefaultMaxKeyStaleness = 5 * time.Minute

// ready: synced, not stopping, and its view confirmed within the bound.
func (p *Proxy) ready() (bool, string) {
	switch {
	case p.stopping.Load():
		return false, "shutting down"
	case !p.Source.Synced():
		return false, "published keys not synced"
	case p.cfg.MaxKeyStaleness > 0 && p.Source.Staleness() > p.cfg.MaxKeyStaleness:
		return false, fmt.Sprintf("published keys not confirmed with the API server for %s (over --max-key-staleness %s)", p.Source.Staleness().Round(time.Second), p.cfg.MaxKeyStaleness)
	}
	return true, ""
}

// Proxy is the running auth proxy: traffic, probe and metrics servers, the
// key Source and the lastUsedTime flusher.
type Proxy struct {
	cfg      Config
	Index    *keyindex.Index
	Source   *Source
	Metrics  *Metrics
	flusher  *LastUsedFlusher
	handler  *Handler
	cert     *certReloader // nil without TLS
	clientCA *caReloader   // nil without --grpc-client-ca-file
	log      *slog.Logger
	stopping atomic.Bool

	traffic, probes, metrics net.Listener
	grpc                     net.Listener // nil when --grpc-bind-address is empty
	// scanning receives leak reports; nil when --secret-scanning-bind-address is empty.
	scanning       net.Listener
	secretScanning *SecretScanning
	peers          *Peers // nil without PeersService
}

// New builds a proxy and binds its listeners, so that Addr is known before
// Run (":0" picks free ports).
func New(cfg Config, restCfg *rest.Config, log *slog.Logger) (*Proxy, error) {
	octopods, err := NewOctopodsRESTClient(restCfg)
	if err != nil {
		return nil, err
	}
	if cfg.LastUsedFlushInterval <= 0 {
		cfg.LastUsedFlushInterval = DefaultLastUsedFlushInterval
	}
	if cfg.MaxKeyStaleness == 0 {
		cfg.MaxKeyStaleness = DefaultMaxKeyStaleness
	}
	p := &Proxy{cfg: cfg, Index: keyindex.New(), log: log}
	p.Index.OnShared = func(first, second keyindex.Identity, keyID string) {
		log.Warn("two WorkspaceAPIKeys publish the same key: it is refused for both until one of them stops publishing it",
			"key_id", keyID, "first", first.Namespace+"/"+first.Workspace, "second", second.Namespace+"/"+second.Workspace)
	}
	p.Source = NewSource(p.Index, NewSlicesClient(octopods), cfg.Namespaces, log)
	p.Source.Marker = cfg.SlicesBuiltMarker
	if cfg.ListPageSize > 0 {
		p.Source.PageSize = cfg.ListPageSize
	}
	p.Metrics = NewMetrics(p.Index, p.Source.Staleness, cfg.MetricsPerKey)
	refresh := cfg.LastUsedRefreshInterval
	if refresh == 0 {
		refresh = DefaultLastUsedRefreshInterval
	}
	p.flusher = &LastUsedFlusher{Index: p.Index, Client: octopods, Interval: cfg.LastUsedFlushInterval, Refresh: refresh, MaxWritesPerSecond: cfg.LastUsedWritesPerSecond, Metrics: p.Metrics, Log: log}

	var upstream *url.URL
	if cfg.Upstream != "" {
		if upstream, err = url.Parse(cfg.Upstream); err != nil || upstream.Scheme == "" || upstream.Host == "" {
			return nil, fmt.Errorf("--upstream %q is not an absolute URL", cfg.Upstream)
		}
	}
	p.handler = NewHandler(p.Index, p.Source.Synced, p.Metrics, log, upstream, UpstreamTransport())
	if cfg.ScopeRulesFile != "" {
		data, err := os.ReadFile(cfg.ScopeRulesFile)
		if err != nil {
			return nil, fmt.Errorf("--scope-rules: %w", err)
		}
		if p.handler.Scopes, err = scope.Parse(data); err != nil {
			return nil, fmt.Errorf("--scope-rules %s: %w", cfg.ScopeRulesFile, err)
		}
	}
	p.handler.SetTrustedProxies(cfg.TrustedProxies)
	cfg.Throttle.Exempt = append(cfg.Throttle.Exempt, cfg.TrustedProxies...) // a load balancer is never the guesser
	p.handler.Throttle = throttle.New(cfg.Throttle)
	if cfg.PeersService != "" {
		discovery, err := NewDiscoveryRESTClient(restCfg)
		if err != nil {
			return nil, err
		}
		p.peers = &Peers{Index: p.Index, Client: discovery, Namespace: cfg.PeersNamespace, Service: cfg.PeersService, Log: log}
	}
	if err := p.loadFiles(octopods); err != nil {
		return nil, err
	}

	for _, l := range []struct {
		flag, addr string
		into       *net.Listener
	}{{"--listen-address", cfg.ListenAddress, &p.traffic}, {"--health-probe-bind-address", cfg.HealthProbeAddress, &p.probes},
		{"--metrics-bind-address", cfg.MetricsAddress, &p.metrics}, {"--grpc-bind-address", cfg.GRPCAddress, &p.grpc},
		{"--secret-scanning-bind-address", cfg.SecretScanningAddress, &p.scanning}} {
		if l.addr == "" && (l.into == &p.grpc || l.into == &p.scanning) {
			continue
		}
		if *l.into, err = net.Listen("tcp", l.addr); err != nil {
			p.closeListeners()
			return nil, fmt.Errorf("%s %q: cannot listen there (%w); give a free host:port such as 127.0.0.1:9001, or :9001", l.flag, l.addr, err)
		}
	}
	return p, nil
}

// loadFiles loads the certificates and keys that the flags name; each is
// reloaded when it changes.
func (p *Proxy) loadFiles(octopods rest.Interface) error {
	var err error
	if p.cfg.TLSCheckInterval <= 0 {
		// Also how often the secret scanning public keys are checked.
		p.cfg.TLSCheckInterval = DefaultCertCheckInterval
	}
	if p.cfg.TLSCertFile != "" || p.cfg.TLSKeyFile != "" {
		if p.cert, err = newCertReloader(p.cfg.TLSCertFile, p.cfg.TLSKeyFile, p.log); err != nil {
			return err
		}
	}
	if p.cfg.GRPCClientCAFile != "" {
		if p.cert == nil || p.cfg.GRPCAddress == "" {
			return errors.New("--grpc-client-ca-file needs --grpc-bind-address, --tls-cert-file and --tls-private-key-file: client certificates are checked in TLS")
		}
		if p.clientCA, err = newCAReloader(p.cfg.GRPCClientCAFile, p.log); err != nil {
			return fmt.Errorf("--grpc-client-ca-file: %w", err)
		}
	}

	if p.cfg.SecretScanningAddress != "" {
		if p.cfg.SecretScanningPublicKeysFile == "" {
			return errNoPublicKeys
		}
		keys, err := NewPublicKeysReloader(p.cfg.SecretScanningPublicKeysFile, p.log)
		if err != nil {
			return fmt.Errorf("--secret-scanning-public-keys-file: %w", err)
		}
		p.secretScanning = &SecretScanning{Index: p.Index, Client: octopods, Keys: keys, Metrics: p.Metrics, Log: p.log, now: time.Now}
	}

	return nil
}

// UpstreamTransport keeps enough idle connections to the upstream for
// sustained load; http.DefaultTransport keeps 2 per host.
func UpstreamTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	return t
}

// Addr is the traffic listener's address.
func (p *Proxy) Addr() string { return p.traffic.Addr().String() }

// ProbeAddr is the health probe listener's address.
func (p *Proxy) ProbeAddr() string { return p.probes.Addr().String() }

// MetricsAddr is the metrics listener's address.
func (p *Proxy) MetricsAddr() string { return p.metrics.Addr().String() }

// SecretScanningAddr is the leak report listener's address ("" when off).
func (p *Proxy) SecretScanningAddr() string {
	if p.scanning == nil {
		return ""
	}
	return p.scanning.Addr().String()
}

// GRPCAddr is the gRPC listener's address ("" when off).
func (p *Proxy) GRPCAddr() string {
	if p.grpc == nil {
		return ""
	}
	return p.grpc.Addr().String()
}

// Run serves until ctx ends, then drains: readiness fails first, in-flight
// requests finish, and pending lastUsedTime writes are flushed.
func (p *Proxy) Run(ctx context.Context) error {
	sourceCtx, stopSource := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSource()
	p.Source.Run(sourceCtx)
	flushDone := make(chan struct{})
	go func() { defer close(flushDone); p.flusher.Run(sourceCtx) }()
	go p.handler.refusals.run(sourceCtx)
	go every(sourceCtx, idleBucketSweep, func() { p.Index.DropIdleBuckets(time.Now()) })
	if p.peers != nil {
		go p.peers.Run(sourceCtx)
	}

	errs := make(chan error, 6) // one per server
	servers := p.startServers(sourceCtx, errs)
	var grpcServer *grpcServing
	if p.grpc != nil {
		grpcServer = p.serveGRPC(sourceCtx, errs)
	}
	p.log.Info("auth proxy started", "address", p.Addr(), "grpcAddress", p.GRPCAddr(), "secretScanningAddress", p.SecretScanningAddr(), "mode", p.mode(), "namespaces", p.cfg.Namespaces)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	p.stopping.Store(true)
	if runErr == nil && p.cfg.ShutdownDelay > 0 {
		time.Sleep(p.cfg.ShutdownDelay)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shutdownCtx)
	}
	grpcServer.stop(shutdownCtx)
	stopSource()
	<-flushDone
	p.log.Info("auth proxy stopped")
	return runErr
}

// startServers serves the HTTP listeners (traffic, probes, metrics, and
// the secret scanning endpoint when on); a server's failure goes to errs.
func (p *Proxy) startServers(ctx context.Context, errs chan<- error) []*http.Server {
	probeMux, metricsMux := p.probeMux(), http.NewServeMux()
	metricsMux.Handle("/metrics", promhttp.HandlerFor(p.Metrics.Registry, promhttp.HandlerOpts{}))

	servers := []*http.Server{
		NewHTTPServer(p.handler, p.log), NewHTTPServer(probeMux, p.log), NewHTTPServer(metricsMux, p.log),
	}
	serve := func(s *http.Server, l net.Listener) {
		var err error
		if s.TLSConfig != nil {
			err = s.ServeTLS(l, "", "") // the certificate comes from GetCertificate
		} else {
			err = s.Serve(l)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errs <- err
		}
	}
	if p.cert != nil {
		servers[0].TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCertificate(p.cert)}
		go p.cert.run(ctx, p.cfg.TLSCheckInterval)
	}
	if p.clientCA != nil {
		go p.clientCA.run(ctx, p.cfg.TLSCheckInterval)
	}
	go serve(servers[0], p.traffic)
	go serve(servers[1], p.probes)
	go serve(servers[2], p.metrics)
	if p.scanning != nil {
		// Its own server: the internet-facing endpoint shares nothing with
		// the traffic listener but the index and the API client.
		scanning := NewHTTPServer(p.secretScanning, p.log)
		servers = append(servers, scanning)
		go p.secretScanning.Keys.run(ctx, p.cfg.TLSCheckInterval)
		go serve(scanning, p.scanning)
	}
	return servers
}

// probeMux serves /healthz and /readyz.
func (p *Proxy) probeMux() *http.ServeMux {
	probeMux := http.NewServeMux()
	probeMux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	probeMux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := p.ready(); !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	return probeMux
}

func (p *Proxy) mode() string {
	if p.cfg.Upstream == "" {
		return "forward-auth"
	}
	return "reverse-proxy"
}

func (p *Proxy) closeListeners() {
	for _, l := range []net.Listener{p.traffic, p.probes, p.metrics, p.grpc, p.scanning} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// NewHTTPServer is an http.Server with the proxy's timeouts and limits.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
