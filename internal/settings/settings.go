// Package settings is what the Octopods settings page does ("Workspace API
// Keys": list, create, copy, rotate, audit), for `kubectl octopods` and its
// web page, always with the person's own client, so RBAC decides.
package settings

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
)

// NoKey is what the settings page shows for a workspace without a key.
const NoKey = "No API key generated"

// Row is one line of the "Workspace API Keys" table. It never holds a key.
type Row struct {
	Namespace   string `json:"namespace"`
	Workspace   string `json:"workspace"`
	DisplayName string `json:"displayName"`
	Provider    string `json:"provider"`
	KeyState
}

// KeyState is what the page shows of a key of any type: never the key.
type KeyState struct {
	HasKey      bool       `json:"hasKey"`      // the key object exists
	Issued      bool       `json:"issued"`      // and its key is in its Secret
	KeyID       string     `json:"keyID"`       // public
	State       string     `json:"state"`       // why not issued, when not
	LastUsed    *time.Time `json:"lastUsed"`    // by the auth proxy
	SecretName  string     `json:"secretName"`  // where the key is
	GracePeriod string     `json:"gracePeriod"` // how long a rotated key keeps working
	// Leak is the latest report of one of its keys found in public.
	Leak *Leak `json:"leak,omitempty"`
}

// Leak is what the page says of a leak report.
type Leak struct {
	KeyID string    `json:"keyID"`
	Time  time.Time `json:"time"`
	URL   string    `json:"url"`
	// Current: the reported key is still the current one (leakResponse
	// Report, or a rotation under way).
	Current bool `json:"current"`
}

// Rows lists the workspaces of namespace ("" with all: every namespace)
// with their keys, sorted by namespace and name.
func Rows(ctx context.Context, c client.Reader, namespace string, names []string) ([]Row, error) {
	var workspaces octopodsv1alpha1.WorkspaceList
	if err := c.List(ctx, &workspaces, client.InNamespace(namespace)); err != nil {
		return nil, explain(err, "list", "workspaces", namespace)
	}
	var keys octopodsv1alpha1.WorkspaceAPIKeyList
	if err := c.List(ctx, &keys, client.InNamespace(namespace)); err != nil {
		return nil, explain(err, "list", "workspaceapikeys", namespace)
	}
	byName := map[string]*octopodsv1alpha1.WorkspaceAPIKey{}
	for i := range keys.Items {
		byName[keys.Items[i].Namespace+"/"+keys.Items[i].Name] = &keys.Items[i]
	}
	wanted := map[string]bool{}
	for _, n := range names {
		wanted[n] = true
	}
	var rows []Row
	for _, ws := range workspaces.Items {
		if len(wanted) > 0 && !wanted[ws.Name] {
			continue
		}
		rows = append(rows, rowOf(&ws, byName[ws.Namespace+"/"+ws.Name]))
		delete(byName, ws.Namespace+"/"+ws.Name)
		delete(wanted, ws.Name)
	}
	// Keys waiting for their Workspace are listed too, with the reason.
	for _, key := range byName {
		if len(wanted) > 0 && !wanted[key.Name] {
			continue
		}
		rows = append(rows, rowOf(&octopodsv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}, key))
		delete(wanted, key.Name)
	}
	if len(wanted) > 0 {
		missing := make([]string, 0, len(wanted))
		for n := range wanted {
			missing = append(missing, n)
		}
		sort.Strings(missing)
		return rows, fmt.Errorf("no workspace %s in namespace %q: `kubectl octopods get` lists them", strings.Join(missing, ", "), namespace)
	}
	sort.Slice(rows, func(i, j int) bool {
		return rows[i].Namespace+"/"+rows[i].Workspace < rows[j].Namespace+"/"+rows[j].Workspace
	})
	return rows, nil
}

func rowOf(ws *octopodsv1alpha1.Workspace, key *octopodsv1alpha1.WorkspaceAPIKey) Row {
	r := Row{Namespace: ws.Namespace, Workspace: ws.Name, DisplayName: ws.Spec.DisplayName, Provider: string(ws.Spec.Provider)}
	if key != nil {
		r.KeyState = keyStateOf(key)
	}
	return r
}

// keyStateOf is the one reading of a key object for the page and the table.
func keyStateOf(key octopodsv1alpha1.KeyObject) KeyState {
	st := key.KeyStatus()
	r := KeyState{HasKey: true, KeyID: st.KeyID, SecretName: octopodsv1alpha1.EffectiveSecretName(key), GracePeriod: "0s"}
	if g := key.Settings().RotationGracePeriod; g != nil {
		r.GracePeriod = g.String()
	}
	if t := CurrentKeyLastUsed(st); t != nil {
		used := t.UTC()
		r.LastUsed = &used
	}
	if l := st.LastLeakReport; l != nil {
		r.Leak = &Leak{KeyID: l.KeyID, Time: l.Time.UTC(), URL: Printable(l.URL), Current: l.KeyID == st.KeyID}
	}
	ready := meta.FindStatusCondition(st.Conditions, octopodsv1alpha1.ConditionReady)
	switch {
	case ready != nil && ready.Status == metav1.ConditionTrue && st.KeyID != "":
		r.Issued = true
	case ready != nil:
		r.State = ready.Reason + ": " + ready.Message
	default:
		r.State = "Being issued"
	}
	return r
}

// CurrentKeyLastUsed is status.lastUsedTime when it is the current key's:
// right after a rotation it is still the replaced key's last use (the proxy
// writes the new key's first use at its next flush), which no one should
// read as the new key's.
func CurrentKeyLastUsed(st *octopodsv1alpha1.APIKeyStatus) *metav1.Time {
	return st.LastUseOf(st.KeyID)
}

// ReadKey returns the target's key from its Secret, waiting up to wait for
// a key just created. It is the one place a key leaves the API server.
func ReadKey(ctx context.Context, c client.Reader, namespace string, t Target, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		key, err := readKeyOnce(ctx, c, namespace, t)
		if err == nil || !errors.Is(err, errNotIssuedYet) || time.Now().After(deadline) {
			return key, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var errNotIssuedYet = errors.New("not issued yet")

func readKeyOnce(ctx context.Context, c client.Reader, namespace string, t Target) (string, error) {
	key, err := getKey(ctx, c, namespace, t, "")
	if err != nil {
		return "", err
	}
	secret := &corev1.Secret{}
	secretName := octopodsv1alpha1.EffectiveSecretName(key)
	err = c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: secretName}, secret)
	ready := meta.FindStatusCondition(key.KeyStatus().Conditions, octopodsv1alpha1.ConditionReady)
	workspace := t.String()
	switch {
	case apierrors.IsNotFound(err) && ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason != "":
		// Blocked, not being issued (a missing Workspace, a Secret in the
		// way): waiting would not help, the reason does.
		return "", fmt.Errorf("the key of %q is not issued: %s: %s", workspace, ready.Reason, Printable(ready.Message))
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("the key of %q is %w (Secret %q not there yet)", workspace, errNotIssuedYet, secretName)
	case err != nil:
		return "", explain(err, "get", "secrets", namespace)
	}
	value := string(secret.Data[octopodsv1alpha1.SecretKeyAPIKey])
	if apikey.Validate(value) != nil || !octopodsv1alpha1.ManagesSecret(key, secret) {
		return "", fmt.Errorf("the key of %q is %w (Secret %q holds no key of this %s yet)", workspace, errNotIssuedYet, secret.Name, t.Noun())
	}
	return value, nil
}

// Forbidden is an RBAC refusal, said as what to ask for: the page answers
// it with 403.
type Forbidden struct{ msg string }

func (f *Forbidden) Error() string { return f.msg }

// explain turns an API error into a sentence that says what to do; a
// Forbidden names the verb and resource RBAC must grant.
func explain(err error, verb, resource, namespace string) error {
	if apierrors.IsForbidden(err) {
		where := "in namespace " + namespace
		if namespace == "" {
			where = "in all namespaces"
		}
		return &Forbidden{fmt.Sprintf("you may not %s %s %s: ask for a role that grants verb %q on %q (octopods-workspace-editor creates and copies keys, octopods-key-rotator rotates them)",
			verb, resource, where, verb, resource)}
	}
	return fmt.Errorf("%s %s: %w", verb, resource, err)
}
