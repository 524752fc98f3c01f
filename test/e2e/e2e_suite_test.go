//go:build e2e

// Package e2e drives the real binaries as a user would: over HTTP through the
// auth proxy and over the API server, on a local control plane. Run it with
// `make test-e2e`.
package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/localenv"
	"github.com/octopods/octopods-operator/internal/testutil"
)

const (
	issueTimeout     = 20 * time.Second
	propagationLimit = time.Second
	pollEvery        = 10 * time.Millisecond
	flushInterval    = 2 * time.Second
)

var (
	// pluginBin is the built kubectl plugin.
	pluginBin  string
	env        *localenv.Env
	k8sClient  client.Client
	scheme     = runtime.NewScheme()
	httpClient = &http.Client{Timeout: 5 * time.Second}
	figures    testutil.Figures
	root       string
)

func TestE2E(t *testing.T) { testutil.RunSpecs(t, "End-to-end Suite") }

var _ = BeforeSuite(func() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(octopodsv1alpha1.AddToScheme(scheme))
	// The suite's own clients log nothing worth reading; the binaries log
	// to their own output.
	ctrllog.SetLogger(logr.Discard())
	var err error
	root, err = filepath.Abs(filepath.Join("..", ".."))
	Expect(err).NotTo(HaveOccurred())

	// The real binaries, built as `make build` builds them.
	bin := GinkgoT().TempDir()
	pluginBin = filepath.Join(bin, "kubectl-octopods")
	for _, b := range []string{"manager", "auth-proxy", "kubectl-octopods"} {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, b), "./cmd/"+b)
		build.Dir = root
		out, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
	}

	started := time.Now()
	env, err = localenv.Start(context.Background(), localenv.Options{
		Root: root, Dir: filepath.Join(GinkgoT().TempDir(), "local"),
		ManagerBin: filepath.Join(bin, "manager"), ProxyBin: filepath.Join(bin, "auth-proxy"),
		ProxyAddress: localenv.FreeAddress(), ProxyProbeAddress: localenv.FreeAddress(), ProxyMetricsAddress: localenv.FreeAddress(),
		ManagerMetricsAddress: localenv.FreeAddress(), ManagerProbeAddress: localenv.FreeAddress(), EchoAddress: localenv.FreeAddress(),
		ProxyGRPCAddress: localenv.FreeAddress(), SecretScanningAddress: localenv.FreeAddress(),
		LastUsedFlushInterval: flushInterval, Progress: GinkgoWriter,
	})
	Expect(err).NotTo(HaveOccurred())
	figure("local system (control plane, manager with webhooks, auth proxy) ready in %s", time.Since(started).Round(100*time.Millisecond))
	cfg := env.Config
	cfg.QPS, cfg.Burst = 1000, 2000
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if env != nil {
		env.Stop()
	}
})

var _ = ReportAfterSuite("figures", func(Report) { figures.Print() })

func figure(format string, args ...any) { figures.Add("e2e: "+format, args...) }
