// Command rssbench measures the auth-proxy binary's memory with many keys:
// it fills a local control plane (envtest assets, KUBEBUILDER_ASSETS) with
// WorkspaceAPIKeys publishing their keys' digests, as the operator writes
// them, starts the real binary against it, waits for /readyz, and prints the
// process's resident and peak memory.
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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/hack/benchenv"
	"github.com/octopods/octopods-operator/internal/apikey"
)

func main() {
	n := flag.Int("keys", 100_000, "WorkspaceAPIKeys (published keys) to load.")
	workers := flag.Int("workers", 32, "Concurrent creates.")
	load := flag.Duration("load", 10*time.Second, "Traffic sent before the second measurement.")
	proxyEnv := flag.String("env", "", "Extra environment for the proxy, e.g. GOMEMLIMIT=56MiB (comma-separated).")
	flag.Parse()
	ctx := context.Background()

	env := benchenv.Start("rssbench")
	defer env.Stop()
	c := env.Client

	start := time.Now()
	sample := make([]string, 1000) // keys to send traffic with
	var created atomic.Int64
	next := make(chan int)
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for i := range next {
				key, err := apikey.Generate()
				check(err)
				if i < len(sample) {
					sample[i] = key
				}
				ws := fmt.Sprintf("ws-%06d", i)
				k := &octopodsv1alpha1.WorkspaceAPIKey{
					ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: ws},
					Spec:       octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: ws},
				}
				check(c.Create(ctx, k))
				// Shaped as the operator writes it: status with a condition
				// and the published digest.
				d := apikey.DigestOf(key)
				now := metav1.Now()
				k.Status = octopodsv1alpha1.APIKeyStatus{
					SecretName: ws + "-api-key", KeyID: d.ID(), IssuedAt: &now, ObservedGeneration: k.Generation,
					PublishedKeys: []octopodsv1alpha1.PublishedKey{{KeyID: d.ID(), Digest: d.String()}},
					Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "KeyIssued",
						Message: fmt.Sprintf("Key %s is in Secret %q", d.ID(), ws+"-api-key"), LastTransitionTime: now, ObservedGeneration: k.Generation}},
				}
				check(c.Status().Update(ctx, k))
				if n := created.Add(1); n%20_000 == 0 {
					fmt.Fprintf(os.Stderr, "rssbench: %d WorkspaceAPIKeys created\n", n)
				}
			}
		})
	}
	for i := range *n {
		next <- i
	}
	close(next)
	wg.Wait()
	env.PublishSlices(ctx, "default")
	fmt.Printf("rssbench: created %d WorkspaceAPIKeys with published keys (and their KeyDigestSlices) in %s\n", *n, time.Since(start).Round(time.Millisecond))

	bin := env.Build("auth-proxy")
	listen, probes, metrics := benchenv.FreePort(), benchenv.FreePort(), benchenv.FreePort()
	proxy := exec.Command(bin, "--kubeconfig", env.Kubeconfig,
		"--listen-address", listen, "--health-probe-bind-address", probes, "--metrics-bind-address", metrics)
	proxy.Stderr = io.Discard
	proxy.Env = os.Environ()
	if *proxyEnv != "" {
		proxy.Env = append(proxy.Env, strings.Split(*proxyEnv, ",")...)
		fmt.Printf("rssbench: proxy environment %s\n", *proxyEnv)
	}
	start = time.Now()
	check(proxy.Start())
	defer func() { _ = proxy.Process.Kill(); _ = proxy.Wait() }()
	for !ok("http://"+probes+"/readyz", "") {
		if time.Since(start) > 5*time.Minute {
			panic("proxy never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("rssbench: proxy ready (first full sync of %d keys) after %s\n", *n, time.Since(start).Round(time.Millisecond))
	if !ok("http://"+listen+"/", sample[0]) {
		panic("a loaded key was refused")
	}
	time.Sleep(2 * time.Second)
	fmt.Printf("rssbench: auth-proxy with %d keys loaded, at rest: RSS %s, peak RSS %s (target: RSS <= 64 MiB)\n",
		*n, mib(proxy.Process.Pid, "VmRSS:"), mib(proxy.Process.Pid, "VmHWM:"))

	// Steady state under traffic: request garbage grows the heap to the GC goal.
	served := traffic("http://"+listen+"/", sample, *load)
	fmt.Printf("rssbench: after %s of traffic (%d admitted requests): RSS %s, peak RSS %s\n",
		*load, served, mib(proxy.Process.Pid, "VmRSS:"), mib(proxy.Process.Pid, "VmHWM:"))
}

// traffic sends requests with the sample keys from 16 connections for d.
func traffic(url string, keys []string, d time.Duration) int64 {
	var served atomic.Int64
	end := time.Now().Add(d)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; time.Now().Before(end); i += 16 {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("X-Octopods-Auth", keys[i%len(keys)])
				res, err := client.Do(req)
				check(err)
				_ = res.Body.Close()
				if res.StatusCode == http.StatusOK {
					served.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return served.Load()
}

func ok(url, key string) bool {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("X-Octopods-Auth", key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = res.Body.Close()
	return res.StatusCode == http.StatusOK
}

func mib(pid int, field string) string {
	return fmt.Sprintf("%.1f MiB", benchenv.ProcMiB(pid, field))
}

var check = benchenv.Check
