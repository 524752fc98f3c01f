package controllers

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/logsafe"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// Named timeouts: how long the operator may take, and how long "nothing
// happens" is watched for.
const (
	reconcileTimeout = 15 * time.Second
	pollInterval     = 50 * time.Millisecond
	quietPeriod      = 2 * time.Second
	bulkTimeout      = 3 * time.Minute
)

var (
	testEnv   *envtest.Environment
	restCfg   *rest.Config
	k8sClient client.Client // direct: every assertion reads the API server
	scheme    = runtime.NewScheme()

	// managerLogs holds everything every manager logged, at every level, to
	// prove that no key is ever logged.
	managerLogs = &testutil.SyncBuffer{}
	stopManager func()
)

func TestControllers(t *testing.T) { testutil.RunSpecs(t, "Controllers Suite") }

var _ = BeforeSuite(func() {
	// Timeouts set once: every Eventually and Consistently of the suite.
	SetDefaultEventuallyTimeout(reconcileTimeout)
	SetDefaultEventuallyPollingInterval(pollInterval)
	SetDefaultConsistentlyDuration(quietPeriod)
	SetDefaultConsistentlyPollingInterval(pollInterval)
	// As cmd/manager does, at the highest verbosity zap has.
	ctrl.SetLogger(logsafe.Capped(zap.New(zap.WriteTo(managerLogs), zap.Level(zapcore.Level(-10)), zap.UseDevMode(true))))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(octopodsv1alpha1.AddToScheme(scheme))

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	started := time.Now()
	var err error
	restCfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	figures.Add("envtest control plane start: %.2fs", time.Since(started).Seconds())
	restCfg.QPS, restCfg.Burst = 1000, 2000

	k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	stopManager = startManager(Options{MaxConcurrentReconciles: 4})
})

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// startManager runs the real manager, configured as cmd/manager does, and
// returns a function that stops it and waits until it has stopped.
func startManager(opts Options) func() {
	return startManagerWithContext(context.Background(), opts)
}

func startManagerWithContext(parent context.Context, opts Options) func() {
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  CacheOptions(NewCacheHealth()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The suite restarts the manager, registering the same controllers again.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(Setup(mgr, opts)).To(Succeed())
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	// What a spec creates next is a change, served ahead of the initial
	// list (which waits in the paced backlog, every earlier spec's keys in
	// it), as in a cluster whose manager runs already.
	Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	return func() {
		cancel()
		<-done
	}
}

// figures are printed after the suite, so they show in `make test` output.
var figures testutil.Figures

var _ = ReportAfterSuite("figures", func(Report) { figures.Print() })

// newNamespace gives each spec its own namespace.
func newNamespace() string { return testutil.NewNamespace(k8sClient, "octopods-test-") }

// afterSecretWrites returns a client wrapper (controller-runtime's
// interceptor) that calls after once each Secret create or update succeeded,
// before the reconcile goes on: where a test crashes the manager. When after
// returns true the manager is dead from then on: no write of this client
// starts any more (cancelling the manager's context alone is not enough: a
// reconcile's context ends a moment later, and a cancelled request may
// still reach the API server, which a real crash never allows).
func afterSecretWrites(after func(context.Context, *corev1.Secret) (crashed bool)) func(client.Client) client.Client {
	return func(c client.Client) client.Client {
		var dead atomic.Bool
		alive := func(ctx context.Context) error {
			if dead.Load() {
				return errors.New("the manager crashed")
			}
			return ctx.Err()
		}
		call := func(ctx context.Context, obj client.Object, err error) error {
			if s, ok := obj.(*corev1.Secret); ok && err == nil && after(ctx, s) {
				dead.Store(true)
			}
			return err
		}
		return interceptor.NewClient(watchless{c}, interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if err := alive(ctx); err != nil {
					return err
				}
				return call(ctx, obj, c.Create(ctx, obj, opts...))
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				if err := alive(ctx); err != nil {
					return err
				}
				return call(ctx, obj, c.Update(ctx, obj, opts...))
			},
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				if err := alive(ctx); err != nil {
					return err
				}
				return c.Patch(ctx, obj, patch, opts...)
			},
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if err := alive(ctx); err != nil {
					return err
				}
				return c.Delete(ctx, obj, opts...)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				if err := alive(ctx); err != nil {
					return err
				}
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		})
	}
}

// watchless lets the manager's client (which has no Watch) be intercepted.
type watchless struct{ client.Client }

func (watchless) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("the manager's client does not watch")
}
