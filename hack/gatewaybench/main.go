// Command gatewaybench measures the real auth-proxy binary where gateways
// put it, against what the same gateway gets without it, on one machine,
// with the same client (wrk), the same keys and interleaved rounds:
//
//   - forward auth behind nginx auth_request: our endpoint against nginx's
//     own map of the same keys (a C hash lookup answering 200 or 401 with an
//     empty body), for admitted and for refused requests (goal 6);
//   - reverse proxy: the binary with --upstream against a bare
//     httputil.ReverseProxy (this command, re-run as a child) in front of
//     the same upstream (goal 7).
//
// Keys are published as the operator publishes them (WorkspaceAPIKey status
// on a local control plane, envtest assets), and the proxy loads them as in
// a cluster. It prints requests/s (median round), and CPU µs per request of
// the processes that differ between the two sides, from /proc.
//
//	go run ./hack/gatewaybench -keys 10000 -rounds 5
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/octopods/octopods-operator/hack/benchenv"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == bareProxyCommand {
		runBareProxy(os.Args[2], os.Args[3])
		return
	}
	nKeys := flag.Int("keys", 10_000, "Keys published (WorkspaceAPIKeys), and in nginx's map.")
	rounds := flag.Int("rounds", 5, "Interleaved rounds per comparison.")
	duration := flag.Duration("duration", 5*time.Second, "Measured time per round.")
	connections := flag.Int("connections", 32, "wrk connections.")
	flag.Parse()

	env := benchenv.Start("gatewaybench")
	defer env.Stop()
	proxyBin := env.Build("auth-proxy")
	admitted, refused := publishKeys(context.Background(), env, *nKeys)
	w := &workload{dir: env.Dir, connections: *connections, duration: *duration}
	w.admitted, w.refused = w.script("admitted", admitted), w.script("refused", refused)

	fmt.Printf("gatewaybench: %d keys, wrk 1 thread %d connections, %d interleaved rounds of %s, %d CPUs\n",
		*nKeys, *connections, *rounds, *duration, runtime.NumCPU())
	forwardAuth(env, proxyBin, w, *rounds)
	reverseProxy(env, proxyBin, w, *rounds)
}
