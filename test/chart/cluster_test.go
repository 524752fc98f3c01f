package chart

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// notServedHere are the kinds whose CRDs cannot be had without network:
// cert-manager's and the Prometheus Operator's. Only these are skipped in
// the dry-run, and the test checks the API server really lacks them.
var notServedHere = map[string]bool{
	"cert-manager.io/Certificate":          true,
	"cert-manager.io/Issuer":               true,
	"monitoring.coreos.com/ServiceMonitor": true,
	"monitoring.coreos.com/PrometheusRule": true,
}

var (
	envOnce sync.Once
	env     *envtest.Environment
	envCfg  *rest.Config
	envErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		_ = env.Stop()
	}
	os.Exit(code)
}

// cluster starts one envtest control plane for the package (KUBEBUILDER_ASSETS,
// which make test sets) and returns its config and a kubeconfig file for Helm.
func cluster(t *testing.T) (*rest.Config, string) {
	t.Helper()
	envOnce.Do(func() {
		env = &envtest.Environment{}
		envCfg, envErr = env.Start()
	})
	if envErr != nil {
		t.Fatalf("envtest (set KUBEBUILDER_ASSETS, as make test does): %v", envErr)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: envCfg.Host, CertificateAuthorityData: envCfg.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: envCfg.CertData, ClientKeyData: envCfg.KeyData, Token: envCfg.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	cfg.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	return envCfg, kubeconfig
}

type applier struct {
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper
}

func newApplier(t *testing.T, cfg *rest.Config) *applier {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
}

// apply server-side applies obj (dryRun: the API server validates it, with
// admission, and stores nothing). It returns false for a kind not served.
func (a *applier) apply(t *testing.T, obj *unstructured.Unstructured, dryRun bool) bool {
	t.Helper()
	gvk := obj.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	var res dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		res = a.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	opts := metav1.PatchOptions{FieldManager: "chart-test", Force: ptrTo(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := res.Patch(context.Background(), obj.GetName(), types.ApplyPatchType, data, opts); err != nil {
		t.Errorf("%s %s: %v", gvk.Kind, obj.GetName(), err)
	}
	if gvk.Kind == "CustomResourceDefinition" {
		a.mapper.Reset()
	}
	return true
}

func ptrTo[T any](v T) *T { return &v }

func ensureNamespaces(t *testing.T, a *applier, names ...string) {
	for _, n := range names {
		ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": n}}}
		a.apply(t, ns, false)
	}
}

// TestEveryObjectPassesServerSideDryRun applies the chart's CRDs, then every
// other object of every values combination with a server-side dry-run: the
// API server's own validation (schemas, CEL of the admission policies,
// RBAC escalation checks) accepts each one.
func TestEveryObjectPassesServerSideDryRun(t *testing.T) {
	cfg, _ := cluster(t)
	a := newApplier(t, cfg)
	ensureNamespaces(t, a, releaseNS, "team-a", "team-b")
	for _, o := range mustRender(t, nil) {
		if o.GetKind() == "CustomResourceDefinition" {
			a.apply(t, o, false)
		}
	}
	waitServed(t, a, schema.GroupVersionKind{Group: "octopods.io", Version: "v1alpha1", Kind: "WorkspaceAPIKey"})
	skipped := map[string]bool{}
	for _, tc := range valuesMatrix {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			for _, o := range mustRender(t, tc.vals) {
				if !a.apply(t, o, o.GetKind() != "CustomResourceDefinition") {
					skipped[o.GroupVersionKind().Group+"/"+o.GetKind()] = true
					continue
				}
				n++
			}
			t.Logf("%d objects accepted", n)
		})
	}
	var kinds []string
	for k := range skipped {
		kinds = append(kinds, k)
		if !notServedHere[k] {
			t.Errorf("%s was skipped: only kinds whose CRDs cannot be had here may be", k)
		}
	}
	sort.Strings(kinds)
	t.Logf("skipped (not served here): %s", strings.Join(kinds, ", "))
}

// helmConfig is Helm's action configuration on the envtest cluster.
func helmConfig(t *testing.T, kubeconfig string) *action.Configuration {
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &kubeconfig
	ns := releaseNS
	flags.Namespace = &ns
	cfg := &action.Configuration{}
	if err := cfg.Init(flags, releaseNS, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestInstallUpgradeUninstall installs the chart for real (without
// cert-manager, which cannot be had here), upgrades it, and uninstalls it:
// the generated webhook CA survives the upgrade, and the CRDs, Workspaces,
// keys and key Secrets survive the uninstall.
func TestInstallUpgradeUninstall(t *testing.T) {
	restCfg, kubeconfig := cluster(t)
	a := newApplier(t, restCfg)
	ensureNamespaces(t, a, releaseNS, "team-install")
	vals := map[string]any{"webhook": map[string]any{"certManager": map[string]any{"enabled": false}}}

	// An earlier release left its CRDs and a key behind (webhooks absent,
	// so the key can be made by hand here): the install adopts the CRDs.
	for _, o := range mustRender(t, vals) {
		if o.GetKind() == "CustomResourceDefinition" {
			o.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "Helm"})
			o.SetAnnotations(map[string]string{"meta.helm.sh/release-name": "octopods-operator", "meta.helm.sh/release-namespace": releaseNS})
			a.apply(t, o, false)
		}
	}
	key := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "octopods.io/v1alpha1", "kind": "WorkspaceAPIKey",
		"metadata": map[string]any{"name": "acme", "namespace": "team-install"},
		"spec":     map[string]any{"workspaceName": "acme"},
	}}
	// The CRDs serve once discovery lists them.
	deadline := time.Now().Add(30 * time.Second)
	for !a.apply(t, key, false) {
		if time.Now().After(deadline) {
			t.Fatal("the CRDs were never served")
		}
		time.Sleep(100 * time.Millisecond)
		a.mapper.Reset()
	}

	cfg := helmConfig(t, kubeconfig)
	// With the default values, and no cert-manager in this cluster: the
	// install fails before it applies anything, saying what to do.
	withoutCertManager := action.NewInstall(cfg)
	withoutCertManager.ReleaseName, withoutCertManager.Namespace = "octopods-operator", releaseNS
	_, err := withoutCertManager.Run(loadChart(t), map[string]any{})
	if err == nil || !strings.Contains(err.Error(), "cert-manager is not installed") || !strings.Contains(err.Error(), "webhook.certManager.enabled=false") {
		t.Fatalf("helm install without cert-manager: want the chart's own failure naming webhook.certManager.enabled=false, got %v", err)
	}
	if _, err := a.dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace(releaseNS).Get(context.Background(), "octopods-controller-manager", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the failed install applied the manager Deployment: %v", err)
	}

	install := action.NewInstall(cfg)
	install.ReleaseName, install.Namespace = "octopods-operator", releaseNS
	if _, err := install.Run(loadChart(t), vals); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	caBefore := webhookCA(t, a)

	upgrade := action.NewUpgrade(cfg)
	upgrade.Namespace = releaseNS
	upgraded := map[string]any{"webhook": vals["webhook"], "authProxy": map[string]any{"replicas": 3}}
	if _, err := upgrade.Run("octopods-operator", loadChart(t), upgraded); err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	if after := webhookCA(t, a); after != caBefore {
		t.Error("helm upgrade generated a new webhook CA: the webhooks would distrust the running manager's certificate")
	}
	proxy := get(t, a, schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, releaseNS, "octopods-auth-proxy")
	if r, _, _ := unstructured.NestedFieldNoCopy(proxy.Object, "spec", "replicas"); r != int64(3) {
		t.Errorf("upgrade did not apply authProxy.replicas: %v", r)
	}

	checkReleaseIdentities(t, restCfg, "team-install")

	if _, err := action.NewUninstall(cfg).Run("octopods-operator"); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	for _, crd := range []string{"workspaces.octopods.io", "workspaceapikeys.octopods.io"} {
		o := get(t, a, schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}, "", crd)
		if o.GetDeletionTimestamp() != nil {
			t.Errorf("helm uninstall deletes CRD %s (annotations %v)", crd, o.GetAnnotations())
		}
	}
	get(t, a, schema.GroupVersionResource{Group: "octopods.io", Version: "v1alpha1", Resource: "workspaceapikeys"}, "team-install", "acme")
	_, err = a.dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace(releaseNS).Get(context.Background(), "octopods-controller-manager", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the manager Deployment survived uninstall: %v", err)
	}
}

func get(t *testing.T, a *applier, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	var res dynamic.ResourceInterface = a.dyn.Resource(gvr)
	if ns != "" {
		res = a.dyn.Resource(gvr).Namespace(ns)
	}
	o, err := res.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return o
}

// webhookCA is the generated CA, checked to be what the webhooks trust.
func webhookCA(t *testing.T, a *applier) string {
	t.Helper()
	s := get(t, a, corev1.SchemeGroupVersion.WithResource("secrets"), releaseNS, "webhook-server-cert")
	ca, _, _ := unstructured.NestedString(s.Object, "data", "ca.crt")
	w := get(t, a, schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}, "", "octopods-validating-webhook-configuration")
	hooks, _, _ := unstructured.NestedSlice(w.Object, "webhooks")
	for _, h := range hooks {
		if b, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle"); b != ca || ca == "" {
			t.Fatalf("webhook %v trusts another CA than the Secret's", h.(map[string]any)["name"])
		}
	}
	return ca
}

// checkReleaseIdentities asks the API server what the release's
// ServiceAccounts may do: the manager issues keys anywhere and alone may
// publish them; the proxy reads keys and records their use, and no Secret.
func checkReleaseIdentities(t *testing.T, cfg *rest.Config, ns string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sa := func(name string) string { return "system:serviceaccount:" + releaseNS + ":" + name }
	// Publishing is the release's manager's alone, by its name.
	for _, name := range []string{"octopods-workspaceapikey-published-keys", "octopods-workspaceapikey-spec-needs-update", "octopods-keydigestslices-manager-only"} {
		policy, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprint(policy.Spec.MatchConditions, policy.Spec.Variables)
		if !strings.Contains(text, "'"+sa("octopods-controller-manager")+"'") {
			t.Errorf("policy %s does not name the release's manager %s: %s", name, sa("octopods-controller-manager"), text)
		}
	}
	for _, c := range []struct {
		user, verb, group, resource, sub string
		want                             bool
	}{
		{sa("octopods-controller-manager"), "create", "", "secrets", "", true},
		{sa("octopods-controller-manager"), "patch", "octopods.io", "workspaceapikeys", "status", true},
		{sa("octopods-controller-manager"), "create", "octopods.io", "keydigestslices", "", true},
		{sa("octopods-auth-proxy"), "watch", "octopods.io", "keydigestslices", "", true},
		{sa("octopods-auth-proxy"), "watch", "octopods.io", "workspaceapikeys", "", false},
		{sa("octopods-auth-proxy"), "list", "octopods.io", "workspaceapikeys", "", false},
		{sa("octopods-auth-proxy"), "patch", "octopods.io", "workspaceapikeys", "status", true},
		{sa("octopods-auth-proxy"), "get", "", "secrets", "", false},
		{sa("octopods-auth-proxy"), "list", "", "secrets", "", false},
	} {
		review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: c.user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNS, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: c.verb, Group: c.group, Resource: c.resource, Subresource: c.sub},
		}}
		got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), review, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != c.want {
			t.Errorf("%s %s %s/%s in %s: allowed=%v, want %v", c.user, c.verb, c.resource, c.sub, ns, got.Status.Allowed, c.want)
		}
	}
}

// waitServed waits until discovery serves gvk (a CRD just created).
func waitServed(t *testing.T, a *applier, gvk schema.GroupVersionKind) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.mapper.Reset()
		if _, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served", gvk)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
