// Package benchenv is what the hack/ benchmarks share: a local control plane
// with the CRDs (envtest assets, KUBEBUILDER_ASSETS), an unthrottled admin
// client, a kubeconfig for the binaries they start, the binaries built as
// `make build` builds them, and the figures of a process.
package benchenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/keyslice"
)

// Env is a running local control plane and a scratch directory.
type Env struct {
	Config *rest.Config
	Scheme *runtime.Scheme
	Client client.Client
	// Dir holds the kubeconfig and the built binaries.
	Dir, Kubeconfig string
	env             *envtest.Environment
	worktrees       []string
}

// Start starts the control plane (run from the repository root).
func Start(name string) *Env {
	e := &Env{env: &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("config", "crd", "bases")}, ErrorIfCRDPathMissing: true}}
	cfg, err := e.env.Start()
	Check(err)
	cfg.QPS, cfg.Burst = -1, 0 // the benchmark's own writes are not what is measured
	e.Config = cfg
	e.Scheme = runtime.NewScheme()
	Check(clientgoscheme.AddToScheme(e.Scheme))
	Check(octopodsv1alpha1.AddToScheme(e.Scheme))
	e.Client, err = client.New(cfg, client.Options{Scheme: e.Scheme})
	Check(err)
	e.Dir, err = os.MkdirTemp("", name)
	Check(err)
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, cfg)
	Check(err)
	kubeconfig, err := user.KubeConfig()
	Check(err)
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	Check(os.WriteFile(e.Kubeconfig, kubeconfig, 0o600))
	return e
}

// Stop stops the control plane and removes the scratch directory (and the
// worktrees BuildAt checked out).
func (e *Env) Stop() {
	_ = e.env.Stop()
	for _, wt := range e.worktrees {
		_ = exec.Command("git", "worktree", "remove", "--force", wt).Run()
	}
	_ = os.RemoveAll(e.Dir)
}

// BuildAt builds ./cmd/<name> as it was at the git commit ref (a
// worktree in Dir): the design a change replaces, measured in the same run.
func (e *Env) BuildAt(ref, name string) string {
	src := e.SourceAt(ref)
	bin := filepath.Join(e.Dir, name+"-"+ref)
	build := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
	build.Dir, build.Stdout, build.Stderr = src, os.Stderr, os.Stderr
	Check(build.Run())
	return bin
}

// SourceAt checks the git commit ref out (a worktree in Dir, once) and
// returns its path.
func (e *Env) SourceAt(ref string) string {
	src := filepath.Join(e.Dir, "src-"+ref)
	if _, err := os.Stat(src); err != nil {
		add := exec.Command("git", "worktree", "add", "--detach", src, ref)
		add.Stdout, add.Stderr = os.Stderr, os.Stderr
		Check(add.Run())
		e.worktrees = append(e.worktrees, src)
	}
	return src
}

// Build builds ./cmd/<name> into Dir and returns its path.
func (e *Env) Build(name string) string {
	bin := filepath.Join(e.Dir, name)
	build := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	Check(build.Run())
	return bin
}

// ProcMiB is a memory field of /proc/<pid>/status ("VmRSS:", "VmHWM:"), in MiB.
func ProcMiB(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	Check(err)
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), field) {
			var kb float64
			_, _ = fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(s.Text(), field)), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// ProcCPU is the CPU time (user and system) the process pid has used, from
// /proc/<pid>/stat (in clock ticks of 1/100 s, Linux's USER_HZ).
func ProcCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	Check(err)
	// The command name, in parentheses, may hold spaces: fields count
	// from after it, state first (field 3), utime and stime 14 and 15.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	var user, system int64
	_, _ = fmt.Sscan(fields[11], &user)
	_, _ = fmt.Sscan(fields[12], &system)
	return time.Duration(user+system) * 10 * time.Millisecond
}

// ProxyGoMemLimit is the auth proxy Deployment's GOMEMLIMIT, which the
// benchmarks run it with.
const ProxyGoMemLimit = "48MiB"

// WaitReady polls url until it answers 200, for at most timeout.
func WaitReady(url string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if res, err := http.Get(url); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	panic(url + " never became ready")
}

// LiveHeap is this process's live heap: what is left after two collections.
func LiveHeap() uint64 {
	goruntime.GC()
	goruntime.GC()
	var m goruntime.MemStats
	goruntime.ReadMemStats(&m)
	return m.HeapAlloc
}

// FreePort is a free 127.0.0.1 address.
func FreePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Check(err)
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// Check ends a benchmark on an error.
func Check(err error) {
	if err != nil {
		panic(err)
	}
}

// PublishSlices writes the KeyDigestSlices of namespace ns from its
// WorkspaceAPIKeys' statuses, packed as the manager packs them
// (keyslice.Pack, keyslice.KeysPerSlice): for benchmarks that write
// statuses as the operator does without running it, since the auth proxy
// reads slices only.
func (e *Env) PublishSlices(ctx context.Context, ns string) {
	list := &octopodsv1alpha1.WorkspaceAPIKeyList{}
	Check(e.Client.List(ctx, list, client.InNamespace(ns)))
	desired := map[keyslice.Ref]octopodsv1alpha1.SlicedKey{}
	for i := range list.Items {
		if entry, ok := keyslice.Entry(&list.Items[i]); ok {
			desired[keyslice.RefOf(&entry)] = entry
		}
	}
	e.WriteSlices(ctx, ns, desired)
}

// WriteSlices packs entries into new KeyDigestSlices of ns, as the manager
// would, and creates them.
func (e *Env) WriteSlices(ctx context.Context, ns string, desired map[keyslice.Ref]octopodsv1alpha1.SlicedKey) {
	for _, s := range keyslice.Pack(nil, desired, nil, keyslice.KeysPerSlice).Write {
		Check(e.Client.Create(ctx, &octopodsv1alpha1.KeyDigestSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "keys-", Labels: map[string]string{octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleKeys}},
			Keys:       s.Keys,
		}))
	}
}
