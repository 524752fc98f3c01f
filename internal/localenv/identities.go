package localenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/octopods/octopods-operator/internal/policy"
)

// SystemNamespace holds the components' ServiceAccounts, as config/default
// installs them.
const SystemNamespace = policy.ManagerNamespace

// The components' ServiceAccounts, named as config/default installs them:
// they run with exactly the ClusterRoles `make deploy` binds, so a missing
// RBAC verb fails here as in a cluster, and the admission policy that names
// the manager's identity knows this one.
const (
	ManagerServiceAccount = policy.ManagerServiceAccount
	ProxyServiceAccount   = "octopods-auth-proxy"
)

// ServiceAccountUser is the username the API server gives a ServiceAccount.
func ServiceAccountUser(name string) string {
	return "system:serviceaccount:" + SystemNamespace + ":" + name
}

// identity is a component's ServiceAccount and the manifests of its role.
type identity struct {
	serviceAccount, clusterRole string
	manifest                    string // under config/
}

var identities = []identity{
	{ManagerServiceAccount, "manager-role", "rbac/role.yaml"},
	{ProxyServiceAccount, "auth-proxy-role", "auth-proxy/role.yaml"},
}

// policies are the admission policies config/default installs.
var policies = []string{"rbac/key_rotator_policy.yaml", "rbac/published_keys_policy.yaml", "rbac/audit_stamps_policy.yaml"}

// peopleRoles are the ClusterRoles people are bound to, named as
// config/default installs them (octopods-workspace-editor, …), so that a
// RoleBinding tried locally works as in a cluster.
var peopleRoles = []string{"rbac/workspace_editor_role.yaml", "rbac/workspace_viewer_role.yaml", "rbac/key_rotator_role.yaml"}

// setUpIdentities applies the components' ClusterRoles and the admission
// policies, binds each role to its ServiceAccount, and writes a kubeconfig
// per component holding a token of that ServiceAccount.
func (e *Env) setUpIdentities(ctx context.Context, admin *rest.Config) (map[string]string, error) {
	c, err := client.New(admin, client.Options{})
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	for _, m := range policies {
		if err := createManifests(ctx, c, filepath.Join(e.Root, "config", m), ""); err != nil {
			return nil, err
		}
	}
	for _, m := range peopleRoles {
		if err := createManifests(ctx, c, filepath.Join(e.Root, "config", m), "octopods-"); err != nil {
			return nil, err
		}
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}}); err != nil {
		return nil, err
	}
	kubeconfigs := map[string]string{}
	for _, id := range identities {
		if err := createManifests(ctx, c, filepath.Join(e.Root, "config", id.manifest), ""); err != nil {
			return nil, err
		}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: SystemNamespace, Name: id.serviceAccount}}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: id.serviceAccount},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: id.clusterRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: SystemNamespace, Name: id.serviceAccount}},
		}
		for _, obj := range []client.Object{sa, binding} {
			if err := c.Create(ctx, obj); err != nil {
				return nil, err
			}
		}
		expiry := int64(7 * 24 * 3600) // run-local may run for days
		token, err := cs.CoreV1().ServiceAccounts(SystemNamespace).CreateToken(ctx, id.serviceAccount,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("token for ServiceAccount %s: %w", id.serviceAccount, err)
		}
		path := filepath.Join(e.Dir, id.serviceAccount+".kubeconfig")
		if err := writeTokenKubeconfig(path, admin, token.Status.Token); err != nil {
			return nil, err
		}
		kubeconfigs[id.serviceAccount] = path
	}
	return kubeconfigs, nil
}

// createManifests creates every object of a YAML file, its name prefixed
// with namePrefix as kustomize's namePrefix would.
func createManifests(ctx context.Context, c client.Client, path, namePrefix string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	decoder := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		obj.SetName(namePrefix + obj.GetName())
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("%s: %s %s: %w", path, obj.GetKind(), obj.GetName(), err)
		}
	}
}

func writeTokenKubeconfig(path string, admin *rest.Config, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: admin.CAData}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "sa"}
	cfg.CurrentContext = "local"
	return clientcmd.WriteToFile(*cfg, path)
}
