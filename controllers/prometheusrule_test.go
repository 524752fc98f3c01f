package controllers

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/authproxy"
	"github.com/octopods/octopods-operator/internal/keyindex"
)

// TestSampleAlertsUseMetricsThatExist reads config/prometheus/rules.yaml and
// checks that every metric its alerts query is one the manager or the auth
// proxy exports, and that each alert says what to do.
func TestSampleAlertsUseMetricsThatExist(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   map[string]string `json:"metadata"`
		Spec       struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert       string            `json:"alert"`
					For         string            `json:"for"`
					Expr        string            `json:"expr"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(data, &rule); err != nil {
		t.Fatal(err)
	}
	if rule.Kind != "PrometheusRule" {
		t.Fatalf("kind %q", rule.Kind)
	}
	exported := exportedMetrics(t)
	name := regexp.MustCompile(`octopods_[a-z_]+`)
	alerts := map[string]bool{}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			for _, m := range name.FindAllString(r.Expr, -1) {
				if !exported[m] {
					t.Errorf("alert %s queries %s, which neither the manager nor the auth proxy exports", r.Alert, m)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || !strings.Contains(r.Annotations["description"], " ") {
				t.Errorf("alert %s needs a severity, a summary and a description of what to do", r.Alert)
			}
		}
	}
	for _, a := range []string{"OctopodsWorkspaceAPIKeyNotReady", "OctopodsRevokedKeyPresented", "OctopodsAuthProxyKeyCacheStale"} {
		if !alerts[a] {
			t.Errorf("alert %s is missing", a)
		}
	}
}

// exportedMetrics names every metric of the manager's domain collectors and
// of an auth proxy that has seen a revoked key and a key over its limit.
func exportedMetrics(t *testing.T) map[string]bool {
	out := map[string]bool{}
	descs := make(chan *prometheus.Desc, 16)
	keyEvents.Describe(descs)
	keysCollector.Describe(descs)
	close(descs)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		out[fq.FindStringSubmatch(d.String())[1]] = true
	}
	revoked, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ix := keyindex.New()
	ix.Set(keyindex.Keys{Namespace: "ns", Name: "acme", Workspace: "acme", Revoked: []apikey.Digest{apikey.DigestOf(revoked)}})
	ix.Lookup(revoked, time.Now())
	limited, _ := apikey.Generate()
	ix.Set(keyindex.Keys{Namespace: "ns", Name: "initech", Workspace: "initech", Current: apikey.DigestOf(limited), HasCurrent: true,
		RateLimit: keyindex.RateLimit{PerSecond: 1, Burst: 1}})
	_, _, use := ix.Find(limited, time.Now())
	use.Allow(1, time.Now())
	if ok, _ := use.Allow(1, time.Now()); ok {
		t.Fatal("a second request within the second passed a limit of 1")
	}
	families, err := authproxy.NewMetrics(ix, func() time.Duration { return 0 }, true).Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		out[f.GetName()] = true
	}
	return out
}
