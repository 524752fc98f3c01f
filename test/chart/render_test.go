// Package chart tests the Helm chart with the Helm SDK (pinned in go.mod),
// with no cluster and no network: rendering against config/, a values
// matrix, lint and schema, and (envtest) a server-side dry-run of every
// object and a real install, upgrade and uninstall.
package chart

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/octopods/octopods-operator/internal/scope"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const (
	chartDir    = "../../charts/octopods-operator"
	installYAML = "../../dist/install.yaml"
	releaseNS   = "octopods-system"
)

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// render is `helm template` through the SDK: a client-only dry-run install.
func render(t testing.TB, vals map[string]any) ([]*unstructured.Unstructured, error) {
	t.Helper()
	install := action.NewInstall(&action.Configuration{})
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.ReleaseName, install.Namespace = "octopods-operator", releaseNS
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}
	rel, err := install.Run(loadChart(t), vals)
	if err != nil {
		return nil, err
	}
	return decode(t, rel.Manifest), nil
}

func mustRender(t testing.TB, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render(t, vals)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func decode(t testing.TB, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := d.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

func id(o *unstructured.Unstructured) string {
	return o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// helmOnlyAnnotations are what the chart adds on purpose over config/.
var helmOnlyAnnotations = []string{"helm.sh/resource-policy"}

// TestDefaultValuesInstallWhatKustomizeInstalls: the chart with default
// values is dist/install.yaml (`make build-installer`, kept fresh by `make
// verify`) object by object, but for the Namespace (Helm installs into the
// release's) and the CRDs' keep annotation.
func TestDefaultValuesInstallWhatKustomizeInstalls(t *testing.T) {
	data, err := os.ReadFile(installYAML)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*unstructured.Unstructured{}
	for _, o := range decode(t, string(data)) {
		if o.GetKind() != "Namespace" {
			want[id(o)] = o
		}
	}
	got := map[string]*unstructured.Unstructured{}
	for _, o := range mustRender(t, nil) {
		annotations := o.GetAnnotations()
		for _, a := range helmOnlyAnnotations {
			delete(annotations, a)
		}
		if len(annotations) == 0 {
			annotations = nil
		}
		o.SetAnnotations(annotations)
		got[id(o)] = o
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s is in dist/install.yaml but not in the chart", k)
			continue
		}
		if diff := cmp.Diff(w.Object, g.Object); diff != "" {
			t.Errorf("%s: the chart differs from config/ (-kustomize +chart):\n%s", k, diff)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s is in the chart but not in dist/install.yaml", k)
		}
	}
	t.Logf("compared %d objects: chart (default values) = kustomize build config/default", len(want))
}

// TestCertificateNamesItsIssuer: kustomize does not follow cert-manager's
// issuerRef through namePrefix on its own (config/default replaces it).
func TestCertificateNamesItsIssuer(t *testing.T) {
	data, err := os.ReadFile(installYAML)
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, string(data))
	for _, c := range objs {
		if c.GetKind() != "Certificate" {
			continue
		}
		issuer, _, _ := unstructured.NestedString(c.Object, "spec", "issuerRef", "name")
		if find(objs, "Issuer", issuer) == nil {
			t.Errorf("Certificate %s names Issuer %q, which is not installed", c.GetName(), issuer)
		}
	}
}

func args(t *testing.T, objs []*unstructured.Unstructured, deployment string) []string {
	t.Helper()
	d := find(objs, "Deployment", deployment)
	if d == nil {
		t.Fatalf("no Deployment %s", deployment)
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	a, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	return a
}

// valuesMatrix is every values combination the tests render and dry-run.
var valuesMatrix = []struct {
	name  string
	vals  map[string]any
	check func(t *testing.T, objs []*unstructured.Unstructured)
}{
	{"defaults", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
		if a := args(t, objs, "octopods-auth-proxy"); !slices.Contains(a, "--upstream=http://octopods-api.octopods.svc.cluster.local") || !slices.Contains(a, "--grpc-bind-address=:9001") {
			t.Errorf("proxy args %v", a)
		}
	}},
	{"scope rules", map[string]any{"authProxy": map[string]any{"scopeRules": map[string]any{
		"rules": []any{map[string]any{"pathPrefix": "/api/v2/whatsapp/", "keys": []any{map[string]any{"type": "whatsapp"}}}}}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if a := args(t, objs, "octopods-auth-proxy"); !slices.Contains(a, "--scope-rules=/etc/octopods/scope-rules.yaml") {
			t.Errorf("proxy args %v", a)
		}
		cm := find(objs, "ConfigMap", "octopods-auth-proxy-scope-rules")
		if cm == nil {
			t.Fatal("no scope rules ConfigMap")
		}
		data, _, _ := unstructured.NestedString(cm.Object, "data", "scope-rules.yaml")
		if _, err := scope.Parse([]byte(data)); err != nil || !strings.Contains(data, "/api/v2/whatsapp/") {
			t.Errorf("the ConfigMap's rules %q do not parse as the proxy parses them: %v", data, err)
		}
	}},
	{"own issuer, proxy TLS, extra flags, priority classes", map[string]any{
		"webhook":   map[string]any{"certManager": map[string]any{"issuerRef": map[string]any{"name": "corp-ca", "kind": "ClusterIssuer"}}},
		"manager":   map[string]any{"priorityClassName": "platform"},
		"authProxy": map[string]any{"tls": map[string]any{"secretName": "proxy-tls"}, "extraArgs": []any{"--last-used-refresh-interval=30m"}, "priorityClassName": "edge"},
	}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if find(objs, "Issuer", "octopods-selfsigned-issuer") != nil {
			t.Error("the self-signed Issuer is installed beside the person's own")
		}
		for _, name := range []string{"octopods-serving-cert", "octopods-metrics-certs"} {
			c := find(objs, "Certificate", name)
			if c == nil {
				t.Fatalf("no Certificate %s", name)
			}
			ref, _, _ := unstructured.NestedStringMap(c.Object, "spec", "issuerRef")
			if ref["name"] != "corp-ca" || ref["kind"] != "ClusterIssuer" || ref["group"] != "cert-manager.io" {
				t.Errorf("Certificate %s issuerRef %v", name, ref)
			}
		}
		a := args(t, objs, "octopods-auth-proxy")
		for _, want := range []string{"--tls-cert-file=/etc/octopods/tls/tls.crt", "--tls-private-key-file=/etc/octopods/tls/tls.key", "--last-used-refresh-interval=30m"} {
			if !slices.Contains(a, want) {
				t.Errorf("proxy args %v lack %s", a, want)
			}
		}
		for deploy, want := range map[string]string{"octopods-auth-proxy": "edge", "octopods-controller-manager": "platform"} {
			got, _, _ := unstructured.NestedString(find(objs, "Deployment", deploy).Object, "spec", "template", "spec", "priorityClassName")
			if got != want {
				t.Errorf("%s priorityClassName %q, want %q", deploy, got, want)
			}
		}
		volumes, _, _ := unstructured.NestedSlice(find(objs, "Deployment", "octopods-auth-proxy").Object, "spec", "template", "spec", "volumes")
		if !strings.Contains(fmt.Sprint(volumes), "proxy-tls") {
			t.Errorf("the proxy does not mount Secret proxy-tls: %v", volumes)
		}
	}},
	{"prometheusRule", map[string]any{"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		rule := find(objs, "PrometheusRule", "octopods-alerts")
		if rule == nil {
			t.Fatal("no PrometheusRule")
		}
		// The same alerts as config/prometheus/rules.yaml, Prometheus's own
		// templates left for Prometheus.
		data, err := os.ReadFile("../../config/prometheus/rules.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var want unstructured.Unstructured
		if err := yaml.Unmarshal(data, &want.Object); err != nil {
			t.Fatal(err)
		}
		gotGroups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
		wantGroups, _, _ := unstructured.NestedSlice(want.Object, "spec", "groups")
		if !reflect.DeepEqual(gotGroups, wantGroups) {
			t.Errorf("the chart's alerts differ from config/prometheus/rules.yaml:\n%v\n%v", gotGroups, wantGroups)
		}
		if rule.GetNamespace() != releaseNS {
			t.Errorf("namespace %q", rule.GetNamespace())
		}
	}},
	{"forward-auth", map[string]any{"authProxy": map[string]any{"upstream": ""}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, a := range args(t, objs, "octopods-auth-proxy") {
			if strings.HasPrefix(a, "--upstream") {
				t.Errorf("forward-auth mode has %s", a)
			}
		}
	}},
	{"namespaced proxy", map[string]any{"authProxy": map[string]any{"namespaces": []any{"team-a", "team-b"}, "trustedProxyCIDRs": []any{"10.0.0.0/8"}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if find(objs, "ClusterRoleBinding", "octopods-auth-proxy-rolebinding") != nil {
			t.Error("a namespaced proxy must not be bound cluster-wide")
		}
		var bound []string
		for _, o := range objs {
			if o.GetKind() == "RoleBinding" && o.GetName() == "octopods-auth-proxy-rolebinding" {
				bound = append(bound, o.GetNamespace())
			}
		}
		if !reflect.DeepEqual(bound, []string{"team-a", "team-b"}) {
			t.Errorf("RoleBindings in %v", bound)
		}
		a := args(t, objs, "octopods-auth-proxy")
		for _, want := range []string{"--namespace=team-a", "--namespace=team-b", "--trusted-proxy-cidrs=10.0.0.0/8"} {
			if !slices.Contains(a, want) {
				t.Errorf("proxy args %v lack %s", a, want)
			}
		}
	}},
	{"throttle", map[string]any{"authProxy": map[string]any{"throttle": map[string]any{"failures": 20, "window": "30s", "exemptCIDRs": []any{"198.51.100.0/24"}}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		a := args(t, objs, "octopods-auth-proxy")
		for _, want := range []string{"--throttle-failures=20", "--throttle-window=30s", "--throttle-exempt-cidrs=198.51.100.0/24"} {
			if !slices.Contains(a, want) {
				t.Errorf("proxy args %v lack %s", a, want)
			}
		}
	}},
	{"secret scanning endpoint", map[string]any{"authProxy": map[string]any{"secretScanning": map[string]any{"enabled": true, "publicKeysConfigMap": "github-keys"}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		a := args(t, objs, "octopods-auth-proxy")
		for _, want := range []string{"--secret-scanning-bind-address=:8085", "--secret-scanning-public-keys-file=/etc/octopods/secret-scanning/public-keys.json"} {
			if !slices.Contains(a, want) {
				t.Errorf("proxy args %v lack %s", a, want)
			}
		}
		svc := find(objs, "Service", "octopods-secret-scanning")
		if svc == nil {
			t.Fatal("no Service octopods-secret-scanning to expose the endpoint alone")
		}
		if ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports"); len(ports) != 1 {
			t.Errorf("the secret scanning Service exposes %d ports, want only the endpoint's", len(ports))
		}
		if !strings.Contains(toYAML(t, find(objs, "Deployment", "octopods-auth-proxy")), "name: github-keys") {
			t.Error("the public keys ConfigMap is not mounted")
		}
		if !strings.Contains(toYAML(t, find(objs, "NetworkPolicy", "octopods-auth-proxy")), "port: secret-scan") {
			t.Error("the NetworkPolicy does not open the endpoint's port")
		}
	}},
	{"no cert-manager", map[string]any{"webhook": map[string]any{"certManager": map[string]any{"enabled": false}}}, checkGeneratedCert},
	{"a certificate you bring (helm template renders the same every time)", map[string]any{"webhook": map[string]any{
		"certManager": map[string]any{"enabled": false}, "certs": map[string]any{"existingSecret": "my-webhook-cert", "caBundle": "Q0E="}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, o := range objs {
			if o.GetKind() == "Secret" || o.GetKind() == "Certificate" {
				t.Errorf("existingSecret: the chart still makes %s %s", o.GetKind(), o.GetName())
			}
			if strings.HasSuffix(o.GetKind(), "WebhookConfiguration") {
				webhooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
				for _, w := range webhooks {
					if ca, _, _ := unstructured.NestedString(w.(map[string]any), "clientConfig", "caBundle"); ca != "Q0E=" {
						t.Errorf("%s: caBundle %q, want the given one", o.GetName(), ca)
					}
				}
			}
		}
		d := find(objs, "Deployment", "octopods-controller-manager")
		volumes, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
		for _, v := range volumes {
			if name, _, _ := unstructured.NestedString(v.(map[string]any), "secret", "secretName"); name != "my-webhook-cert" {
				t.Errorf("the manager mounts %q, want my-webhook-cert", name)
			}
		}
	}},
	{"no webhooks", map[string]any{"webhook": map[string]any{"enabled": false}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, o := range objs {
			if strings.HasSuffix(o.GetKind(), "WebhookConfiguration") {
				t.Errorf("webhook.enabled=false installs %s", o.GetName())
			}
		}
		d := find(objs, "Deployment", "octopods-controller-manager")
		containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		env, _, _ := unstructured.NestedSlice(containers[0].(map[string]any), "env")
		if !slices.ContainsFunc(env, func(e any) bool {
			return e.(map[string]any)["name"] == "ENABLE_WEBHOOKS" && e.(map[string]any)["value"] == "false"
		}) {
			t.Errorf("the manager still serves webhooks: env %v", env)
		}
	}},
	{"no CRDs", map[string]any{"crds": map[string]any{"enabled": false}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, o := range objs {
			if o.GetKind() == "CustomResourceDefinition" {
				t.Errorf("crds.enabled=false installs %s", o.GetName())
			}
		}
	}},
	{"CRDs not kept", map[string]any{"crds": map[string]any{"keep": false}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if crd := find(objs, "CustomResourceDefinition", "workspaceapikeys.octopods.io"); crd == nil || crd.GetAnnotations()["helm.sh/resource-policy"] != "" {
			t.Error("crds.keep=false still keeps the CRDs")
		}
	}},
	{"no auth proxy, no gRPC, ServiceMonitors, scheduling", map[string]any{
		"authProxy": map[string]any{"enabled": false},
		"metrics":   map[string]any{"serviceMonitor": map[string]any{"enabled": true}},
		"manager":   map[string]any{"replicas": 3, "nodeSelector": map[string]any{"pool": "system"}, "podAnnotations": map[string]any{"a": "b"}, "tolerations": []any{map[string]any{"key": "k", "operator": "Exists"}}},
		"image":     map[string]any{"repository": "registry.example/octopods", "tag": "v9"},
	}, func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, o := range objs {
			if strings.Contains(o.GetName(), "auth-proxy") {
				t.Errorf("authProxy.enabled=false installs %s %s", o.GetKind(), o.GetName())
			}
		}
		if find(objs, "ServiceMonitor", "octopods-controller-manager-metrics") == nil {
			t.Error("no manager ServiceMonitor")
		}
		d := find(objs, "Deployment", "octopods-controller-manager")
		replicas, _, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "replicas")
		pool, _, _ := unstructured.NestedString(d.Object, "spec", "template", "spec", "nodeSelector", "pool")
		containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		if fmt.Sprint(replicas) != "3" || pool != "system" || containers[0].(map[string]any)["image"] != "registry.example/octopods:v9" {
			t.Errorf("manager Deployment: replicas %v, pool %q, image %v", replicas, pool, containers[0].(map[string]any)["image"])
		}
	}},
	{"NetworkPolicy: named gateway namespaces only", map[string]any{"authProxy": map[string]any{"networkPolicy": map[string]any{
		"gatewayNamespaces": []any{"istio-system"}, "gatewayNamespaceSelector": nil}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		np := find(objs, "NetworkPolicy", "octopods-auth-proxy")
		if np == nil {
			t.Fatal("no NetworkPolicy for the auth proxy")
		}
		rules, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
		from, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "from")
		ports, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "ports")
		want := []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "istio-system"}}}}
		if !reflect.DeepEqual(from, want) || len(ports) != 2 {
			t.Errorf("traffic ports admit %v on %v, want %v on http and grpc-authz", from, ports, want)
		}
	}},
	{"NetworkPolicy off", map[string]any{"authProxy": map[string]any{"networkPolicy": map[string]any{"enabled": false}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if find(objs, "NetworkPolicy", "octopods-auth-proxy") != nil {
			t.Error("networkPolicy.enabled=false installs a NetworkPolicy")
		}
	}},
	{"gRPC on another port", map[string]any{"authProxy": map[string]any{"grpc": map[string]any{"port": 9191}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if a := args(t, objs, "octopods-auth-proxy"); !slices.Contains(a, "--grpc-bind-address=:9191") {
			t.Errorf("proxy args %v", a)
		}
	}},
}

func TestValuesMatrix(t *testing.T) {
	for _, tc := range valuesMatrix {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, mustRender(t, tc.vals)) })
	}
}

// checkGeneratedCert: without cert-manager the chart's own CA signs a
// serving certificate for the webhook Service, and every webhook trusts it.
func checkGeneratedCert(t *testing.T, objs []*unstructured.Unstructured) {
	for _, kind := range []string{"Certificate", "Issuer"} {
		for _, o := range objs {
			if o.GetKind() == kind {
				t.Errorf("certManager.enabled=false installs %s %s", kind, o.GetName())
			}
		}
	}
	secret := find(objs, "Secret", "webhook-server-cert")
	if secret == nil {
		t.Fatal("no webhook-server-cert Secret")
	}
	field := func(secret *unstructured.Unstructured, k string) []byte {
		v, _, _ := unstructured.NestedString(secret.Object, "data", k)
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(field(secret, "ca.crt")) {
		t.Fatal("ca.crt is not a PEM certificate")
	}
	// The webhooks' and the metrics server's certificates, for their Services.
	for name, service := range map[string]string{"webhook-server-cert": "octopods-webhook-service", "metrics-server-cert": "octopods-controller-manager-metrics"} {
		s := find(objs, "Secret", name)
		if s == nil {
			t.Fatalf("no %s Secret", name)
		}
		block, _ := pem.Decode(field(s, "tls.crt"))
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: service + "." + releaseNS + ".svc"}); err != nil {
			t.Errorf("%s does not verify for Service %s: %v", name, service, err)
		}
	}
	caB64, _, _ := unstructured.NestedString(secret.Object, "data", "ca.crt")
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		for _, o := range objs {
			if o.GetKind() != kind {
				continue
			}
			if _, ok := o.GetAnnotations()["cert-manager.io/inject-ca-from"]; ok {
				t.Errorf("%s still asks cert-manager to inject", o.GetName())
			}
			webhooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			for _, w := range webhooks {
				if ca, _, _ := unstructured.NestedString(w.(map[string]any), "clientConfig", "caBundle"); ca != caB64 {
					t.Errorf("%s webhook %v: caBundle is not the chart's CA", o.GetName(), w.(map[string]any)["name"])
				}
			}
		}
	}
}

func TestLint(t *testing.T) {
	lint := action.NewLint()
	lint.Strict = true
	res := lint.Run([]string{chartDir}, nil)
	for _, m := range res.Messages {
		t.Log(m)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("helm lint --strict: %v", res.Errors)
	}
}

func TestSchemaRejectsTypos(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"misspelt key":       {"authProxy": map[string]any{"upstrem": "http://api"}},
		"unknown top level":  {"webhooks": map[string]any{}},
		"wrong type":         {"crds": map[string]any{"keep": "yes"}},
		"bad namespace name": {"authProxy": map[string]any{"namespaces": []any{"Team_A"}}},
		// Go's runtime refuses to start with a unit it does not know.
		"GOMEMLIMIT in MB":                  {"authProxy": map[string]any{"goMemLimit": "48MB"}},
		"an address, not a CIDR":            {"authProxy": map[string]any{"trustedProxyCIDRs": []any{"10.0.0.1"}}},
		"a throttle window in days":         {"authProxy": map[string]any{"throttle": map[string]any{"window": "1d"}}},
		"a negative throttle":               {"authProxy": map[string]any{"throttle": map[string]any{"failures": -1}}},
		"a flag without its dashes":         {"authProxy": map[string]any{"extraArgs": []any{"metrics-per-key"}}},
		"an unknown scope key type":         {"authProxy": map[string]any{"scopeRules": map[string]any{"rules": []any{map[string]any{"pathPrefix": "/x/", "keys": []any{map[string]any{"type": "admin"}}}}}}},
		"an issuer kind cert-manager lacks": {"webhook": map[string]any{"certManager": map[string]any{"issuerRef": map[string]any{"name": "x", "kind": "Vault"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render(t, vals)
			if err == nil || !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
				t.Fatalf("accepted, or refused for another reason: %v", err)
			}
			t.Log(err)
		})
	}
}

// TestGeneratedTemplatesAreFresh: the committed generated templates are what
// hack/chartgen writes from dist/install.yaml's source (make verify runs
// `make chart` too; this says so without git).
func TestGeneratedTemplatesAreMarked(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "generated", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated templates: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("# Generated by hack/chartgen")) {
			t.Errorf("%s is not marked as generated", f)
		}
	}
}

// TestImageMatchesTheDeployments: the Dockerfile builds and copies every
// binary a Deployment runs, copies every directory those binaries are built
// from, runs as non-root, and names its licence as the chart and LICENSE do.
func TestImageMatchesTheDeployments(t *testing.T) {
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(dockerfile)
	data, err := os.ReadFile(installYAML)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range decode(t, string(data)) {
		if o.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		command, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "command")
		bin := strings.TrimPrefix(command[0], "/")
		if !strings.Contains(df, "./cmd/"+bin) || !strings.Contains(df, "COPY --from=builder /out/"+bin+" /"+bin) {
			t.Errorf("Deployment %s runs %s, which the Dockerfile does not build and copy", o.GetName(), command[0])
		}
		if nonRoot, _, _ := unstructured.NestedBool(o.Object, "spec", "template", "spec", "securityContext", "runAsNonRoot"); !nonRoot {
			t.Errorf("Deployment %s may run as root", o.GetName())
		}
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../cmd/manager", "../../cmd/auth-proxy").Output()
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/octopods/octopods-operator/"
	for _, pkg := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(pkg, module); ok {
			if dir := strings.SplitN(rest, "/", 2)[0]; !strings.Contains(df, "COPY "+dir+"/ "+dir+"/") {
				t.Errorf("the binaries import %s, but the Dockerfile does not COPY %s/", pkg, dir)
			}
		}
	}
	if !strings.Contains(df, "USER 65532:65532") || !strings.Contains(df, `org.opencontainers.image.licenses="Apache-2.0"`) {
		t.Error("the image must run as 65532 and name its licence")
	}
	license, err := os.ReadFile("../../LICENSE")
	if err != nil || !strings.Contains(string(license), "Apache License") || !strings.Contains(string(license), "Version 2.0") {
		t.Errorf("LICENSE is not the Apache License 2.0: %v", err)
	}
	if loadChart(t).Metadata.Annotations["artifacthub.io/license"] != "Apache-2.0" {
		t.Error("the chart does not name its licence")
	}
}

// A certificate you bring comes with its CA, and not beside cert-manager.
func TestExistingCertificateNeedsItsCAAndNoCertManager(t *testing.T) {
	for name, tc := range map[string]struct {
		certs       map[string]any
		certManager bool
		want        string
	}{
		"no caBundle":         {map[string]any{"existingSecret": "mine"}, false, "webhook.certs.caBundle: give the CA"},
		"beside cert-manager": {map[string]any{"existingSecret": "mine", "caBundle": "Q0E="}, true, "webhook.certs.existingSecret needs webhook.certManager.enabled=false"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render(t, map[string]any{"webhook": map[string]any{"certManager": map[string]any{"enabled": tc.certManager}, "certs": tc.certs}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// toYAML is o as YAML, for checks on what a template rendered.
func toYAML(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	if o == nil {
		t.Fatal("object not rendered")
	}
	out, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
