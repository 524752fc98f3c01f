// Command restartbench measures the manager restarted over many existing
// workspaces and keys: it fills a local control plane (envtest assets,
// KUBEBUILDER_ASSETS) with Workspaces, WorkspaceAPIKeys and key Secrets
// shaped exactly as the operator writes them (its own status functions),
// then runs the real manager binary and reports how long it takes to settle
// (every object reconciled, work queues empty), its peak memory, and how
// many writes it made (the API server's request metrics): a restart should
// make none. The baseline is the same binary on the same, empty, cluster.
//
//	go run ./hack/restartbench -workspaces 100000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/controllers"
	"github.com/octopods/octopods-operator/hack/benchenv"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keysecret"
	"github.com/octopods/octopods-operator/internal/testutil"
)

func main() {
	n := flag.Int("workspaces", 100_000, "Workspaces, each with an issued key, to restart the manager over.")
	workers := flag.Int("workers", 32, "Concurrent creates.")
	flag.StringVar(&managerMemoryLimit, "manager-gomemlimit", "230MiB", "The manager's Go soft memory limit: in a pod it sets 90% of its container's memory limit itself (shipped limit 256Mi: 230MiB).")
	flag.StringVar(&heapProfile, "heap-profile", "", "Write the settled manager's heap profile (go tool pprof) to this file.")
	flag.Parse()
	ctx := context.Background()

	env := benchenv.Start("restartbench")
	defer env.Stop()
	bin, proxyBin := env.Build("manager"), env.Build("auth-proxy")

	empty := restart(ctx, env, bin, 0)
	fmt.Printf("baseline, empty cluster: settled in %s, peak RSS %.1f MiB, %d writes\n", empty.settled.Round(time.Millisecond), empty.peakMiB, empty.writes.Total())

	fill(ctx, env.Client, *n, *workers)
	full := restart(ctx, env, bin, *n)
	fmt.Printf("restart over %d workspaces and keys: settled in %s, peak RSS %.1f MiB (%.1fx the empty baseline; target 256 MiB), %d writes (%s)\n",
		*n, full.settled.Round(time.Millisecond), full.peakMiB, full.peakMiB/empty.peakMiB, full.writes.Total(), full.writes)
	fmt.Printf("| 2 | manager restarted over %d workspaces: writes; settled in | %d; %s | empty cluster: %d; %s | 0 |\n",
		*n, full.writes.Total(), full.settled.Round(time.Second), empty.writes.Total(), empty.settled.Round(time.Millisecond))
	fmt.Printf("| 2 | manager restarted over %d workspaces: peak RSS | %.0f MiB | empty cluster: %.0f MiB | ≤ 256 MiB |\n", *n, full.peakMiB, empty.peakMiB)

	// The auth proxy's first sync over the same keys, with the shipped
	// Deployment's GOMEMLIMIT, at the default page size (the baseline) and
	// bigger ones.
	var base time.Duration
	for _, load := range []struct{ name, flag string }{
		{"500 a list page", "--list-page-size=500"},
		{"2000 a list page", "--list-page-size=2000"},
		{"5000 a list page", "--list-page-size=5000"},
	} {
		synced, rss, peak := proxySync(env, proxyBin, strings.Fields(load.flag))
		if base == 0 {
			base = synced
		}
		fmt.Printf("auth proxy over %d keys, %s: ready in %s (%.2fx the 500-a-page baseline; target 2s), RSS %.1f MiB at rest, peak %.1f MiB (target 64 MiB)\n",
			*n, load.name, synced.Round(time.Millisecond), synced.Seconds()/base.Seconds(), rss, peak)
		fmt.Printf("| 5 | auth proxy's first load of %d keys, %s: ready in; RSS at rest; peak | %s; %.0f MiB; %.0f MiB | 500 a page: %s | ≤ 2 s; ≤ 64 MiB |\n",
			*n, load.name, synced.Round(100*time.Millisecond), rss, peak, base.Round(100*time.Millisecond))
	}
}

// proxySync starts the auth proxy and returns how long until /readyz (the
// first full sync), and its resident and peak memory (MiB) once at rest.
func proxySync(env *benchenv.Env, bin string, flags []string) (time.Duration, float64, float64) {
	probes := benchenv.FreePort()
	proxy := exec.Command(bin, append([]string{"--kubeconfig", env.Kubeconfig, "--listen-address", benchenv.FreePort(),
		"--health-probe-bind-address", probes, "--metrics-bind-address", benchenv.FreePort()}, flags...)...)
	proxy.Env = append(os.Environ(), "GOMEMLIMIT="+benchenv.ProxyGoMemLimit)
	proxy.Stderr = io.Discard
	start := time.Now()
	check(proxy.Start())
	defer func() { _ = proxy.Process.Kill(); _ = proxy.Wait() }()
	benchenv.WaitReady("http://"+probes+"/readyz", 10*time.Minute)
	synced := time.Since(start)
	time.Sleep(5 * time.Second)
	return synced, benchenv.ProcMiB(proxy.Process.Pid, "VmRSS:"), benchenv.ProcMiB(proxy.Process.Pid, "VmHWM:")
}

// fill creates n Workspaces with issued keys, as the operator leaves them.
func fill(ctx context.Context, c client.Client, n, workers int) {
	ns := "restartbench"
	check(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	start := time.Now()
	var done atomic.Int64
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				issued(ctx, c, ns, fmt.Sprintf("ws-%06d", i))
				if d := done.Add(1); d%10_000 == 0 {
					fmt.Fprintf(os.Stderr, "created %d workspaces and keys in %s\n", d, time.Since(start).Round(time.Second))
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	fmt.Printf("created %d Workspaces, WorkspaceAPIKeys and Secrets (with statuses) in %s\n", n, time.Since(start).Round(time.Second))
}

// issued writes one workspace with its key as the operator would have.
func issued(ctx context.Context, c client.Client, ns, name string) {
	now := time.Now()
	ws := &octopodsv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Finalizers: []string{controllers.RevokeFinalizer}},
		Spec: octopodsv1alpha1.WorkspaceSpec{DisplayName: "Workspace " + name, Provider: octopodsv1alpha1.ProviderIntercom}}
	check(c.Create(ctx, ws))
	key := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Finalizers: []string{controllers.RevokeFinalizer}},
		Spec: octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: name, KeySettings: octopodsv1alpha1.KeySettings{SecretName: name + octopodsv1alpha1.SecretNameSuffix}}}
	check(controllerutil.SetControllerReference(ws, key, c.Scheme()))
	check(c.Create(ctx, key))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.EffectiveSecretName()}, Type: octopodsv1alpha1.SecretType}
	check(controllerutil.SetControllerReference(key, secret, c.Scheme()))
	keysecret.ApplyTemplate(secret, key.Spec.SecretTemplate, key.Spec.WorkspaceName)
	_, err := keysecret.SetNewKey(secret, apikey.Prefix, "", now)
	check(err)
	check(c.Create(ctx, secret))
	key.Status = controllers.IssuedStatus(key, secret, now)
	check(c.Status().Update(ctx, key))
	ws.Status = controllers.WorkspaceStatusFor(ws, key)
	check(c.Status().Update(ctx, ws))
}

type result struct {
	settled time.Duration
	peakMiB float64
	writes  testutil.WriteCounts
}

// restart runs the manager until it has reconciled n keys and n Workspaces
// with empty work queues, and stops it.
func restart(ctx context.Context, env *benchenv.Env, bin string, n int) result {
	before, err := testutil.APIServerWrites(ctx, env.Config)
	check(err)
	metrics, probes, pprof := benchenv.FreePort(), benchenv.FreePort(), benchenv.FreePort()
	mgr := exec.Command(bin, "--kubeconfig", env.Kubeconfig, "--metrics-bind-address", metrics, "--metrics-secure=false",
		"--health-probe-bind-address", probes, "--pprof-bind-address", pprof, "--zap-log-level", "error")
	// GOMEMLIMIT as the manager sets it in a pod: 90% of its container's
	// memory limit (internal/memlimit), which this machine does not impose.
	mgr.Env = append(os.Environ(), "ENABLE_WEBHOOKS=false", "GOMEMLIMIT="+managerMemoryLimit)
	mgr.Stderr = io.Discard
	start := time.Now()
	check(mgr.Start())
	defer func() { _ = mgr.Process.Kill(); _ = mgr.Wait() }()
	for !settled(metrics, n) {
		time.Sleep(100 * time.Millisecond)
		if time.Since(start) > 30*time.Minute {
			panic("the manager did not settle in 30 minutes")
		}
	}
	r := result{settled: time.Since(start), peakMiB: benchenv.ProcMiB(mgr.Process.Pid, "VmHWM:")}
	if heapProfile != "" && n > 0 {
		saveHeapProfile(pprof)
	}
	time.Sleep(2 * time.Second) // writes still in flight land
	after, err := testutil.APIServerWrites(ctx, env.Config)
	check(err)
	r.writes = after.Minus(before)
	delete(r.writes, "PUT leases") // none without leader election; listed if any
	return r
}

// settled: both controllers reconciled at least n objects and have nothing
// queued or in progress.
func settled(metricsAddr string, n int) bool {
	res, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return false
	}
	defer func() { _ = res.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		return false
	}
	value := func(family, label, name string) float64 {
		sum := 0.0
		for _, m := range families[family].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == name {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
		return sum
	}
	for _, ctrl := range []string{"workspaceapikey", "workspace"} {
		if value("controller_runtime_reconcile_total", "controller", ctrl) < float64(n) ||
			value("workqueue_depth", "name", ctrl) > 0 || value("controller_runtime_active_workers", "controller", ctrl) > 0 {
			return false
		}
	}
	return true
}

// managerMemoryLimit is the manager's GOMEMLIMIT (-manager-gomemlimit).
var managerMemoryLimit string

// heapProfile is where -heap-profile saves the settled manager's heap.
var heapProfile string

func saveHeapProfile(pprofAddr string) {
	res, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?gc=1")
	check(err)
	defer func() { _ = res.Body.Close() }()
	f, err := os.Create(heapProfile)
	check(err)
	defer func() { _ = f.Close() }()
	_, err = io.Copy(f, res.Body)
	check(err)
}

var check = benchenv.Check
