// Command syncbench times the auth proxy's first sync (start to /readyz)
// over N keys held in KeyDigestSlices, for several proxy flag sets in one
// run, each beside the same flags on a baseline build (-baseline-ref,
// built from git), the proxy starts of the two interleaved. It writes the slices
// directly, shaped as the manager writes them (keyslice.Entry of an issued
// key, packed by keyslice.Pack), without key objects: the proxy reads
// nothing else, and 100k keys are then 201 writes instead of 200,000.
//
//	go run ./hack/syncbench -keys 100000 -runs 5 -variant '' -variant '--list-page-size=50'
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/hack/benchenv"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keyslice"
	"github.com/octopods/octopods-operator/internal/testutil"
)

const ns = "syncbench"

type variants []string

func (v *variants) String() string     { return strings.Join(*v, " | ") }
func (v *variants) Set(s string) error { *v = append(*v, s); return nil }

func main() {
	n := flag.Int("keys", 100_000, "Keys in the slices.")
	runs := flag.Int("runs", 5, "Proxy starts per variant and build (the median is reported).")
	baselineRef := flag.String("baseline-ref", "87a1ffd", "Git commit of the baseline proxy: the last one before lists were pipelined.")
	var vs variants
	flag.Var(&vs, "variant", "Extra auth-proxy flags, space-separated (repeat; none: one variant without flags).")
	flag.Parse()
	if len(vs) == 0 {
		vs = variants{""}
	}
	ctx := context.Background()
	env := benchenv.Start("syncbench")
	defer env.Stop()
	proxy, baseline := env.Build("auth-proxy"), env.BuildAt(*baselineRef, "auth-proxy")

	start := time.Now()
	fill(ctx, env, *n)
	fmt.Printf("syncbench: %d keys in KeyDigestSlices of %d, written in %s\n", *n, keyslice.KeysPerSlice, time.Since(start).Round(time.Millisecond))

	for _, v := range vs {
		var ready, before []time.Duration
		var lists, beforeLists int
		var peak, beforePeak float64
		for range *runs {
			d, l, p := sync(ctx, env, proxy, strings.Fields(v))
			ready, lists, peak = append(ready, d), l, max(peak, p)
			d, l, p = sync(ctx, env, baseline, strings.Fields(v))
			before, beforeLists, beforePeak = append(before, d), l, max(beforePeak, p)
		}
		slices.Sort(ready)
		slices.Sort(before)
		median, baseMedian := ready[len(ready)/2], before[len(before)/2]
		fmt.Printf("syncbench: %d keys, flags %q: ready in %s (median of %d: %v), %d LIST requests, peak RSS %.0f MiB; baseline %s: %s (%v), %d LIST requests, peak RSS %.0f MiB; %.2fx the baseline's time\n",
			*n, v, median.Round(10*time.Millisecond), *runs, rounded(ready), lists, peak, *baselineRef, baseMedian.Round(10*time.Millisecond), rounded(before), beforeLists, beforePeak,
			median.Seconds()/baseMedian.Seconds())
	}
}

func rounded(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}

// fill writes n keys' entries into slices and the manager's marker.
func fill(ctx context.Context, env *benchenv.Env, n int) {
	benchenv.Check(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	desired := make(map[keyslice.Ref]octopodsv1alpha1.SlicedKey, n)
	now := metav1.Now()
	for i := range n {
		key, err := apikey.Generate()
		benchenv.Check(err)
		d := apikey.DigestOf(key)
		k := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("ws-%06d", i)}}
		k.Spec.WorkspaceName = k.Name
		k.Status.IssuedAt = &now
		k.Status.PublishedKeys = []octopodsv1alpha1.PublishedKey{{KeyID: d.ID(), Digest: d.String()}}
		e, ok := keyslice.Entry(k)
		if !ok {
			panic("no entry for an issued key")
		}
		desired[keyslice.RefOf(&e)] = e
	}
	env.WriteSlices(ctx, ns, desired)
	benchenv.Check(env.Client.Create(ctx, &octopodsv1alpha1.KeyDigestSlice{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: octopodsv1alpha1.SlicesBuiltName, Labels: map[string]string{octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleBuilt}}}))
}

// sync starts the proxy with extra flags and returns how long until it is
// ready, the LIST requests it made meanwhile, and its peak RSS (MiB).
func sync(ctx context.Context, env *benchenv.Env, bin string, extra []string) (time.Duration, int, float64) {
	before, err := testutil.APIServerRequests(ctx, env.Config, false, "LIST")
	benchenv.Check(err)
	probes := benchenv.FreePort()
	args := append([]string{"--kubeconfig", env.Kubeconfig, "--listen-address", benchenv.FreePort(), "--health-probe-bind-address", probes,
		"--metrics-bind-address", benchenv.FreePort(), "--slices-built-marker", ns + "/" + octopodsv1alpha1.SlicesBuiltName}, extra...)
	proxy := exec.Command(bin, args...)
	proxy.Env = append(os.Environ(), "GOMEMLIMIT="+benchenv.ProxyGoMemLimit)
	proxy.Stderr = io.Discard
	start := time.Now()
	benchenv.Check(proxy.Start())
	defer func() { _ = proxy.Process.Kill(); _ = proxy.Wait() }()
	benchenv.WaitReady("http://"+probes+"/readyz", 5*time.Minute)
	ready := time.Since(start)
	peak := benchenv.ProcMiB(proxy.Process.Pid, "VmHWM:")
	after, err := testutil.APIServerRequests(ctx, env.Config, false, "LIST")
	benchenv.Check(err)
	return ready, after.Minus(before).Total(), peak
}
