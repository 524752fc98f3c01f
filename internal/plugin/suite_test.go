package plugin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/octopods/octopods-operator/controllers"
	"github.com/octopods/octopods-operator/internal/testutil"
)

// People of the specs, by the ClusterRole their RoleBinding names.
const (
	editor  = "member@acme.example"
	viewer  = "viewer@acme.example"
	rotator = "support@octopods.example"
)

var (
	testEnv    *envtest.Environment
	restCfg    *rest.Config
	k8sClient  client.Client
	kubeconfig string
	ctx        = context.Background()
	stopMgr    context.CancelFunc
)

func TestPlugin(t *testing.T) { testutil.RunSpecs(t, "kubectl octopods Suite") }

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	testEnv = &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	var err error
	restCfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	for _, f := range []string{"workspace_editor_role.yaml", "workspace_viewer_role.yaml", "key_rotator_role.yaml", "key_rotator_policy.yaml"} {
		createManifests(filepath.Join("..", "..", "config", "rbac", f))
	}
	kubeconfig = writeKubeconfig(restCfg)

	// The real operator (controllers only: the suite has no webhook server).
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{Scheme: scheme, Cache: controllers.CacheOptions(controllers.NewCacheHealth()),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.Setup(mgr, controllers.Options{MaxConcurrentReconciles: 2})).To(Succeed())
	var mctx context.Context
	mctx, stopMgr = context.WithCancel(context.Background())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(mctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if stopMgr != nil {
		stopMgr()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

func createManifests(path string) {
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	d := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := d.Decode(&obj.Object); err != nil {
			return
		}
		if len(obj.Object) > 0 {
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		}
	}
}

func writeKubeconfig(cfg *rest.Config) string {
	c := clientcmdapi.NewConfig()
	c.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	c.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	c.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: "default"}
	c.CurrentContext = "envtest"
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(clientcmd.WriteToFile(*c, path)).To(Succeed())
	return path
}

// newNamespace makes a namespace with the three people bound in it.
func newNamespace() string {
	ns := testutil.NewNamespace(k8sClient, "plugin-")
	for user, role := range map[string]string{editor: "workspace-editor", viewer: "workspace-viewer", rotator: "key-rotator"} {
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: strings.ReplaceAll(strings.ReplaceAll(user, "@", "-at-"), ".", "-")},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		})).To(Succeed())
	}
	return ns
}

// result is what one run of the plugin printed.
type result struct {
	out, errOut string
	err         error
}

// run runs `kubectl octopods args...` as user in ns, its stdout a pipe
// unless terminal.
func run(user, ns string, terminal bool, args ...string) result {
	var out, errOut bytes.Buffer
	o := &Options{
		Flags:      genericclioptions.NewConfigFlags(false),
		IOStreams:  genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		IsTerminal: func() bool { return terminal },
		Now:        time.Now,
	}
	cmd := newCommand(o)
	flags := []string{"--kubeconfig", kubeconfig, "-n", ns, "--as", user}
	if args[0] == "__complete" {
		// The word being completed stays last.
		args = append(append(args[:len(args)-1:len(args)-1], flags...), args[len(args)-1])
	} else {
		args = append(args, flags...)
	}
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(ctx)
	return result{out: out.String(), errOut: errOut.String(), err: err}
}

// secretKey is the key in the workspace's Secret, once issued.
func secretKey(ns, name string) string {
	return testutil.IssuedKey(k8sClient, ns, name)
}
