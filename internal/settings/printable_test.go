package settings

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"alice@acme.example":        "alice@acme.example",
		"Zoë 日本":                    "Zoë 日本",
		"\x1b[2J\x1b]52;c;b3Br\x07": `\x1b[2J\x1b]52;c;b3Br\x07`,
		"line\nbreak\ttab\r":        `line\x0abreak\x09tab\x0d`,
		"a\u202eevil":               `a\u202eevil`,
		"c1\u009bcontrol\x7f":       `c1\x9bcontrol\x7f`,
		"bad utf-8 \xff":            `bad utf-8 \ufffd`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// What others wrote reaches the terminal escaped: a stamp, an address, an
// event message.
func TestAuditEscapesWhatOthersWrote(t *testing.T) {
	now := time.Now()
	key := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "p1", Name: "acme",
		Annotations: map[string]string{octopodsv1alpha1.CreatedByAnnotation: "mallory\x1b[2J"}}}
	key.Status.LastRotatedBy = "eve\x1b]0;title\x07"
	key.Status.LastRevokedKeyUse = &octopodsv1alpha1.KeyUse{Time: metav1.NewTime(now), KeyID: "0123456789ab", ClientAddress: "10.0.0.1\x1b[31m"}
	events := []corev1.Event{{Type: "Warning", Reason: "Forged", Message: "call \x1b[1msupport\x1b[0m at once", LastTimestamp: metav1.NewTime(now)}}
	out := FormatAudit(key, events, now)
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Fatalf("the audit prints control characters: %q", out)
	}
	for _, want := range []string{`mallory\x1b[2J`, `eve\x1b]0;title\x07`, `10.0.0.1\x1b[31m`, `call \x1b[1msupport\x1b[0m at once`} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %s:\n%s", want, out)
		}
	}
}

// Right after a rotation, lastUsedTime is still the replaced key's: the
// audit and the table must not show it as the new key's.
func TestLastUsedIsTheCurrentKeys(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	used, issued := metav1.NewTime(now.Add(-40*time.Second)), metav1.NewTime(now.Add(-3*time.Second))
	key := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "p1", Name: "acme"}}
	key.Status.KeyID, key.Status.IssuedAt, key.Status.LastUsedTime = "0123456789ab", &issued, &used
	out := FormatAudit(key, nil, now)
	if !strings.Contains(out, "Last used:   never (the key before it: ") {
		t.Errorf("audit after a rotation:\n%s", out)
	}
	if r := rowOf(&octopodsv1alpha1.Workspace{ObjectMeta: key.ObjectMeta}, key); r.LastUsed != nil {
		t.Errorf("the table shows the replaced key's last use %v", r.LastUsed)
	}
	later := metav1.NewTime(now)
	key.Status.LastUsedTime = &later
	if r := rowOf(&octopodsv1alpha1.Workspace{ObjectMeta: key.ObjectMeta}, key); r.LastUsed == nil {
		t.Error("the current key's own use is not shown")
	}
}

// The audit shows a leak report and whether the reported key still works,
// and where a key with source ranges was last tried from elsewhere.
func TestAuditShowsLeaksAndSourceRanges(t *testing.T) {
	now := time.Now()
	report := &octopodsv1alpha1.LeakReport{Time: metav1.NewTime(now.Add(-time.Minute)), KeyID: "0123456789ab", Source: "github:content", URL: "https://github.com/octo/leaky/blob/main/.env"}
	for _, tc := range []struct {
		name     string
		response octopodsv1alpha1.LeakResponse
		current  string
		want     string
	}{
		{"rotated", "", "ba9876543210", "spec.leakResponse: Rotate; the reported key no longer works"},
		{"report only", octopodsv1alpha1.LeakResponseReport, "0123456789ab", "spec.leakResponse: Report; the reported key STILL WORKS: rotate it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "p1", Name: "acme"}}
			key.Spec.LeakResponse = tc.response
			key.Spec.AllowedSourceRanges = []string{"203.0.113.0/24"}
			key.Status.KeyID = tc.current
			key.Status.LastLeakReport = report
			key.Status.LastDisallowedSourceUse = &octopodsv1alpha1.KeyUse{Time: metav1.NewTime(now), KeyID: tc.current, ClientAddress: "192.0.2.66"}
			out := FormatAudit(key, nil, now)
			for _, want := range []string{"Leak report: key 0123456789ab found in public, reported by github:content", "at https://github.com/octo/leaky/blob/main/.env", tc.want,
				"Works only from: 203.0.113.0/24", "Last attempt from elsewhere: " + tc.current + " from 192.0.2.66"} {
				if !strings.Contains(out, want) {
					t.Errorf("audit lacks %q:\n%s", want, out)
				}
			}
			if state := keyStateOf(key); state.Leak == nil || state.Leak.Current != (tc.current == report.KeyID) || state.Leak.URL != report.URL {
				t.Errorf("the page's leak notice: %+v", state.Leak)
			}
		})
	}
}
