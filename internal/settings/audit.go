package settings

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// maxAuditEvents bounds the events of a report: the most recent ones.
const maxAuditEvents = 15

// Audit gathers what support needs about one key.
func Audit(ctx context.Context, c client.Reader, namespace string, t Target, now time.Time) (string, error) {
	key, err := getKey(ctx, c, namespace, t, "to audit")
	if err != nil {
		return "", err
	}
	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(namespace)); err != nil {
		return "", explain(err, "list", "events", namespace)
	}
	var mine []corev1.Event
	for _, e := range events.Items {
		if e.InvolvedObject.Name == t.Name && (e.InvolvedObject.Kind == t.Kind.Kind || e.InvolvedObject.Kind == t.Kind.OwnerKind) {
			mine = append(mine, e)
		}
	}
	return FormatAudit(key, mine, now), nil
}

// FormatAudit is the audit report: the key's life, its last uses, the
// revoked keys still being tried, and the recent events.
func FormatAudit(key octopodsv1alpha1.KeyObject, events []corev1.Event, now time.Time) string {
	var b strings.Builder
	st := *key.KeyStatus()
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	line := func(label, value string) { _, _ = fmt.Fprintf(w, "%s:\t%s\n", label, value) }
	line(key.KeyKind().OwnerKind, key.GetNamespace()+"/"+key.OwnerName())
	if sc := st.Scope; sc != nil && sc.Type != octopodsv1alpha1.KeyTypeWorkspace {
		line("Workspace", sc.Workspace)
	}
	line("Key ID", orNone(st.KeyID))
	line("Secret", orNone(st.SecretName))
	line("Created by", orNone(Printable(key.GetAnnotations()[octopodsv1alpha1.CreatedByAnnotation])))
	line("Issued", when(st.IssuedAt, now))
	line("Rotated", when(st.RotatedAt, now)+by(Printable(st.LastRotatedBy))+token(st.LastRotationToken))
	if st.NextRotationAt != nil {
		line("Next rotation", when(st.NextRotationAt, now))
	}
	lastUsed := when(CurrentKeyLastUsed(&st), now)
	if st.LastUsedTime != nil && CurrentKeyLastUsed(&st) == nil {
		lastUsed += " (the key before it: " + when(st.LastUsedTime, now) + ")"
	}
	line("Last used", lastUsed)
	if st.PreviousKeyID != "" {
		line("Previous key", fmt.Sprintf("%s, works until %s, last used %s", st.PreviousKeyID, when(st.PreviousValidUntil, now), when(st.PreviousKeyLastUsedTime, now)))
	}
	_ = w.Flush()
	b.WriteString("\nRevoked keys (kept 30 days):\n")
	if len(st.RevokedKeys) == 0 {
		b.WriteString("  none\n")
	}
	for _, r := range st.RevokedKeys {
		fmt.Fprintf(&b, "  %s  revoked %s, last admitted %s\n", r.KeyID, when(&r.RevokedAt, now), when(r.LastUsedTime, now))
	}
	if u := st.LastRevokedKeyUse; u != nil {
		fmt.Fprintf(&b, "  Last attempt with a revoked key: %s from %s, %s\n", u.KeyID, orNone(Printable(u.ClientAddress)), when(&u.Time, now))
	}
	settings := key.Settings()
	if len(settings.AllowedSourceRanges) > 0 || st.LastDisallowedSourceUse != nil {
		fmt.Fprintf(&b, "\nWorks only from: %s\n", orNone(Printable(strings.Join(settings.AllowedSourceRanges, ", "))))
		if u := st.LastDisallowedSourceUse; u != nil {
			fmt.Fprintf(&b, "  Last attempt from elsewhere: %s from %s, %s (refused)\n", u.KeyID, orNone(Printable(u.ClientAddress)), when(&u.Time, now))
		}
	}
	if l := st.LastLeakReport; l != nil {
		response := settings.LeakResponse
		if response == "" {
			response = octopodsv1alpha1.LeakResponseRotate
		}
		fmt.Fprintf(&b, "\nLeak report: key %s found in public, reported by %s %s\n  at %s\n  spec.leakResponse: %s; the reported key %s\n",
			l.KeyID, Printable(l.Source), when(&l.Time, now), orNone(Printable(l.URL)), response, leakState(&st, l.KeyID))
	}
	b.WriteString("\nRecent events:\n")
	writeEvents(&b, events, now)
	return b.String()
}

// leakState says whether a reported key still works.
func leakState(st *octopodsv1alpha1.APIKeyStatus, keyID string) string {
	switch keyID {
	case st.KeyID:
		return "STILL WORKS: rotate it (kubectl octopods rotate)"
	case st.PreviousKeyID:
		return "still works until the grace period ends (Previous key, above)"
	}
	return "no longer works"
}

func writeEvents(b *strings.Builder, events []corev1.Event, now time.Time) {
	sort.Slice(events, func(i, j int) bool { return lastSeen(&events[i]).Before(lastSeen(&events[j])) })
	if len(events) > maxAuditEvents {
		events = events[len(events)-maxAuditEvents:]
	}
	if len(events) == 0 {
		b.WriteString("  none\n")
	}
	w := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for i := range events {
		e := &events[i]
		t := metav1.NewTime(lastSeen(e))
		_, _ = fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", when(&t, now), Printable(e.Type), Printable(e.Reason), Printable(e.Message))
	}
	_ = w.Flush()
}

func lastSeen(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case e.Series != nil:
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func by(who string) string {
	if who == "" {
		return ""
	}
	return " by " + who
}

func token(t string) string {
	if t == "" {
		return ""
	}
	return fmt.Sprintf(" (token %q)", t)
}

// when is a time as "2026-11-27T10:04:05Z (3m ago)", or "never".
func when(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339) + " (" + Ago(t.Time, now) + ")"
}

// Ago says how long ago t was, roughly, as kubectl does.
func Ago(t, now time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + roundDuration(-d)
	}
	return roundDuration(d) + " ago"
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// Printable escapes what others wrote before a terminal shows it: control
// characters (an ESC sequence can rewrite the screen or the clipboard),
// DEL, C1 controls and the bidirectional overrides that reorder text, each
// as a visible \x.. or \u.... escape; everything else is kept as written.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if needsEscape(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !needsEscape(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}
