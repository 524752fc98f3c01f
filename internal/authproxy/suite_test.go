package authproxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/controllers"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// propagationLimit is the contract: a published change is in force within 1s.
const (
	propagationLimit = time.Second
	syncTimeout      = 20 * time.Second
	flushInterval    = 500 * time.Millisecond
	// flushDeadline bounds the wait for a batched status write: a few
	// flushes, with room for CI running the suite under -race beside
	// others (the batching itself is asserted by counting writes).
	flushDeadline = 20 * flushInterval
	pollEvery     = 5 * time.Millisecond
	// certCheckInterval is short so a certificate renewal shows in a test.
	certCheckInterval = 200 * time.Millisecond
)

var (
	testEnv       *envtest.Environment
	restCfg       *rest.Config
	k8sClient     client.Client
	scheme        = runtime.NewScheme()
	reverseProxy  *Proxy
	forwardProxy  *Proxy
	proxyLogs     = &testutil.SyncBuffer{}
	stopProxies   context.CancelFunc
	proxiesDone   []chan struct{}
	httpClient    = &http.Client{Timeout: 5 * time.Second}
	figures       testutil.Figures
	upstreamClose func()
)

// TestProxySuite runs the real proxy against a real API server; it needs
// KUBEBUILDER_ASSETS (make test sets it).
func TestProxySuite(t *testing.T) { testutil.RunSpecs(t, "Auth Proxy Suite") }

var _ = BeforeSuite(func() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(octopodsv1alpha1.AddToScheme(scheme))
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	restCfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	upstream := echoServer()
	upstreamClose = func() { _ = upstream.Close() }
	var ctx context.Context
	ctx, stopProxies = context.WithCancel(context.Background())
	startSliceWriter(ctx, restCfg)
	reverseProxy = startProxy(ctx, restCfg, upstream.Addr)
	forwardProxy = startProxy(ctx, restCfg, "")
	for _, p := range []*Proxy{reverseProxy, forwardProxy} {
		Eventually(func() int { return get(p, "http://"+p.ProbeAddr()+"/readyz", nil).StatusCode }, syncTimeout, pollEvery).Should(Equal(http.StatusOK))
	}
	// The specs time propagation (≤ 1 s): first let the slice writer
	// start, its cache sync and first sync done, with a key of its own.
	canary := newKey()
	publishKey(k8sClient, newNamespace(), "canary", canary)
	for _, p := range []*Proxy{reverseProxy, forwardProxy} {
		Eventually(func() int { return status(p, canary) }, syncTimeout, pollEvery).Should(Equal(http.StatusOK))
	}
})

var _ = AfterSuite(func() {
	if stopProxies != nil {
		stopProxies()
		for _, d := range proxiesDone {
			<-d
		}
	}
	if upstreamClose != nil {
		upstreamClose()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

var _ = ReportAfterSuite("figures", func(Report) { figures.Print() })

// startSliceWriter runs the manager's KeyDigestSlice controller alone: the
// suite writes key statuses as the operator does, and the proxies read the
// slices it writes from them, as in a cluster.
func startSliceWriter(ctx context.Context, cfg *rest.Config) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:     logr.FromSlogHandler(slog.NewJSONHandler(GinkgoWriter, nil))})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.SetupSlices(mgr, "")).To(Succeed())
	done := make(chan struct{})
	proxiesDone = append(proxiesDone, done)
	go func() {
		defer GinkgoRecover()
		defer close(done)
		// A spec that stops its API server ends its slice writer with an
		// error: what it checks is the proxy.
		if err := mgr.Start(ctx); err != nil {
			GinkgoWriter.Println("slice writer stopped:", err)
		}
	}()
}

func startProxy(ctx context.Context, cfg *rest.Config, upstream string, options ...func(*Config)) *Proxy {
	pc := Config{
		ListenAddress: "127.0.0.1:0", HealthProbeAddress: "127.0.0.1:0", MetricsAddress: "127.0.0.1:0", GRPCAddress: "127.0.0.1:0",
		Upstream: upstream, LastUsedFlushInterval: flushInterval,
	}
	for _, o := range options {
		o(&pc)
	}
	p, err := New(pc, cfg, slog.New(slog.NewJSONHandler(io.MultiWriter(proxyLogs, GinkgoWriter), nil)))
	Expect(err).NotTo(HaveOccurred())
	done := make(chan struct{})
	proxiesDone = append(proxiesDone, done)
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(p.Run(ctx)).To(Succeed())
	}()
	return p
}

func echoServer() *http.Server {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, vs := range r.Header {
			w.Header()["Echo-"+k] = vs
		}
		w.WriteHeader(http.StatusOK)
	})}
	l, err := netListen()
	Expect(err).NotTo(HaveOccurred())
	go func() { _ = srv.Serve(l) }()
	srv.Addr = "http://" + l.Addr().String()
	return srv
}

func get(_ *Proxy, url string, header http.Header) *http.Response {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	Expect(err).NotTo(HaveOccurred())
	req.Header = header
	res, err := httpClient.Do(req)
	if err != nil {
		return &http.Response{StatusCode: 0, Body: io.NopCloser(strings.NewReader(err.Error())), Header: http.Header{}}
	}
	return res
}

// call sends one request through a proxy with the given X-Octopods-Auth values.
func call(p *Proxy, keys ...string) *http.Response {
	h := http.Header{}
	for _, k := range keys {
		h.Add(HeaderAuth, k)
	}
	res := get(p, "http://"+p.Addr()+"/v1/messages", h)
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res
}

func status(p *Proxy, keys ...string) int { return call(p, keys...).StatusCode }

func newNamespace() string { return testutil.NewNamespace(k8sClient, "octopods-proxy-") }

// publishedKeyObject is a WorkspaceAPIKey publishing key as its current
// key, as the operator writes it (not yet created).
func publishedKeyObject(ns, workspace, key string) *octopodsv1alpha1.WorkspaceAPIKey {
	d := apikey.DigestOf(key)
	return &octopodsv1alpha1.WorkspaceAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: workspace},
		Spec:       octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: workspace},
		Status: octopodsv1alpha1.APIKeyStatus{
			KeyID:         d.ID(),
			PublishedKeys: []octopodsv1alpha1.PublishedKey{{KeyID: d.ID(), Digest: d.String()}},
		},
	}
}

// publishKey creates the WorkspaceAPIKey of workspace in c's API server and
// publishes key as the operator does (the proxy suite runs no manager).
func publishKey(c client.Client, ns, workspace, key string) *octopodsv1alpha1.WorkspaceAPIKey {
	wak := publishedKeyObject(ns, workspace, key)
	status := wak.Status
	Expect(c.Create(ctx, wak)).To(Succeed())
	wak.Status = status
	Expect(c.Status().Update(ctx, wak)).To(Succeed())
	return wak
}

// republish sets the published keys of wak: current, and previous until
// the given time (none when previous is "").
func republish(wak *octopodsv1alpha1.WorkspaceAPIKey, current, previous string, until time.Time) {
	original := wak.DeepCopy()
	wak.Status.PublishedKeys = nil
	if current != "" {
		d := apikey.DigestOf(current)
		wak.Status.PublishedKeys = append(wak.Status.PublishedKeys, octopodsv1alpha1.PublishedKey{KeyID: d.ID(), Digest: d.String()})
	}
	if previous != "" {
		d := apikey.DigestOf(previous)
		now := metav1.Now()
		wak.Status.RotatedAt = &now
		wak.Status.PublishedKeys = append(wak.Status.PublishedKeys, octopodsv1alpha1.PublishedKey{KeyID: d.ID(), Digest: d.String(), ValidUntil: &metav1.Time{Time: until}})
	}
	Expect(k8sClient.Status().Patch(ctx, wak, client.MergeFrom(original))).To(Succeed())
}

func newKey() string {
	k, err := apikey.Generate()
	Expect(err).NotTo(HaveOccurred())
	return k
}

// timeUntil polls until cond holds and returns how long that took.
func timeUntil(cond func() bool, limit time.Duration) time.Duration {
	start := time.Now()
	Eventually(cond, limit, pollEvery).Should(BeTrue())
	return time.Since(start)
}

func counter(p *Proxy, name string, labels ...string) float64 {
	families, err := p.Metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
