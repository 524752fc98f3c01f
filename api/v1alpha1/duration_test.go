package v1alpha1

import (
	"encoding/json"
	"math/big"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Spellings the OpenAPI "duration" format (or a person) would take, and Go
// refuses; and spellings Go takes.
var (
	goRefuses = []string{"1 hour", "30d", "1w", "P1D", "PT1H", "1h 30m", "h", ".", "1.h.5", "", "1", "-", "1H", "1hour", "1y", "1d12h", "٣h", "1e3s", " 1h", "1h "}
	goTakes   = []string{"0", "+0", "-0", "0s", "1h", "720h", "1h30m", "90m", "1.5h", ".5h", "5.h", "3600s", "1500ms", "2us", "2µs", "2μs", "10ns", "+1h", "-1h"}
)

// The CRD's rule is what Go's time.ParseDuration takes: checked here with
// the very expression the API server runs (CEL uses RE2, as Go's regexp).
func TestSchemaDurationRuleIsGosParser(t *testing.T) {
	data, err := os.ReadFile("../../config/crd/bases/octopods.io_workspaceapikeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules := regexp.MustCompile(`self\.matches\('([^']+)'\)`).FindAllStringSubmatch(string(data), -1)
	if len(rules) == 0 {
		t.Fatal("no duration rule in the CRD")
	}
	re := regexp.MustCompile(rules[0][1])
	schemaTakes := re.MatchString
	for _, s := range append(append([]string{}, goRefuses...), goTakes...) {
		_, err := time.ParseDuration(s)
		if (err == nil) != schemaTakes(s) {
			t.Errorf("%q: Go's parser says %v, the schema says %v", s, err, schemaTakes(s))
		}
	}
	for _, r := range rules {
		if r[1] != rules[0][1] {
			t.Errorf("two duration rules differ: %s and %s", r[1], rules[0][1])
		}
	}
}

func FuzzSchemaDurationRule(f *testing.F) {
	data, err := os.ReadFile("../../config/crd/bases/octopods.io_workspaceapikeys.yaml")
	if err != nil {
		f.Fatal(err)
	}
	re := regexp.MustCompile(regexp.MustCompile(`self\.matches\('([^']+)'\)`).FindStringSubmatch(string(data))[1])
	for _, s := range append(append([]string{}, goRefuses...), goTakes...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := time.ParseDuration(s)
		switch {
		case err == nil && !re.MatchString(s):
			t.Errorf("%q: Go takes it, the schema refuses it", s)
		case err != nil && re.MatchString(s) && hours(s) < 8760:
			// Go also refuses what overflows int64 nanoseconds (about
			// 2.5 million hours); the schema's range rule refuses those.
			t.Errorf("%q: Go refuses it (%v), the schema takes it", s, err)
		}
	})
}

// hours is the value of a spelling the schema's pattern takes, exactly.
func hours(s string) float64 {
	unit := map[string]float64{"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
	total := new(big.Float)
	for _, m := range regexp.MustCompile(`([0-9]*[.]?[0-9]*)(ns|us|µs|μs|ms|s|m|h)`).FindAllStringSubmatch(s, -1) {
		v, _, err := big.ParseFloat(m[1], 10, 256, big.ToNearestEven)
		if err != nil {
			v = new(big.Float)
		}
		total.Add(total, v.Mul(v, big.NewFloat(unit[m[2]])))
	}
	h, _ := total.Quo(total, big.NewFloat(3600)).Float64()
	return h
}

// What Go refuses decodes, and says so, instead of failing the whole list.
func TestDurationDecodesWhatGoRefuses(t *testing.T) {
	var list struct {
		Items []WorkspaceAPIKey `json:"items"`
	}
	body := `{"items":[{"metadata":{"name":"a"},"spec":{"workspaceName":"a","rotationInterval":"30d"}},
		{"metadata":{"name":"b"},"spec":{"workspaceName":"b","rotationInterval":"720h","rotationGracePeriod":"1h"}},
		{"metadata":{"name":"c"},"spec":{"workspaceName":"c","rotationGracePeriod":42}}]}`
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("one bad object failed the list: %v", err)
	}
	a, b, c := list.Items[0].Spec, list.Items[1].Spec, list.Items[2].Spec
	if got := a.InvalidFields(); len(got) != 1 || got[0] != `spec.rotationInterval: "30d" is not a duration: use h, m or s, for example 720h for 30 days` {
		t.Errorf("a: %v", got)
	}
	if len(b.InvalidFields()) != 0 || b.RotationInterval.Duration != 720*time.Hour || b.RotationGracePeriod.Duration != time.Hour {
		t.Errorf("b: %+v", b)
	}
	if got := c.InvalidFields(); len(got) != 1 || !strings.HasPrefix(got[0], `spec.rotationGracePeriod: "42" is not a duration`) {
		t.Errorf("c: %v", got)
	}
	// Written back as stored: a status write never rewrites the spec.
	out, _ := json.Marshal(a.RotationInterval)
	if string(out) != `"30d"` {
		t.Errorf("re-encoded as %s", out)
	}
	out, _ = json.Marshal(b.RotationInterval)
	if string(out) != `"720h0m0s"` {
		t.Errorf("re-encoded as %s", out)
	}
}
