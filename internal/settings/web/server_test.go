package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
)

// page is a settings page over a fake API server where the person may do
// what allowed says (verb/resource).
type page struct {
	logs    *strings.Builder
	srv     *Server
	h       http.Handler
	host    string
	login   string
	session string
	key     string
}

func newPage(t *testing.T, allowed map[string]bool) *page {
	t.Helper()
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = octopodsv1alpha1.AddToScheme(s)
	key, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	wak := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "acme", UID: "u1"},
		Spec:   octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: "acme"},
		Status: octopodsv1alpha1.APIKeyStatus{KeyID: apikey.ID(key), Conditions: []metav1.Condition{{Type: "Ready", Status: "True", Reason: "KeyIssued"}}}}
	isController := true
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "acme-api-key",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "octopods.io/v1alpha1", Kind: "WorkspaceAPIKey", Name: "acme", UID: "u1", Controller: &isController}}},
		Type: octopodsv1alpha1.SecretType, Data: map[string][]byte{"api-key": []byte(key)}}
	objs := []client.Object{
		&octopodsv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "acme"}, Spec: octopodsv1alpha1.WorkspaceSpec{DisplayName: "Acme", Provider: "Intercom"}},
		&octopodsv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "globex"}, Spec: octopodsv1alpha1.WorkspaceSpec{DisplayName: "Globex", Provider: "HubSpot"}},
		wak, secret,
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithStatusSubresource(wak).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if r, ok := obj.(*authorizationv1.SelfSubjectAccessReview); ok {
				a := r.Spec.ResourceAttributes
				r.Status.Allowed = allowed[a.Verb+"/"+a.Resource]
				return nil
			}
			return c.Create(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if !allowed["patch/workspaceapikeys"] {
				return apierrors.NewForbidden(octopodsv1alpha1.GroupVersion.WithResource("workspaceapikeys").GroupResource(), obj.GetName(), errors.New("RBAC"))
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	}).Build()
	logs := &strings.Builder{}
	srv, err := New(c, "team-a", slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	l, login, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	p := &page{logs: logs, srv: srv, h: srv.Handler(), host: srv.allowedHost, login: login, key: key}
	res := p.do(t, "POST", "/api/login", strings.NewReader(`{"token":"`+loginToken(t, login)+`"}`), nil)
	var session struct {
		Session string `json:"session"`
	}
	if err := json.NewDecoder(res.Body).Decode(&session); res.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("login: %d %v", res.StatusCode, err)
	}
	p.session = session.Session
	return p
}

// loginToken is the token in the fragment of the URL the plugin prints.
func loginToken(t *testing.T, login string) string {
	t.Helper()
	u, err := url.Parse(login)
	if err != nil || !strings.HasPrefix(u.Fragment, "login=") || u.RawQuery != "" {
		t.Fatalf("login URL %q: want the token in the fragment only", login)
	}
	return strings.TrimPrefix(u.Fragment, "login=")
}

// do sends a request as the page's own browser would (Host, cookie), with
// headers changed by mod.
func (p *page) do(t *testing.T, method, target string, body io.Reader, mod func(*http.Request)) *http.Response {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(method, u.RequestURI(), body)
	r.Host = p.host
	if p.session != "" {
		r.Header.Set(SessionHeader, p.session)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Origin", "http://"+p.host)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if mod != nil {
		mod(r)
	}
	w := httptest.NewRecorder()
	p.h.ServeHTTP(w, r)
	return w.Result()
}

func bodyOf(res *http.Response) string {
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

var editorRights = map[string]bool{"create/workspaceapikeys": true, "patch/workspaceapikeys": true, "get/secrets": true}

func TestLoginIsOneTimeAndTheSessionNoCookie(t *testing.T) {
	p := newPage(t, editorRights)
	p2 := *p
	p2.session = ""
	token := loginToken(t, p.login)
	for name, body := range map[string]string{"second use of the login token": token, "a guessed token": "guess"} {
		res := p2.do(t, "POST", "/api/login", strings.NewReader(`{"token":"`+body+`"}`), nil)
		if res.StatusCode != http.StatusForbidden || len(res.Cookies()) != 0 {
			t.Fatalf("%s: %d", name, res.StatusCode)
		}
	}
	for _, path := range []string{"/", "/static/app.js", "/api/workspaces"} {
		if res := p.do(t, "GET", path, nil, nil); len(res.Cookies()) != 0 {
			t.Fatalf("%s sets a cookie: a browser would send it to every port of 127.0.0.1", path)
		}
	}
}

func TestRefusals(t *testing.T) {
	p := newPage(t, editorRights)
	copyBody := func() io.Reader { return strings.NewReader(`{"namespace":"team-a","workspace":"acme"}`) }
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   func() io.Reader
		mod    func(*http.Request)
		status int
	}{
		{"no session", "GET", "/api/workspaces", nil, func(r *http.Request) { r.Header.Del(SessionHeader) }, http.StatusUnauthorized},
		{"no session, copy", "POST", "/api/copy", copyBody, func(r *http.Request) { r.Header.Del(SessionHeader) }, http.StatusUnauthorized},
		{"wrong session", "POST", "/api/copy", copyBody, func(r *http.Request) { r.Header.Set(SessionHeader, "forged") }, http.StatusUnauthorized},
		{"the session in a cookie instead", "POST", "/api/copy", copyBody, func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: SessionHeader, Value: r.Header.Get(SessionHeader)})
			r.Header.Del(SessionHeader)
		}, http.StatusUnauthorized},
		{"foreign Origin", "POST", "/api/copy", copyBody, func(r *http.Request) {
			r.Header.Set("Origin", "https://evil.example")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}, http.StatusForbidden},
		{"DNS rebinding (another Host)", "GET", "/api/workspaces", nil, func(r *http.Request) { r.Host = "evil.example:8080" }, http.StatusMisdirectedRequest},
		{"a form post (not JSON)", "POST", "/api/copy", copyBody, func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, http.StatusUnsupportedMediaType},
		{"copy by GET", "GET", "/api/copy", nil, nil, http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != nil {
				body = tc.body()
			}
			res := p.do(t, tc.method, tc.path, body, tc.mod)
			text := bodyOf(res)
			if res.StatusCode != tc.status || strings.Contains(text, p.key[4:]) {
				t.Fatalf("status %d (want %d), body %q", res.StatusCode, tc.status, text)
			}
			if res.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatal("CORS header set")
			}
		})
	}
}

func TestHeadersAndTheKeyOnlyOnCopy(t *testing.T) {
	p := newPage(t, editorRights)
	for _, path := range []string{"/", "/static/app.js", "/api/workspaces?namespace=team-a"} {
		res := p.do(t, "GET", path, nil, nil)
		text := bodyOf(res)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, res.StatusCode, text)
		}
		if !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") || res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: headers %v", path, res.Header)
		}
		if strings.Contains(text, p.key[4:]) {
			t.Fatalf("%s carries the key", path)
		}
	}
	rows := bodyOf(p.do(t, "GET", "/api/workspaces?namespace=team-a", nil, nil))
	for _, want := range []string{`"workspace":"acme"`, `"keyID":"` + apikey.ID(p.key) + `"`, `"workspace":"globex","displayName":"Globex","provider":"HubSpot","hasKey":false`, `"can":{"create":true,"rotate":true,"copy":true}`} {
		if !strings.Contains(rows, want) {
			t.Errorf("workspaces %s lacks %s", rows, want)
		}
	}
	res := p.do(t, "POST", "/api/copy", strings.NewReader(`{"namespace":"team-a","workspace":"acme"}`), nil)
	if text := bodyOf(res); res.StatusCode != http.StatusOK || text != `{"key":"`+p.key+`"}`+"\n" {
		t.Fatalf("copy: %d %s", res.StatusCode, text)
	}
	if !strings.Contains(p.logs.String(), "API key copied") || strings.Contains(p.logs.String(), p.key[4:]) {
		t.Fatalf("the page's log must say a key was copied, never the key: %s", p.logs.String())
	}
}

func TestAViewerGetsNoButtons(t *testing.T) {
	p := newPage(t, map[string]bool{})
	rows := bodyOf(p.do(t, "GET", "/api/workspaces?namespace=team-a", nil, nil))
	if !strings.Contains(rows, `"can":{"create":false,"rotate":false,"copy":false}`) {
		t.Fatalf("viewer: %s", rows)
	}
	// A call the button would not have offered: RBAC's no is a 403.
	res := p.do(t, "POST", "/api/rotate", strings.NewReader(`{"namespace":"team-a","workspace":"acme"}`), nil)
	if text := bodyOf(res); res.StatusCode != http.StatusForbidden || !strings.Contains(text, "you may not patch workspaceapikeys") {
		t.Fatalf("rotate as a viewer: %d %s", res.StatusCode, text)
	}
}
