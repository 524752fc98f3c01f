package apikey

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// gitleaksRule reads the regex of rule id from the repository's
// .gitleaks.toml, as gitleaks would (a TOML literal string).
func gitleaksRule(t *testing.T, id string) *regexp.Regexp {
	t.Helper()
	data, err := os.ReadFile("../../.gitleaks.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	at := strings.Index(s, `id = "`+id+`"`)
	if at < 0 {
		t.Fatalf("rule %s missing", id)
	}
	s = s[at:]
	start := strings.Index(s, "regex = '''") + len("regex = '''")
	end := strings.Index(s[start:], "'''")
	return regexp.MustCompile(s[start : start+end])
}

func TestGitleaksRules(t *testing.T) {
	for id, prefix := range map[string]string{
		"octopods-workspace-api-key": Prefix,
		"octopods-channel-api-key":   PrefixChannel,
		"octopods-whatsapp-api-key":  PrefixWhatsApp,
	} {
		t.Run(id, func(t *testing.T) { testGitleaksRule(t, gitleaksRule(t, id), prefix) })
	}
}

func testGitleaksRule(t *testing.T, rule *regexp.Regexp, prefix string) {
	for range 100 {
		k, err := GenerateWith(prefix)
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
	k, _ := GenerateWith(prefix)
	for name, near := range map[string]string{
		"one character short": k[:52],
		"one character long":  k + "a",
		"upper-case prefix":   strings.ToUpper(prefix) + k[4:],
		"another prefix":      "x" + prefix + k[4:],
		"a non-base62 inside": k[:20] + "-" + k[21:],
		"underscore after":    k + "_x",
	} {
		if m := rule.FindStringSubmatch(near); m != nil {
			t.Errorf("%s: the rule matches %q", name, m[1])
		}
	}
}
