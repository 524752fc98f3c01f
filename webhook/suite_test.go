package webhook

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/controllers"
	"github.com/octopods/octopods-operator/internal/testutil"
)

const (
	reconcileTimeout = 15 * time.Second
	pollInterval     = 50 * time.Millisecond
)

var (
	testEnv   *envtest.Environment
	k8sClient client.Client
	// restConfig is the API server's admin configuration.
	restConfig *rest.Config
	warnings   = &warningRecorder{}
	cancel     context.CancelFunc
	done       = make(chan struct{})
	ctx        = context.Background()
)

func TestWebhooks(t *testing.T) { testutil.RunSpecs(t, "Webhook Suite") }

var _ = BeforeSuite(func() {
	// Timeouts set once: every Eventually of the suite.
	SetDefaultEventuallyTimeout(reconcileTimeout)
	SetDefaultEventuallyPollingInterval(pollInterval)
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(octopodsv1alpha1.AddToScheme(scheme))

	// The API server calls the webhooks over TLS, as configured by the
	// generated manifests in config/webhook.
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("..", "config", "webhook")}},
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	restConfig = cfg

	// The real manager: controllers and webhooks, as cmd/manager runs them.
	wio := testEnv.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controllers.CacheOptions(controllers.NewCacheHealth()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir,
		}),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.Setup(mgr, controllers.Options{MaxConcurrentReconciles: 2})).To(Succeed())
	Expect(Setup(mgr)).To(Succeed())
	var mgrCtx context.Context
	mgrCtx, cancel = context.WithCancel(context.Background())
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(mgrCtx)).To(Succeed())
	}()

	// A direct client that keeps the admission warnings it receives, as
	// kubectl prints them.
	userCfg := rest.CopyConfig(cfg)
	userCfg.WarningHandler = warnings
	k8sClient, err = client.New(userCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() error { return mgr.GetWebhookServer().StartedChecker()(nil) }, reconcileTimeout).Should(Succeed())
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
		<-done
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// warningRecorder collects the Warning headers the API server returns.
type warningRecorder struct {
	mu       sync.Mutex
	messages []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.messages = append(w.messages, message)
}

// during returns the warnings received while do ran. Specs run one at a time.
func (w *warningRecorder) during(do func()) []string {
	w.mu.Lock()
	start := len(w.messages)
	w.mu.Unlock()
	do()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.messages[start:]...)
}
