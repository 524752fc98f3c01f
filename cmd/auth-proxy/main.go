// Command auth-proxy admits or refuses each request by its X-Octopods-Auth
// header, checked against the key digests the operator publishes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"

	"github.com/octopods/octopods-operator/internal/authproxy"
	"github.com/octopods/octopods-operator/internal/clientaddr"
	"github.com/octopods/octopods-operator/internal/keyslice"
	"github.com/octopods/octopods-operator/internal/throttle"
)

// stringList is a repeatable flag (--namespace, --trusted-proxy-cidrs).
type stringList []string

func (n *stringList) String() string     { return strings.Join(*n, ",") }
func (n *stringList) Set(v string) error { *n = append(*n, v); return nil }

func main() {
	var cfg authproxy.Config
	var ns, trusted, exempt stringList
	var qps float64
	var kubeconfig, slicesMarker string
	var burst int
	flag.StringVar(&cfg.ListenAddress, "listen-address", ":8080", "Address for proxied (or forward-auth) traffic.")
	flag.StringVar(&cfg.Upstream, "upstream", "", "URL to forward admitted requests to; empty runs in forward-auth mode.")
	flag.Var(&ns, "namespace", "Namespace whose keys (its KeyDigestSlices) are followed; repeatable; default: every namespace.")
	flag.StringVar(&cfg.GRPCAddress, "grpc-bind-address", "", "Address of Envoy's ext_authz gRPC service (envoy.service.auth.v3.Authorization) and gRPC health; empty: off.")
	flag.IntVar(&cfg.GRPCMaxReceiveMessageBytes, "grpc-max-receive-message-bytes", authproxy.DefaultGRPCMaxReceiveMessageBytes, "Largest Check request accepted on --grpc-bind-address, in bytes; raise it when Envoy forwards request bodies (with_request_body).")
	flag.StringVar(&cfg.ScopeRulesFile, "scope-rules", "", "YAML file of scope rules (which key types each path prefix takes) replacing the built-in ones, which mirror Octopods' API: /api/v1/whatsapp/ WhatsApp keys; /api/v1/sms/, /vbm/, /telegram/ workspace keys and channel keys of that type; every other path workspace keys. See docs/auth-proxy.md.")
	flag.StringVar(&cfg.GRPCClientCAFile, "grpc-client-ca-file", "", "PEM CA bundle; when set, the gRPC port requires a client certificate signed by it (Envoy's ext_authz with TLS). Needs --tls-cert-file. Reloaded when it changes.")
	flag.StringVar(&cfg.HealthProbeAddress, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	flag.StringVar(&cfg.MetricsAddress, "metrics-bind-address", ":8082", "Address of the Prometheus /metrics endpoint.")
	flag.StringVar(&cfg.TLSCertFile, "tls-cert-file", "", "Certificate for HTTPS on --listen-address (optional).")
	flag.StringVar(&cfg.TLSKeyFile, "tls-private-key-file", "", "Private key for HTTPS on --listen-address (optional).")
	flag.BoolVar(&cfg.MetricsPerKey, "metrics-per-key", false, "Also export octopods_auth_proxy_allowed_requests_by_key_total{namespace,workspace,key_id}: up to two more series per workspace, and a new one at each rotation.")
	flag.DurationVar(&cfg.MaxKeyStaleness, "max-key-staleness", authproxy.DefaultMaxKeyStaleness, "Once the published keys have not been confirmed with the API server for this long (a lost API server, or a list or watch that keeps failing), /readyz fails and gRPC health says NOT_SERVING; requests that still arrive are answered from the last keys known. Negative: never.")
	flag.DurationVar(&cfg.ShutdownDelay, "shutdown-delay", 0, "On SIGTERM, keep serving this long with /readyz failing before draining.")
	limitFlags(&cfg, &exempt, &trusted)
	keyFlags(&cfg, &slicesMarker)
	flag.StringVar(&kubeconfig, "kubeconfig", "", "Kubeconfig file; default $KUBECONFIG, ~/.kube/config, or the in-cluster service account.")
	flag.Float64Var(&qps, "kube-api-qps", 20, "Client-side requests per second to the API server.")
	flag.IntVar(&burst, "kube-api-burst", 40, "Client-side burst of requests to the API server.")
	flag.Parse()
	cfg.Namespaces = ns

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var err error
	if cfg.SlicesBuiltMarker, err = parseSlicesMarker(slicesMarker); err != nil {
		fail(log, "bad flag", err)
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		fail(log, "--tls-cert-file and --tls-private-key-file go together", nil)
	}
	if cfg.TrustedProxies, err = authproxy.ParseCIDRs(trusted); err != nil {
		fail(log, "bad flag", err)
	}
	if err = limitConfig(&cfg, exempt); err != nil {
		fail(log, "bad flag", err)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	restCfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		fail(log, "no Kubernetes configuration", err)
	}
	restCfg.QPS, restCfg.Burst = float32(qps), burst
	proxy, err := authproxy.New(cfg, restCfg, log)
	if err != nil {
		fail(log, "cannot start", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := proxy.Run(ctx); err != nil {
		fail(log, "stopped with an error", err)
	}
}

// limitFlags are the flags of where clients come from, the failed-attempt
// throttle, rate limits across replicas and leak reports.
func limitFlags(cfg *authproxy.Config, exempt, trusted *stringList) {
	flag.Var(trusted, "trusted-proxy-cidrs", "CIDRs of load balancers in front of the proxy whose X-Forwarded-For names the client (for spec.allowedSourceRanges, X-Real-Ip and the refusal log); repeatable or comma-separated; default none.")
	flag.StringVar(&cfg.SecretScanningPublicKeysFile, "secret-scanning-public-keys-file", "", "GitHub's public keys for secret scanning, as served at https://api.github.com/meta/public_keys/secret_scanning ({\"public_keys\":[{\"key_identifier\":…,\"key\":PEM}]}); a report must be signed by one of them. Reloaded when it changes.")
	flag.StringVar(&cfg.SecretScanningAddress, "secret-scanning-bind-address", "", "Address of the GitHub secret scanning partner endpoint (POST /secret-scanning): a signed report of a leaked key is recorded in its key object, and the operator rotates the key. Internet-facing: expose only this port to GitHub. Empty: off. Needs --secret-scanning-public-keys-file.")
	flag.IntVar(&cfg.Throttle.Failures, "throttle-failures", throttle.DefaultFailures, "Refused attempts (invalid or revoked keys, repeated headers) from one source (an IPv4 address, an IPv6 /64) within --throttle-window after which it gets 429 with Retry-After, before any key lookup, until the window ends. Successes never count. 0: off.")
	flag.DurationVar(&cfg.Throttle.Window, "throttle-window", throttle.DefaultWindow, "The window of --throttle-failures.")
	flag.IntVar(&cfg.Throttle.MaxSources, "throttle-max-sources", throttle.DefaultMaxSources, "Sources remembered by the throttle; the least recently failing goes first.")
	flag.BoolVar(&cfg.Throttle.Private, "throttle-private-sources", false, "Also throttle private, loopback and link-local sources. Off by default: without --trusted-proxy-cidrs such a source is usually a gateway or node standing for every client behind it.")
	flag.Var(exempt, "throttle-exempt-cidrs", "CIDRs never throttled (a NAT or CI egress shared by many clients); repeatable or comma-separated. --trusted-proxy-cidrs are exempt too.")
	flag.StringVar(&cfg.PeersService, "rate-limit-peers-service", "", "The proxy's own Service: each key object's spec.rateLimit is divided among its ready endpoints (needs POD_NAMESPACE and list on endpointslices there). Empty: each replica enforces the whole limit.")
}

// limitConfig reads what limitFlags cannot take as they are.
func limitConfig(cfg *authproxy.Config, exempt stringList) error {
	var err error
	if cfg.Throttle.Exempt, err = clientaddr.Parse("--throttle-exempt-cidrs", exempt); err != nil {
		return err
	}
	if cfg.PeersNamespace = os.Getenv("POD_NAMESPACE"); cfg.PeersService != "" && cfg.PeersNamespace == "" {
		return errors.New("--rate-limit-peers-service needs POD_NAMESPACE, the proxy's namespace (the Downward API's metadata.namespace)")
	}
	return nil
}

func fail(log *slog.Logger, msg string, err error) {
	if err != nil {
		msg = fmt.Sprintf("%s: %v", msg, err)
	}
	log.Error(msg)
	os.Exit(1)
}

// keyFlags are the flags of how the proxy reads keys and records their use.
func keyFlags(cfg *authproxy.Config, slicesMarker *string) {
	flag.Int64Var(&cfg.ListPageSize, "list-page-size", authproxy.DefaultListPageSize, fmt.Sprintf("KeyDigestSlices per list request when (re)syncing (each holds up to %d keys); bigger pages sync faster, at the cost of a bigger transient allocation.", keyslice.KeysPerSlice))
	flag.StringVar(slicesMarker, "slices-built-marker", defaultSlicesMarker(), "NAMESPACE/NAME of the KeyDigestSlice the manager writes once it has built every namespace's slices; the proxy reports ready only after it exists, so an upgrade from a release without slices refuses no key (default: $POD_NAMESPACE/octopods-slices-built; empty: no wait).")
	flag.DurationVar(&cfg.LastUsedRefreshInterval, "last-used-refresh-interval", authproxy.DefaultLastUsedRefreshInterval, "A key in constant use writes its lastUsedTime again only when the recorded one is this old (the first use after that long is written at the next flush); bounds status writes at scale. Negative: every flush.")
	flag.Float64Var(&cfg.LastUsedWritesPerSecond, "last-used-max-writes-per-second", authproxy.DefaultLastUsedWritesPerSecond, "Bounds this replica's usage writes (lastUsedTime and the sightings) to this rate, averaged over a flush; what is left waits for the next flush, sightings first. 0: no bound.")
	flag.DurationVar(&cfg.LastUsedFlushInterval, "last-used-flush-interval", authproxy.DefaultLastUsedFlushInterval, "How often used keys' status.lastUsedTime is written.")
}

// defaultSlicesMarker is the marker in the proxy's own namespace, where the
// chart runs the manager too ("" out of a pod: no wait).
func defaultSlicesMarker() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns + "/" + octopodsv1alpha1.SlicesBuiltName
	}
	return ""
}

// parseSlicesMarker reads --slices-built-marker ("": none).
func parseSlicesMarker(v string) (types.NamespacedName, error) {
	if v == "" {
		return types.NamespacedName{}, nil
	}
	namespace, name, ok := strings.Cut(v, "/")
	if !ok || namespace == "" || name == "" {
		return types.NamespacedName{}, fmt.Errorf("--slices-built-marker %q: use NAMESPACE/NAME, for example octopods-system/%s", v, octopodsv1alpha1.SlicesBuiltName)
	}
	return types.NamespacedName{Namespace: namespace, Name: name}, nil
}
