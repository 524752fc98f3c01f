// Command manager runs the octopods-operator controllers.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/controllers"
	"github.com/octopods/octopods-operator/internal/logsafe"
	"github.com/octopods/octopods-operator/internal/memlimit"
	"github.com/octopods/octopods-operator/webhook"
)

// Secure metrics ask the API server who the caller is and whether it may read
// /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

func metricsOptions(addr string, secure bool, certDir string) metricsserver.Options {
	// With certDir (a cert-manager Certificate), Prometheus can verify the
	// server; without it, controller-runtime serves a self-signed one.
	o := metricsserver.Options{BindAddress: addr, SecureServing: secure, CertDir: certDir, TLSOpts: []func(*tls.Config){http1Only}}
	if secure {
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return o
}

// http1Only turns HTTP/2 off on the metrics and webhook servers, as
// kubebuilder does by default: HTTP/2 stream resets (CVE-2023-44487) are a
// denial of service, and neither server needs HTTP/2.
func http1Only(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }

func main() {
	var (
		metricsAddr, probeAddr         string
		leaderElect                    bool
		secureMetrics                  bool
		qps                            float64
		burst, concurrency             int
		webhookCertDir, metricsCertDir string
		leaderElectionNS               string
		slicesBuiltNS                  string
		webhookPort                    int
		pprofAddr                      string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus /metrics endpoint; 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve /metrics over HTTPS, only to callers the API server authenticates and authorizes (get on /metrics).")
	flag.StringVar(&metricsCertDir, "metrics-cert-dir", "", "Directory with the metrics server's tls.crt and tls.key, reloaded when renewed (default: a self-signed certificate).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that only one replica reconciles.")
	flag.StringVar(&slicesBuiltNS, "slices-built-namespace", os.Getenv("POD_NAMESPACE"), "Namespace of the KeyDigestSlice marker octopods-slices-built, written once every namespace's slices are built after a start; auth proxies with --slices-built-marker wait for it before reporting ready (default: $POD_NAMESPACE; empty: none).")
	flag.StringVar(&leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's own; required out of cluster).")
	// Measured (e2e, 300 keys): 50/100 and 4 reconciles took 10.4 s,
	// 200/300 and 8 took 5.1 s, of which 4.5 s was the creates themselves.
	// API Priority and Fairness protects the API server beyond this.
	flag.Float64Var(&qps, "kube-api-qps", 200, "Client-side requests per second to the API server; -1: no client-side limit (API Priority and Fairness still applies).")
	flag.IntVar(&burst, "kube-api-burst", 300, "Client-side burst of requests to the API server.")
	flag.IntVar(&concurrency, "max-concurrent-reconciles", 8, "Reconciles run in parallel per controller.")
	flag.StringVar(&webhookCertDir, "webhook-cert-dir", "", "Directory with the webhook server's tls.crt and tls.key (default: controller-runtime's /tmp/k8s-webhook-server/serving-certs). Lets the manager serve webhooks out of cluster.")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Port of the admission webhook server.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address of Go's /debug/pprof endpoints, for profiling (default: off). Never expose it: it has no authentication.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	// No verbosity may log a key: client-go logs Secret bodies at V(8).
	ctrl.SetLogger(logsafe.Capped(zap.New(zap.UseFlagOptions(&zapOpts))))
	setupLog := ctrl.Log.WithName("setup")
	if soft := memlimit.Apply(); soft > 0 {
		setupLog.Info("Go soft memory limit set from the container's memory limit", "bytes", soft, "ratio", memlimit.Ratio)
	}

	scheme := newScheme()
	cfg, err := ctrl.GetConfig()
	if err != nil {
		// One line, not a stack trace: this is what someone trying the
		// operator without a cluster meets first.
		fmt.Fprintln(os.Stderr, "manager: no Kubernetes cluster to connect to: set KUBECONFIG (or --kubeconfig), or run `make run-local` for a local one")
		os.Exit(1)
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	cacheHealth := controllers.NewCacheHealth()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(cacheHealth),
		Controller:              config.Controller{CacheSyncTimeout: controllers.CacheSyncTimeout},
		Metrics:                 metricsOptions(metricsAddr, secureMetrics, metricsCertDir),
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "octopods-operator.octopods.io",
		LeaderElectionNamespace: leaderElectionNS,
		WebhookServer:           ctrlwebhook.NewServer(ctrlwebhook.Options{CertDir: webhookCertDir, Port: webhookPort, TLSOpts: []func(*tls.Config){http1Only}}),
	})
	if err != nil {
		setupLog.Error(err, "unable to create manager")
		os.Exit(1)
	}
	if err := controllers.Setup(mgr, controllers.Options{MaxConcurrentReconciles: concurrency, SlicesBuiltNamespace: slicesBuiltNS}); err != nil {
		setupLog.Error(err, "unable to set up controllers")
		os.Exit(1)
	}
	// As in kubebuilder projects: ENABLE_WEBHOOKS=false runs without them
	// (the controllers re-check every rule that protects data).
	if os.Getenv("ENABLE_WEBHOOKS") != "false" {
		if err := webhook.Setup(mgr); err != nil {
			setupLog.Error(err, "unable to set up webhooks")
			os.Exit(1)
		}
		utilruntime.Must(mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()))
	}
	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))
	// A cache that keeps failing to list or watch (an object it cannot
	// decode, lost RBAC) stops every reconcile of its kind: say so.
	utilruntime.Must(mgr.AddReadyzCheck("cache", cacheHealth.Checker))

	setupLog.Info("starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}

// newScheme knows the built-in kinds and octopods.io's.
func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(octopodsv1alpha1.AddToScheme(scheme))
	return scheme
}
