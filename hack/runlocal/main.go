// Command runlocal is `make run-local`: the whole system on this machine with
// no cluster, until Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/octopods/octopods-operator/internal/localenv"
)

func main() {
	root, _ := os.Getwd()
	o := localenv.Options{Root: root, Progress: os.Stdout}
	flag.StringVar(&o.Dir, "dir", filepath.Join(root, "bin", "local"), "Where the kubeconfig, logs and control-plane data go.")
	flag.StringVar(&o.ManagerBin, "manager", filepath.Join(root, "bin", "manager"), "The manager binary.")
	flag.StringVar(&o.ProxyBin, "auth-proxy", filepath.Join(root, "bin", "auth-proxy"), "The auth-proxy binary.")
	flag.StringVar(&o.ProxyAddress, "proxy-address", "127.0.0.1:8080", "The auth proxy's traffic address.")
	flag.StringVar(&o.ProxyProbeAddress, "proxy-probe-address", "127.0.0.1:8081", "The auth proxy's /healthz and /readyz.")
	flag.StringVar(&o.ProxyMetricsAddress, "proxy-metrics-address", "127.0.0.1:8082", "The auth proxy's /metrics.")
	flag.StringVar(&o.ProxyGRPCAddress, "proxy-grpc-address", "127.0.0.1:9001", "The auth proxy's Envoy ext_authz gRPC service.")
	flag.StringVar(&o.SecretScanningAddress, "secret-scanning-address", "127.0.0.1:8085", "The auth proxy's GitHub secret scanning endpoint, trusting the local key pair in <dir>/secret-scanning.")
	flag.StringVar(&o.ManagerMetricsAddress, "manager-metrics-address", "127.0.0.1:8083", "The manager's /metrics.")
	flag.StringVar(&o.ManagerProbeAddress, "manager-probe-address", "127.0.0.1:8084", "The manager's /healthz and /readyz.")
	flag.StringVar(&o.EchoAddress, "echo-address", "127.0.0.1:8090", "The echo upstream, which answers with the headers it received.")
	flag.DurationVar(&o.LastUsedFlushInterval, "last-used-flush-interval", 10*time.Second, "How often the proxy writes status.lastUsedTime (shorter than in production, to see it move).")
	flag.Parse()
	if err := findEnvtestAssets(root); err != nil {
		fmt.Fprintf(os.Stderr, "run-local: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	env, err := localenv.Start(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "run-local: %v\n", err)
		os.Exit(1)
	}
	rel, _ := filepath.Rel(root, env.Kubeconfig)
	fmt.Printf("run-local: ready in %s. Logs: %s/{manager,auth-proxy}.log\n\nTry this in another terminal:\n\n%s\nCtrl-C stops everything.\n",
		time.Since(started).Round(100*time.Millisecond), filepath.Dir(rel), tryIt(rel, o.ProxyAddress, o.ProxyGRPCAddress, o.SecretScanningAddress))

	<-ctx.Done()
	fmt.Println("\nrun-local: stopping")
	env.Stop()
	fmt.Println("run-local: stopped")
}

// findEnvtestAssets sets KUBEBUILDER_ASSETS, when unset, as the Makefile's
// other targets do (hack/envtest-assets.sh). make runs runlocal with no
// shell in between: a Ctrl-C then ends make's child with runlocal's own
// exit status 0, so make prints no "Interrupt" line. A shell in between
// (Debian's dash) would die of the SIGINT itself after runlocal exits, and
// make would report that.
func findEnvtestAssets(root string) error {
	if os.Getenv("KUBEBUILDER_ASSETS") != "" {
		return nil
	}
	cmd := exec.Command(filepath.Join(root, "hack", "envtest-assets.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("find the control plane's binaries (hack/envtest-assets.sh): %w", err)
	}
	return os.Setenv("KUBEBUILDER_ASSETS", strings.TrimSpace(string(out)))
}

// tryIt is the block run-local prints, and the README's "Try it locally"
// block with the default addresses (a test keeps them the same).
func tryIt(kubeconfig, proxy, grpc, scanning string) string {
	return strings.NewReplacer("KUBECONFIG_PATH", kubeconfig, "PROXY", proxy, "GRPC", grpc, "SCANNING", scanning, "LOCAL_DIR", filepath.Dir(kubeconfig)).Replace(`export KUBECONFIG=KUBECONFIG_PATH PATH=$PWD/bin:$PATH
kubectl apply -k config/samples/
kubectl get workspaces                                               # API KEY: acme-api-key (key 979690f7253f)
KEY=$(kubectl octopods copy acme)
curl -s -H "X-Octopods-Auth: $KEY" http://PROXY/v1/messages   # 200: the upstream sees X-Octopods-Workspace: acme
curl -s http://PROXY/v1/messages                               # 401 {"error":"missing_key"}
go run ./hack/grpccheck -addr GRPC -key "$KEY"             # Envoy's gRPC ext_authz: health SERVING, check OK
kubectl octopods rotate acme                                         # a new key; the old one stops at once (grace 0s)
curl -s -H "X-Octopods-Auth: $KEY" http://PROXY/v1/messages   # 400 {"error":"DEPRECATED_API_KEY"}: rotated away
kubectl octopods audit acme                                          # who rotated it, last uses, events
KEY=$(kubectl octopods copy acme)                                    # leak it: GitHub's report, signed with run-local's key pair
BODY='[{"token":"'$KEY'","type":"octopods_api_key","url":"https://github.com/octo/leaky/blob/main/.env","source":"content"}]'
SIG=$(printf %s "$BODY" | openssl dgst -sha256 -sign LOCAL_DIR/secret-scanning/private-key.pem | openssl base64 -A)
curl -s -H "Github-Public-Key-Identifier: local" -H "Github-Public-Key-Signature: $SIG" -d "$BODY" http://SCANNING/secret-scanning  # label true_positive
curl -s -H "X-Octopods-Auth: $KEY" http://PROXY/v1/messages   # 400 DEPRECATED_API_KEY: rotated within a second; audit shows KeyLeaked
SMS=$(kubectl octopods copy channel/acme-sms)                        # the SMS line's own key (kubectl octopods get channels)
curl -s -H "X-Octopods-Auth: $SMS" http://PROXY/api/v1/sms/messages       # 200: X-Octopods-Key-Type: channel, X-Octopods-Channel: acme-sms
curl -s -H "X-Octopods-Auth: $SMS" http://PROXY/api/v1/whatsapp/messages  # 403 key_scope_mismatch: this path takes a WhatsApp Business key
kubectl create rolebinding support -n default --clusterrole=octopods-key-rotator --user=support@example.com
kubectl octopods rotate acme --as support@example.com                # support may rotate; copy --as support is refused
kubectl octopods ui                                                  # the settings page in your browser
`)
}
