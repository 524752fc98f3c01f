// Command restartbench measures, over many existing workspaces and keys,
// the design this release ships (KeyDigestSlices) against the one it
// replaces (the proxy listing every key object), both built from source in
// the same run: it fills a local control plane (envtest assets,
// KUBEBUILDER_ASSETS) with Workspaces, WorkspaceAPIKeys and key Secrets
// shaped exactly as the operator writes them (its own status functions),
// with no slice, as the previous release leaves them, then runs the real
// binaries and reports
//
//   - the manager's restart: how long it takes to settle (every object
//     reconciled, work queues empty), its peak RSS, its live heap per
//     workspace, and how many writes it made (the API server's request
//     metrics): the first start of this release writes the slices, a
//     restart after it nothing;
//
//   - the auth proxy's first sync: time to ready, LIST requests, RSS;
//
//   - propagation and writes per issued key: keys created one by one in a
//     quiet namespace beside the others, until the proxy admits them, then
//     rotated and deleted, until it refuses them; and keys of the filled
//     namespace rotated, in slices full of other keys.
//
//     go run ./hack/restartbench -workspaces 100000
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/controllers"
	"github.com/octopods/octopods-operator/hack/benchenv"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keysecret"
	"github.com/octopods/octopods-operator/internal/keyslice"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// fillNamespace holds the workspaces; the slices' marker goes there too.
const fillNamespace = "restartbench"

func main() {
	n := flag.Int("workspaces", 100_000, "Workspaces, each with an issued key, to restart the manager over.")
	workers := flag.Int("workers", 32, "Concurrent creates.")
	baselineRef := flag.String("baseline-ref", "5fb73fb", "Git commit of the design measured as the baseline: the last one before KeyDigestSlices.")
	flag.StringVar(&managerMemoryLimit, "manager-gomemlimit", "230MiB", "The manager's Go soft memory limit: in a pod it sets 90% of its container's memory limit itself (shipped limit 256Mi: 230MiB).")
	flag.StringVar(&heapProfile, "heap-profile", "", "Write the settled manager's heap profile (go tool pprof) to this file.")
	flag.StringVar(&managerLog, "manager-log", "", "Append the restarted managers' logs (info level) to this file.")
	skipRestarts := flag.Bool("skip-restarts", false, "Start only the manager that builds the slices, then measure the proxies' first sync and propagation: the other restarts take ten minutes at 100k.")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard()) // envtest's webhook installer logs; nothing of it is measured
	ctx := context.Background()

	env := benchenv.Start("restartbench")
	defer env.Stop()
	bin, proxyBin := env.Build("manager"), env.Build("auth-proxy")
	oldBin, oldProxyBin := env.BuildAt(*baselineRef, "manager"), env.BuildAt(*baselineRef, "auth-proxy")
	marker := fillNamespace + "/" + octopodsv1alpha1.SlicesBuiltName
	sliced := design{name: "slices", manager: bin, proxy: proxyBin, src: ".",
		managerFlags: []string{"--slices-built-namespace", fillNamespace}, proxyFlags: []string{"--slices-built-marker", marker},
		rotates: propagationKeys}
	before := design{name: "before (" + *baselineRef + ")", manager: oldBin, proxy: oldProxyBin, proxyFlags: []string{"--list-page-size=500"},
		src: env.SourceAt(*baselineRef)}

	fill(ctx, env.Client, *n, *workers)
	if *skipRestarts {
		upgrade := restart(ctx, env, sliced, *n)
		fmt.Printf("slices: first start (builds the slices) over %d workspaces: settled in %s, %d writes\n", *n, upgrade.settled.Round(time.Millisecond), upgrade.writes.Total())
	} else {
		reportRestarts(ctx, env, before, sliced, *n)
	}
	measureAfterRestarts(ctx, env, before, sliced, *n)
}

// reportRestarts restarts the manager of each design over the n filled
// workspaces, the sliced one twice (its first start builds the slices),
// and prints the figures.
func reportRestarts(ctx context.Context, env *benchenv.Env, before, sliced design, n int) {
	old := restart(ctx, env, before, n)
	upgrade := restart(ctx, env, sliced, n)
	again := restart(ctx, env, sliced, n)
	for _, r := range []struct {
		what string
		r    result
	}{{"before: restart", old}, {"slices: first start (builds the slices)", upgrade}, {"slices: restart", again}} {
		fmt.Printf("%s over %d workspaces: settled in %s, peak RSS %.1f MiB, live heap %.2f KiB a workspace, %d writes (%s), %d GETs (%s)\n",
			r.what, n, r.r.settled.Round(time.Millisecond), r.r.peakMiB, r.r.liveKiB(n), r.r.writes.Total(), r.r.writes, r.r.gets.Total(), r.r.gets)
	}
	fmt.Printf("| 26 | %d keys: manager restart (GOMEMLIMIT %s): peak RSS; live heap a workspace; writes; settled in | %.0f MiB; %.2f KiB; %d; %s | %.0f MiB; %.2f KiB; %d; %s | ≤ 512 MiB; ≤ 1.5 KiB; 0 |\n",
		n, managerMemoryLimit, again.peakMiB, again.liveKiB(n), again.writes.Total(), again.settled.Round(time.Second), old.peakMiB, old.liveKiB(n), old.writes.Total(), old.settled.Round(time.Second))
	fmt.Printf("| 26 | %d keys: the upgrade's first start: writes (slices built); settled in | %d (%s); %s | — | a few hundred |\n",
		n, upgrade.writes.Total(), upgrade.writes, upgrade.settled.Round(time.Second))
}

// measureAfterRestarts measures the proxy's first sync and propagation,
// each design against the other, over the n filled workspaces.
func measureAfterRestarts(ctx context.Context, env *benchenv.Env, before, sliced design, n int) {
	// Starts alternate, so that neither design's starts pay for the other's
	// (the baseline's one-minute list at 100k leaves the API server busy
	// for a while): one start each gave 2.32 s in one run and 2.05 s in
	// another, for the same proxy.
	var oldSyncs, newSyncs []proxySynced
	for range syncStarts {
		oldSyncs, newSyncs = append(oldSyncs, proxySync(ctx, env, before)), append(newSyncs, proxySync(ctx, env, sliced))
	}
	oldSync, newSync := medianSync(oldSyncs), medianSync(newSyncs)
	fmt.Printf("auth proxy over %d keys, before: %s\nauth proxy over %d keys, slices: %s\n", n, oldSync, n, newSync)
	fmt.Printf("| 26 | %d keys: auth proxy first sync, median (max) of %d starts, alternating: ready in; LIST requests; RSS at rest | %s (%s); %d; %.0f MiB | %s (%s); %d; %.0f MiB (%.1fx the time) | ≤ 2 s |\n",
		n, syncStarts, newSync.ready.Round(10*time.Millisecond), newSync.slowest.Round(10*time.Millisecond), newSync.lists, newSync.rssMiB,
		oldSync.ready.Round(10*time.Millisecond), oldSync.slowest.Round(10*time.Millisecond), oldSync.lists, oldSync.rssMiB, oldSync.ready.Seconds()/newSync.ready.Seconds())

	oldProp, newProp := propagation(ctx, env, before, n), propagation(ctx, env, sliced, n)
	fmt.Printf("propagation beside %d keys, before: %s\npropagation beside %d keys, slices: %s\n", n, oldProp, n, newProp)
	fmt.Printf("| 26 | %d keys: propagation, median (max) of %d: created → admitted; rotated → refused; deleted → refused; one API write (a ConfigMap patch) | %s | %s | ≤ 1 s, median ≈ 10 ms |\n",
		n, propagationKeys, newProp.row(), oldProp.row())
	fmt.Printf("| 26 | %d keys: rotated → refused, median (max) of %d keys of the namespace that holds the %d (slices of %d keys) | %s | %s | ≤ 1 s |\n",
		n, propagationKeys, n, keyslice.KeysPerSlice, median(newProp.rotatedAmongAll), median(oldProp.rotatedAmongAll))
	fmt.Printf("| 26 | %d keys: of which the person's own request, median (max): the create; the rotation patch; the delete (admission webhooks included) | %s | %s | |\n",
		n, newProp.requestsRow(), oldProp.requestsRow())
	fmt.Printf("| 26 | %d keys: writes per issued key, one at a time (webhooks on) | %.2f (%s) | %.2f | (≤ 4.1 for a burst of 300: the e2e suite) |\n",
		n, newProp.writesPerKey, newProp.writes, oldProp.writesPerKey)
}

// design is one release's binaries and the flags it is run with.
type design struct {
	name                     string
	manager, proxy           string
	managerFlags, proxyFlags []string
	// src is the design's source tree: propagation installs its webhook
	// configuration (config/webhook), as a cluster runs it.
	src string
	// rotates is the first of the filled keys rotateFilled rotates.
	rotates int
}

// syncStarts is how many times proxySync starts each design's proxy.
const syncStarts = 3

// medianSync is the start of median time to ready, with the slowest's.
func medianSync(starts []proxySynced) proxySynced {
	slices.SortFunc(starts, func(a, b proxySynced) int { return cmp.Compare(a.ready, b.ready) })
	out := starts[len(starts)/2]
	out.slowest = starts[len(starts)-1].ready
	return out
}

// proxySynced is an auth proxy's first sync.
type proxySynced struct {
	ready, slowest  time.Duration
	lists           int
	rssMiB, peakMiB float64
}

func (p proxySynced) String() string {
	return fmt.Sprintf("ready in %s after %d LIST requests, RSS %.1f MiB at rest, peak %.1f MiB", p.ready.Round(time.Millisecond), p.lists, p.rssMiB, p.peakMiB)
}

// proxySync starts the auth proxy and returns how long until /readyz (the
// first full sync), the LIST requests it made, and its resident and peak
// memory (MiB) once at rest.
func proxySync(ctx context.Context, env *benchenv.Env, d design) proxySynced {
	before, err := testutil.APIServerRequests(ctx, env.Config, false, "LIST")
	check(err)
	probes := benchenv.FreePort()
	proxy := exec.Command(d.proxy, append([]string{"--kubeconfig", env.Kubeconfig, "--listen-address", benchenv.FreePort(),
		"--health-probe-bind-address", probes, "--metrics-bind-address", benchenv.FreePort()}, d.proxyFlags...)...)
	proxy.Env = append(os.Environ(), "GOMEMLIMIT="+benchenv.ProxyGoMemLimit)
	proxy.Stderr = io.Discard
	start := time.Now()
	check(proxy.Start())
	defer func() { _ = proxy.Process.Kill(); _ = proxy.Wait() }()
	benchenv.WaitReady("http://"+probes+"/readyz", 10*time.Minute)
	out := proxySynced{ready: time.Since(start)}
	after, err := testutil.APIServerRequests(ctx, env.Config, false, "LIST")
	check(err)
	out.lists = after.Minus(before).Total()
	time.Sleep(5 * time.Second)
	out.rssMiB, out.peakMiB = benchenv.ProcMiB(proxy.Process.Pid, "VmRSS:"), benchenv.ProcMiB(proxy.Process.Pid, "VmHWM:")
	return out
}

// propagationKeys are the keys propagation creates, one at a time.
const propagationKeys = 20

// propagated is what propagation measured.
type propagated struct {
	admitted, rotated, deleted []time.Duration
	// rotatedAmongAll are rotations of keys of the filled namespace, each
	// in a slice of KeysPerSlice entries that the write carries whole.
	rotatedAmongAll []time.Duration
	// requests are the person's own requests in each: the create, the
	// rotation patch and the delete, each with its admission webhooks.
	requests [3][]time.Duration
	// oneWrite is the API server's answer to one write (a ConfigMap
	// patch), the unit propagation is made of: a key created is admitted
	// after its create and two writes in a row (Secret, slice), one
	// rotated after its patch, a read of its Secret and a slice write, one
	// deleted after its delete and a slice write.
	oneWrite     []time.Duration
	writes       testutil.WriteCounts
	writesPerKey float64
	// spent is what the manager and the API server used over the whole
	// phase: a slow run on a busy process tells apart from a slow design.
	spent load
}

// load is the CPU time of the manager and of the API server, and the
// manager's garbage collections, so far.
type load struct {
	at, until                time.Time
	managerCPU, apiserverCPU time.Duration
	managerGCs               uint64
}

func loadNow(ctx context.Context, env *benchenv.Env, managerPid int, managerMetrics string) load {
	l := load{at: time.Now(), managerCPU: benchenv.ProcCPU(managerPid)}
	for _, m := range scrape("http://" + managerMetrics + "/metrics")["go_gc_duration_seconds"].GetMetric() {
		l.managerGCs = m.GetSummary().GetSampleCount()
	}
	families, err := testutil.APIServerMetrics(ctx, env.Config)
	check(err)
	for _, m := range families["process_cpu_seconds_total"].GetMetric() {
		l.apiserverCPU = time.Duration(m.GetCounter().GetValue() * float64(time.Second))
	}
	return l
}

func (l load) minus(earlier load) load {
	return load{at: earlier.at, until: l.at, managerCPU: l.managerCPU - earlier.managerCPU, apiserverCPU: l.apiserverCPU - earlier.apiserverCPU,
		managerGCs: l.managerGCs - earlier.managerGCs}
}

func (l load) String() string {
	took := l.until.Sub(l.at)
	return fmt.Sprintf("over %s: manager CPU %s (%.0f%% of a core), %d GCs; API server CPU %s (%.0f%%)", took.Round(time.Second),
		l.managerCPU.Round(time.Millisecond), 100*l.managerCPU.Seconds()/took.Seconds(), l.managerGCs,
		l.apiserverCPU.Round(time.Millisecond), 100*l.apiserverCPU.Seconds()/took.Seconds())
}

func (p propagated) row() string {
	return median(p.admitted) + "; " + median(p.rotated) + "; " + median(p.deleted) + "; " + median(p.oneWrite)
}

// requestsRow are the medians of the person's own requests.
func (p propagated) requestsRow() string {
	return median(p.requests[0]) + "; " + median(p.requests[1]) + "; " + median(p.requests[2])
}

// median is the median (max) of d.
func median(d []time.Duration) string {
	slices.Sort(d)
	return fmt.Sprintf("%s (%s)", d[len(d)/2].Round(100*time.Microsecond), d[len(d)-1].Round(time.Millisecond))
}

func (p propagated) String() string {
	return p.row() + fmt.Sprintf("; %.2f writes per issued key; %s", p.writesPerKey, p.spent)
}

// propagation runs the design's manager and proxy over the filled cluster
// and times, key by key in a namespace of its own, the creation of a key
// until the proxy admits it, a rotation (no grace period) until it refuses
// the old key, and a deletion until it refuses the new one.
func propagation(ctx context.Context, env *benchenv.Env, d design, n int) propagated {
	// The admission webhooks run, as in a cluster: they add the finalizer
	// and the owner at creation, which saves the manager a write, and
	// their own time counts.
	hooks := &envtest.WebhookInstallOptions{Paths: []string{filepath.Join(d.src, "config", "webhook")}}
	check(hooks.Install(env.Config))
	defer func() {
		for _, h := range hooks.MutatingWebhooks {
			check(client.IgnoreNotFound(env.Client.Delete(ctx, h)))
		}
		for _, h := range hooks.ValidatingWebhooks {
			check(client.IgnoreNotFound(env.Client.Delete(ctx, h)))
		}
		check(hooks.Cleanup())
	}()
	metrics, probes := benchenv.FreePort(), benchenv.FreePort()
	mgr := exec.Command(d.manager, append([]string{"--kubeconfig", env.Kubeconfig, "--metrics-bind-address", metrics, "--metrics-secure=false",
		"--health-probe-bind-address", probes, "--zap-log-level", "error",
		"--webhook-cert-dir", hooks.LocalServingCertDir, "--webhook-port", strconv.Itoa(hooks.LocalServingPort)}, d.managerFlags...)...)
	mgr.Env = append(os.Environ(), "ENABLE_WEBHOOKS=true", "GOMEMLIMIT="+managerMemoryLimit)
	mgr.Stderr = io.Discard
	check(mgr.Start())
	defer func() { _ = mgr.Process.Kill(); _ = mgr.Wait() }()
	benchenv.WaitReady("http://"+probes+"/readyz", 10*time.Minute)
	// Measure a manager at rest: one just started has every key queued.
	for start := time.Now(); !settled(metrics, n, len(d.managerFlags) > 0); time.Sleep(100 * time.Millisecond) {
		if time.Since(start) > 30*time.Minute {
			panic("the manager did not settle in 30 minutes")
		}
	}
	listen, proxyProbes := benchenv.FreePort(), benchenv.FreePort()
	proxy := exec.Command(d.proxy, append([]string{"--kubeconfig", env.Kubeconfig, "--listen-address", listen,
		"--health-probe-bind-address", proxyProbes, "--metrics-bind-address", benchenv.FreePort()}, d.proxyFlags...)...)
	proxy.Env = append(os.Environ(), "GOMEMLIMIT="+benchenv.ProxyGoMemLimit)
	proxy.Stderr = io.Discard
	check(proxy.Start())
	defer func() { _ = proxy.Process.Kill(); _ = proxy.Wait() }()
	benchenv.WaitReady("http://"+proxyProbes+"/readyz", 10*time.Minute)

	ns := "propagation-" + strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(d.name)
	check(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	secretKey := watchKeys(ctx, env, ns)
	admits := func(key string) bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/", nil)
		req.Header.Set("X-Octopods-Auth", key)
		res, err := http.DefaultClient.Do(req)
		check(err)
		// Read to the end, so the next poll reuses the connection rather
		// than load the machine with a new one every millisecond.
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	until := func(cond func() bool) {
		for start := time.Now(); !cond(); time.Sleep(time.Millisecond) {
			if time.Since(start) > time.Minute {
				panic("not propagated within a minute")
			}
		}
	}
	var out propagated
	spentBefore := loadNow(ctx, env, mgr.Process.Pid, metrics)
	out.oneWrite = timeWrites(ctx, env.Client, ns)
	writesBefore, err := testutil.APIServerWrites(ctx, env.Config)
	check(err)
	keys := make([]string, propagationKeys)
	for i := range keys {
		// One change at a time, below the slices' batching rate (2 writes
		// a second a namespace): what propagation costs, not what batching
		// delays.
		time.Sleep(600 * time.Millisecond)
		name := fmt.Sprintf("prop-%02d", i)
		check(env.Client.Create(ctx, &octopodsv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: octopodsv1alpha1.WorkspaceSpec{DisplayName: name, Provider: octopodsv1alpha1.ProviderIntercom}}))
		start := time.Now()
		check(env.Client.Create(ctx, &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: name}}))
		out.requests[0] = append(out.requests[0], time.Since(start))
		until(func() bool {
			keys[i] = secretKey(name + octopodsv1alpha1.SecretNameSuffix)
			return keys[i] != ""
		})
		until(func() bool { return admits(keys[i]) })
		out.admitted = append(out.admitted, time.Since(start))
	}
	time.Sleep(2 * time.Second) // the last status and event writes land
	writesAfter, err := testutil.APIServerWrites(ctx, env.Config)
	check(err)
	out.writes = writesAfter.Minus(writesBefore)
	out.writes["POST workspaces"] -= propagationKeys // the benchmark's own creates
	out.writes["POST workspaceapikeys"] -= propagationKeys
	out.writesPerKey = float64(out.writes.Total()) / propagationKeys
	for i, old := range keys {
		time.Sleep(600 * time.Millisecond)
		name := fmt.Sprintf("prop-%02d", i)
		key, start := rotate(ctx, env.Client, ns, name)
		out.requests[1] = append(out.requests[1], time.Since(start))
		until(func() bool { return !admits(old) })
		out.rotated = append(out.rotated, time.Since(start))
		var next string
		until(func() bool {
			next = secretKey(name + octopodsv1alpha1.SecretNameSuffix)
			return next != "" && next != old
		})
		until(func() bool { return admits(next) })
		time.Sleep(600 * time.Millisecond)
		start = time.Now()
		check(env.Client.Delete(ctx, key))
		out.requests[2] = append(out.requests[2], time.Since(start))
		until(func() bool { return !admits(next) })
		out.deleted = append(out.deleted, time.Since(start))
	}
	out.rotatedAmongAll = rotateFilled(ctx, env, d, n, until, admits)
	out.spent = loadNow(ctx, env, mgr.Process.Pid, metrics).minus(spentBefore)
	return out
}

// rotateFilled rotates propagationKeys keys of the filled namespace, one
// at a time, and times each patch until the old key is refused. The keys
// differ from one design to the next (each design's run rotates its own).
func rotateFilled(ctx context.Context, env *benchenv.Env, d design, n int, until func(func() bool), admits func(string) bool) []time.Duration {
	var took []time.Duration
	for i := range propagationKeys {
		time.Sleep(600 * time.Millisecond)
		name := fmt.Sprintf("ws-%06d", (d.rotates+i)%n)
		secret := &corev1.Secret{}
		check(env.Client.Get(ctx, client.ObjectKey{Namespace: fillNamespace, Name: name + octopodsv1alpha1.SecretNameSuffix}, secret))
		old := string(secret.Data[octopodsv1alpha1.SecretKeyAPIKey])
		until(func() bool { return admits(old) })
		_, start := rotate(ctx, env.Client, fillNamespace, name)
		until(func() bool { return !admits(old) })
		took = append(took, time.Since(start))
	}
	return took
}

// rotate asks for a rotation of the key ns/name (no grace period) and
// returns the key as patched and when the patch was sent.
func rotate(ctx context.Context, c client.Client, ns, name string) (*octopodsv1alpha1.WorkspaceAPIKey, time.Time) {
	key := &octopodsv1alpha1.WorkspaceAPIKey{}
	check(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, key))
	patch := client.MergeFrom(key.DeepCopy())
	key.Annotations = map[string]string{octopodsv1alpha1.RotateAnnotation: "bench"}
	start := time.Now()
	check(c.Patch(ctx, key, patch))
	return key, start
}

// timeWrites times propagationKeys patches of a ConfigMap in ns, one at a
// time.
func timeWrites(ctx context.Context, c client.Client, ns string) []time.Duration {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "write-latency"}}
	check(c.Create(ctx, cm))
	defer func() { check(c.Delete(ctx, cm)) }()
	var took []time.Duration
	for i := range propagationKeys {
		time.Sleep(100 * time.Millisecond)
		patch := client.MergeFrom(cm.DeepCopy())
		cm.Data = map[string]string{"n": fmt.Sprint(i)}
		start := time.Now()
		check(c.Patch(ctx, cm, patch))
		took = append(took, time.Since(start))
	}
	return took
}

// watchKeys watches the Secrets of ns and returns the current key of a
// Secret by name ("" while there is none): the benchmark learns a new key
// from a watch, not by reading the API server in a loop beside what it
// measures.
func watchKeys(ctx context.Context, env *benchenv.Env, ns string) func(name string) string {
	var mu sync.Mutex
	keys := map[string]string{}
	w, err := kubernetes.NewForConfigOrDie(env.Config).CoreV1().Secrets(ns).Watch(ctx, metav1.ListOptions{})
	check(err)
	go func() {
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Secret)
			if !ok {
				continue
			}
			mu.Lock()
			if ev.Type == watch.Deleted {
				delete(keys, s.Name)
			} else {
				keys[s.Name] = string(s.Data[octopodsv1alpha1.SecretKeyAPIKey])
			}
			mu.Unlock()
		}
	}()
	return func(name string) string {
		mu.Lock()
		defer mu.Unlock()
		return keys[name]
	}
}

// fill creates n Workspaces with issued keys, as the operator leaves them.
func fill(ctx context.Context, c client.Client, n, workers int) {
	ns := fillNamespace
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
	// liveBytes is the heap in use after a forced GC, once settled.
	liveBytes float64
	writes    testutil.WriteCounts
	// gets are the single-object reads (a fresh read before a decision,
	// or a cache miss confirmed).
	gets testutil.WriteCounts
}

func (r result) liveKiB(n int) float64 { return r.liveBytes / 1024 / float64(max(n, 1)) }

// restart runs the design's manager until it has reconciled n keys and n
// Workspaces with empty work queues (and, with slices, written the
// marker), and stops it.
func restart(ctx context.Context, env *benchenv.Env, d design, n int) result {
	before, err := testutil.APIServerWrites(ctx, env.Config)
	check(err)
	getsBefore, err := testutil.APIServerRequests(ctx, env.Config, true, "GET")
	check(err)
	metrics, probes, pprof := benchenv.FreePort(), benchenv.FreePort(), benchenv.FreePort()
	mgr := exec.Command(d.manager, append([]string{"--kubeconfig", env.Kubeconfig, "--metrics-bind-address", metrics, "--metrics-secure=false",
		"--health-probe-bind-address", probes, "--pprof-bind-address", pprof, "--zap-log-level", logLevel()}, d.managerFlags...)...)
	// GOMEMLIMIT as the manager sets it in a pod: 90% of its container's
	// memory limit (internal/memlimit), which this machine does not impose.
	mgr.Env = append(os.Environ(), "ENABLE_WEBHOOKS=false", "GOMEMLIMIT="+managerMemoryLimit)
	mgr.Stderr = io.Discard
	if managerLog != "" {
		f, err := os.OpenFile(managerLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		check(err)
		defer func() { _ = f.Close() }()
		mgr.Stderr = f
	}
	start := time.Now()
	check(mgr.Start())
	var waitErr error
	exited := make(chan struct{}) // closed once the manager is gone
	go func() { waitErr = mgr.Wait(); close(exited) }()
	defer func() { _ = mgr.Process.Kill(); <-exited }()
	for !settled(metrics, n, len(d.managerFlags) > 0) {
		select {
		case <-exited:
			// Say so at once: waiting 30 minutes on a dead process lost a
			// 100k run (rerun with -manager-log FILE for its log).
			panic(fmt.Sprintf("the %s manager exited before it settled (%v, after %s); -manager-log FILE keeps its log", d.name, waitErr, time.Since(start).Round(time.Second)))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > 30*time.Minute {
			panic("the manager did not settle in 30 minutes")
		}
	}
	r := result{settled: time.Since(start), peakMiB: benchenv.ProcMiB(mgr.Process.Pid, "VmHWM:")}
	r.liveBytes = liveHeap(pprof, metrics)
	if heapProfile != "" && n > 0 {
		saveHeapProfile(pprof)
	}
	time.Sleep(2 * time.Second) // writes still in flight land
	after, err := testutil.APIServerWrites(ctx, env.Config)
	check(err)
	r.writes = after.Minus(before)
	delete(r.writes, "PUT leases") // none without leader election; listed if any
	gets, err := testutil.APIServerRequests(ctx, env.Config, true, "GET")
	check(err)
	r.gets = gets.Minus(getsBefore)
	return r
}

// liveHeap forces a GC (pprof's heap?gc=1) and reads the heap in use.
func liveHeap(pprofAddr, metricsAddr string) float64 {
	res, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?gc=1")
	check(err)
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	families := scrape("http://" + metricsAddr + "/metrics")
	if families == nil {
		panic("the manager's /metrics did not answer after the forced GC")
	}
	for _, m := range families["go_memstats_heap_alloc_bytes"].GetMetric() {
		return m.GetGauge().GetValue()
	}
	return 0
}

// settled: both controllers reconciled at least n objects and have nothing
// queued or in progress, and, with slices, the slices are built.
func settled(metricsAddr string, n int, sliced bool) bool {
	families := scrape("http://" + metricsAddr + "/metrics")
	if families == nil {
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
	if built := families["octopods_operator_key_digest_slices_built"].GetMetric(); sliced && (len(built) == 0 || built[0].GetGauge().GetValue() != 1) {
		return false
	}
	for _, ctrl := range []string{"workspaceapikey", "workspace"} {
		if value("controller_runtime_reconcile_total", "controller", ctrl) < float64(n) ||
			value("workqueue_depth", "name", ctrl) > 0 || value("octopods_operator_reconcile_backlog", "controller", ctrl) > 0 ||
			value("controller_runtime_active_workers", "controller", ctrl) > 0 {
			return false
		}
	}
	return true
}

// scrape reads a Prometheus endpoint; nil if it does not answer (yet).
func scrape(url string) map[string]*dto.MetricFamily {
	res, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer func() { _ = res.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		return nil
	}
	return families
}

// managerMemoryLimit is the manager's GOMEMLIMIT (-manager-gomemlimit).
var managerMemoryLimit string

func logLevel() string {
	if managerLog != "" {
		return "info"
	}
	return "error"
}

// managerLog is where -manager-log appends the restarted managers' logs.
var managerLog string

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
