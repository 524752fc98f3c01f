package apikey

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// gitleaksRule reads the rule's regex from the repository's .gitleaks.toml,
// as gitleaks would (a TOML literal string).
func gitleaksRule(t *testing.T) *regexp.Regexp {
	t.Helper()
	data, err := os.ReadFile("../../.gitleaks.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if !strings.Contains(s, `id = "octopods-workspace-api-key"`) {
		t.Fatal("rule id missing")
	}
	start := strings.Index(s, "regex = '''") + len("regex = '''")
	end := strings.Index(s[start:], "'''")
	return regexp.MustCompile(s[start : start+end])
}

func TestGitleaksRule(t *testing.T) {
	rule := gitleaksRule(t)
	for range 100 {
		k, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{k, "X-Octopods-Auth: " + k, `api-key: "` + k + `"`, "KEY=" + k + "\n"} {
			m := rule.FindStringSubmatch(text)
			if m == nil || m[1] != k {
				t.Fatalf("the rule misses a key in %q", strings.ReplaceAll(text, k, "<key>"))
			}
		}
	}
	k, _ := Generate()
	for name, near := range map[string]string{
		"one character short": k[:52],
		"one character long":  k + "a",
		"upper-case prefix":   "OPK_" + k[4:],
		"another prefix":      "xopk_" + k[4:],
		"a non-base62 inside": k[:20] + "-" + k[21:],
		"underscore after":    k + "_x",
	} {
		if m := rule.FindStringSubmatch(near); m != nil {
			t.Errorf("%s: the rule matches %q", name, m[1])
		}
	}
}
