// Package localenv runs the whole system on one machine with no cluster: a
// local control plane from the envtest assets with the CRDs and webhooks
// installed, the manager and auth-proxy binaries, and an echo upstream.
// `make run-local` and the end-to-end suite both use it.
package localenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// Options say where things live and listen.
type Options struct {
	// Root is the repository root (for config/).
	Root string
	// Dir holds the kubeconfig, logs and control-plane data: bin/local.
	Dir string
	// ManagerBin and ProxyBin are the built binaries.
	ManagerBin, ProxyBin string

	ProxyAddress, ProxyProbeAddress, ProxyMetricsAddress string
	ManagerMetricsAddress, ManagerProbeAddress           string
	EchoAddress                                          string
	// ProxyGRPCAddress serves ext_authz over gRPC ("" : off).
	ProxyGRPCAddress string
	// SecretScanningAddress serves GitHub's secret scanning reports (""
	// : off), trusting a local key pair made in Dir/secret-scanning.
	SecretScanningAddress string
	// LastUsedFlushInterval is passed to the proxy (0: its default).
	LastUsedFlushInterval time.Duration
	// Progress receives one line per step.
	Progress io.Writer
}

// Env is a running local system.
type Env struct {
	Options
	Config     *rest.Config
	Kubeconfig string
	// ManagerKubeconfig and ProxyKubeconfig hold tokens of the components'
	// ServiceAccounts, bound to the ClusterRoles under config/.
	ManagerKubeconfig, ProxyKubeconfig string

	testEnv *envtest.Environment
	lock    *os.File
	manager *process
	proxy   *process
	echo    *http.Server
}

// process is a started binary; done closes when it has exited.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// readyTimeout is how long a started binary may take to report ready.
const readyTimeout = 60 * time.Second

// Start brings everything up. It first clears what a crashed earlier run
// may have left in Dir: processes still running from it, and its data.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	e := &Env{Options: o, Kubeconfig: filepath.Join(o.Dir, "kubeconfig")}
	defer func() {
		if err != nil && e.lock != nil {
			_ = e.lock.Close()
		}
	}()
	if err := e.claimDir(); err != nil {
		return nil, err
	}
	if err := e.startControlPlane(); err != nil {
		return nil, err
	}
	e.step("binding the manager and the auth proxy to their ServiceAccounts' ClusterRoles (config/rbac, config/auth-proxy) and loading the admission policies")
	kubeconfigs, err := e.setUpIdentities(ctx, e.Config)
	if err != nil {
		e.Stop()
		return nil, fmt.Errorf("component identities: %w", err)
	}
	e.ManagerKubeconfig, e.ProxyKubeconfig = kubeconfigs[ManagerServiceAccount], kubeconfigs[ProxyServiceAccount]

	e.echo = echoServer(o.EchoAddress)
	if err := e.StartManager(); err != nil {
		e.Stop()
		return nil, err
	}
	if err := e.startProxy(ctx); err != nil {
		e.Stop()
		return nil, err
	}
	e.recordChildren()
	return e, nil
}

// claimDir takes Dir for this run: one run per directory (a second would
// stop the first's processes as stale; the kernel drops the lock when its
// holder dies, so a crashed run never blocks the next), then clears what an
// earlier run left and checks that every port is free.
func (e *Env) claimDir() error {
	if err := os.MkdirAll(e.Dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(e.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return fmt.Errorf("another run is using %s; stop it first (Ctrl-C in its terminal)", e.Dir)
	}
	e.lock = lock
	if n := killStale(e.Dir); n > 0 {
		e.step("stopped %d processes left running by an earlier run", n)
	}
	for _, sub := range []string{"etcd", "apiserver", "webhook-certs"} {
		if err := os.RemoveAll(filepath.Join(e.Dir, sub)); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(e.Dir, sub), 0o700); err != nil {
			return err
		}
	}
	// Each address with the run-local flag that moves it, for the message.
	for _, a := range []struct{ addr, flag string }{
		{e.ProxyAddress, "proxy-address"}, {e.ProxyProbeAddress, "proxy-probe-address"}, {e.ProxyMetricsAddress, "proxy-metrics-address"},
		{e.ManagerMetricsAddress, "manager-metrics-address"}, {e.ManagerProbeAddress, "manager-probe-address"},
		{e.EchoAddress, "echo-address"}, {e.ProxyGRPCAddress, "proxy-grpc-address"},
	} {
		if a.addr == "" {
			continue
		}
		if err := portFree(a.addr, a.flag); err != nil {
			return err
		}
	}
	return nil
}

// startControlPlane starts etcd and kube-apiserver with the CRDs and the
// webhook configurations, and writes an admin kubeconfig for people.
func (e *Env) startControlPlane() error {
	e.step("starting a local control plane (etcd, kube-apiserver) with the CRDs and webhooks")
	e.testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(e.Root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		// The webhook's serving key lives in Dir, not a temporary directory a
		// crash would leave behind: the next start removes it.
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join(e.Root, "config", "webhook")},
			LocalServingCertDir: filepath.Join(e.Dir, "webhook-certs")},
	}
	e.testEnv.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(e.Dir, "etcd")}
	e.testEnv.ControlPlane.APIServer = &envtest.APIServer{CertDir: filepath.Join(e.Dir, "apiserver")}
	cfg, err := e.testEnv.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	e.Config = cfg
	user, err := e.testEnv.ControlPlane.AddUser(envtest.User{Name: "local-admin", Groups: []string{"system:masters"}}, cfg)
	if err == nil {
		var kubeconfig []byte
		if kubeconfig, err = user.KubeConfig(); err == nil {
			err = os.WriteFile(e.Kubeconfig, kubeconfig, 0o600)
		}
	}
	if err != nil {
		e.Stop()
	}
	return err
}

// startProxy starts the auth proxy in front of the echo upstream.
func (e *Env) startProxy(ctx context.Context) error {
	e.step("starting the auth proxy on %s in front of the echo upstream on %s", e.ProxyAddress, e.EchoAddress)
	args := []string{"--kubeconfig", e.ProxyKubeconfig, "--upstream", "http://" + e.EchoAddress,
		"--listen-address", e.ProxyAddress, "--health-probe-bind-address", e.ProxyProbeAddress, "--metrics-bind-address", e.ProxyMetricsAddress}
	if e.LastUsedFlushInterval > 0 {
		args = append(args, "--last-used-flush-interval", e.LastUsedFlushInterval.String())
	}
	if e.ProxyGRPCAddress != "" {
		args = append(args, "--grpc-bind-address", e.ProxyGRPCAddress)
	}
	// Your own shell's experiments (and the test suites' refusals) are not
	// throttled; other loopback addresses (127.0.0.2, ...) are, to try it.
	args = append(args, "--throttle-exempt-cidrs", "127.0.0.1/32", "--throttle-private-sources",
		"--slices-built-marker", SystemNamespace+"/"+octopodsv1alpha1.SlicesBuiltName)
	if e.SecretScanningAddress != "" {
		keys, err := e.secretScanningKeys()
		if err != nil {
			return fmt.Errorf("secret scanning key pair: %w", err)
		}
		args = append(args, "--secret-scanning-bind-address", e.SecretScanningAddress, "--secret-scanning-public-keys-file", keys)
	}
	var err error
	if e.proxy, err = e.launch("auth-proxy", e.ProxyBin, nil, args...); err == nil {
		err = waitReady(ctx, "http://"+e.ProxyProbeAddress+"/readyz", e.proxy)
	}
	if err != nil {
		return fmt.Errorf("auth proxy: %w (see %s)", err, e.logPath("auth-proxy"))
	}
	return nil
}

// StartManager starts the manager with its webhooks and waits for it.
func (e *Env) StartManager() error {
	e.step("starting the manager with its admission webhooks")
	wio := e.testEnv.WebhookInstallOptions
	var err error
	// POD_NAMESPACE as in a pod: the manager writes the slices' marker
	// there, and the proxy waits for it.
	e.manager, err = e.launch("manager", e.ManagerBin, []string{"ENABLE_WEBHOOKS=true", "POD_NAMESPACE=" + SystemNamespace},
		"--kubeconfig", e.ManagerKubeconfig,
		"--metrics-bind-address", e.ManagerMetricsAddress, "--health-probe-bind-address", e.ManagerProbeAddress,
		"--webhook-cert-dir", wio.LocalServingCertDir, "--webhook-port", strconv.Itoa(wio.LocalServingPort))
	if err == nil {
		err = waitReady(context.Background(), "http://"+e.ManagerProbeAddress+"/readyz", e.manager)
	}
	if err != nil {
		return fmt.Errorf("manager: %w (see %s)", err, e.logPath("manager"))
	}
	e.recordChildren()
	return nil
}

// KillManager kills the manager at once (SIGKILL), as a crash would.
func (e *Env) KillManager() error {
	if e.manager == nil {
		return errors.New("manager not running")
	}
	_ = e.manager.cmd.Process.Kill()
	<-e.manager.done
	e.manager = nil
	return nil
}

// Stop stops everything Start started, in reverse order.
func (e *Env) Stop() {
	for _, p := range []*process{e.proxy, e.manager} {
		p.stop()
	}
	e.proxy, e.manager = nil, nil
	if e.echo != nil {
		_ = e.echo.Close()
	}
	if e.testEnv != nil {
		_ = e.testEnv.Stop()
		// The webhook's private key and the pids go with a clean stop.
		_ = os.RemoveAll(filepath.Join(e.Dir, "webhook-certs"))
		_ = os.Remove(filepath.Join(e.Dir, pidsFile))
	}
	if e.lock != nil {
		_ = e.lock.Close() // releases the flock
	}
}

func (e *Env) step(format string, args ...any) {
	if e.Progress != nil {
		_, _ = fmt.Fprintf(e.Progress, "run-local: "+format+"\n", args...)
	}
}

func (e *Env) logPath(name string) string { return filepath.Join(e.Dir, name+".log") }

// launch starts a binary with its output in Dir/<name>.log. It gets its own
// process group (a terminal's Ctrl-C reaches us, and we stop it in order) and
// dies with us if we are killed.
func (e *Env) launch(name, bin string, env []string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(e.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(p.done) }()
	return p, nil
}

// stop asks the process to shut down gracefully, and kills it after 15s.
func (p *process) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func waitReady(ctx context.Context, url string, p *process) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %s", p.cmd.ProcessState)
		default:
		}
		if res, err := http.Get(url); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready at %s after %s", url, readyTimeout)
}

// pidsFile records the processes a run started (pid and start time), so
// the next run stops exactly those if this one was killed: never another
// program that merely mentions the directory (a tail -f of a log, an editor).
const pidsFile = ".pids"

// recordChildren writes this process's children (the control plane and the
// binaries) to the pids file.
func (e *Env) recordChildren() {
	var b strings.Builder
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if ppid, start, ok := procStat(pid); ok && ppid == os.Getpid() {
			fmt.Fprintf(&b, "%d %s\n", pid, start)
		}
	}
	_ = os.WriteFile(filepath.Join(e.Dir, pidsFile), []byte(b.String()), 0o600)
}

// procStat returns a process's parent and start time (clock ticks since boot).
func procStat(pid int) (int, string, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, "", false
	}
	// The command may contain spaces and parentheses: fields start after the last ')'.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 20 {
		return 0, "", false
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid, fields[19], true
}

// killStale kills the processes an earlier run of dir recorded, if each is
// still the same process (same start time: a reused pid is left alone).
func killStale(dir string) int {
	data, _ := os.ReadFile(filepath.Join(dir, pidsFile))
	killed := 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var pid int
		var start string
		if _, err := fmt.Sscan(line, &pid, &start); err != nil {
			continue
		}
		if _, now, ok := procStat(pid); ok && now == start {
			if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
				killed++
			}
		}
	}
	_ = os.Remove(filepath.Join(dir, pidsFile))
	if killed > 0 {
		time.Sleep(500 * time.Millisecond) // let the kernel release their ports
	}
	return killed
}

// portFree checks that addr can be listened on; the error names the
// run-local flag that moves it.
func portFree(addr, flag string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is taken by another program: stop it, or move this one with make run-local RUN_LOCAL_FLAGS=--%s=127.0.0.1:PORT (%w)", addr, flag, err)
	}
	return l.Close()
}

// echoServer answers every request with the headers it received, as JSON.
func echoServer(addr string) *http.Server {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "headers": r.Header})
	})}
	l, err := net.Listen("tcp", addr)
	if err == nil {
		go func() { _ = srv.Serve(l) }()
	}
	return srv
}

// FreeAddress returns a loopback address with a free port.
func FreeAddress() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
